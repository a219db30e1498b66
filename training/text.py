"""Captions per text type, and BioCLIP's per-batch mixing (SPEC §4).

Every sample carries the tokens of all five captions (`[5, context]`, in `TEXT_TYPES` order);
the training loop picks one column per batch. With `mixed`, the type of a batch depends only on
(seed, global step), so every process draws the same one, and a resumed run draws what the
uninterrupted run drew.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from taxonomy import Lineage, caption
from taxonomy.constants import MIXED, TEXT_TYPES

if TYPE_CHECKING:  # torch stays out of `python -m training --help`
    import torch

Tokenizer = Callable[[list[str]], "torch.Tensor"]

# Large odd multiplier so that (seed, step) pairs do not collide for any realistic run length.
_SEED_STRIDE = 1_000_003


def text_type_at(step: int, seed: int, text_type: str) -> str:
    """The caption type of the batch at global `step`: fixed, or drawn uniformly for `mixed`."""
    if text_type != MIXED:
        return text_type
    return TEXT_TYPES[random.Random(seed * _SEED_STRIDE + step).randrange(len(TEXT_TYPES))]


def type_index(text_type: str) -> int:
    return TEXT_TYPES.index(text_type)


def lineage_captions(lineage: Lineage) -> list[str]:
    """The five captions of a lineage, in `TEXT_TYPES` order."""
    return [caption(lineage, text_type) for text_type in TEXT_TYPES]


def pick(tokens: "torch.Tensor", text_type: str) -> "torch.Tensor":
    """The `[batch, context]` tokens of one type out of a `[batch, 5, context]` batch."""
    return tokens[:, type_index(text_type)]
