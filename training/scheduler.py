"""Learning-rate schedules as closures `step -> lr` that also set the optimizer's lr.

A closure holds no state besides its arguments, so a resumed run only needs the step.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch

from training.constants import MAX_WARMUP_FRACTION

logger = logging.getLogger(__name__)

Scheduler = Callable[[int], float]


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def capped_warmup(warmup: int, total_steps: int) -> int:
    """BioCLIP's warm-up, but never more than 10 % of a short run (the tiny demo)."""
    cap = max(1, int(total_steps * MAX_WARMUP_FRACTION))
    if warmup > cap:
        logger.info("warm-up of %d steps capped at %d (%.0f %% of %d steps)",
                    warmup, cap, 100 * MAX_WARMUP_FRACTION, total_steps)
        return cap
    return warmup


def warmup_cosine(optimizer: torch.optim.Optimizer, base_lr: float, warmup: int, total_steps: int) -> Scheduler:
    """Linear warm-up from base_lr/warmup to base_lr, then half a cosine down to 0 at total_steps."""

    def lr_at(step: int) -> float:
        if step < warmup:
            lr = base_lr * (step + 1) / warmup  # the first step already gets a non-zero lr
        else:
            progress = (step - warmup) / max(1, total_steps - warmup)
            lr = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))) * base_lr
        set_lr(optimizer, lr)
        return lr

    return lr_at
