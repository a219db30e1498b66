"""The build's image dataset: decode + the model's preprocessing in DataLoader workers.

A file that cannot be decoded becomes a failure in its batch instead of an exception, so a
single bad image never stops a build.

Workers start from a fork server, not by forking the build process: a forked worker would
inherit the build's open files, among them the embedded Qdrant shard's WAL lock, and after a
`kill -9` of the build its orphaned workers would hold that lock for seconds, so that an
immediate rerun is refused. Forking a process that runs the engine's threads is unsafe as well.
The fork server preloads this module (torch, Pillow), so each worker starts in milliseconds.
"""
from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from index.images import ImageError, open_image
from index.records import ImageRecord

logger = logging.getLogger(__name__)

WORKER_START_METHOD = "forkserver"


@dataclass(frozen=True)
class DecodedBatch:
    """Positions (into the dataset's records) of the decoded images, their pixels, and the failures."""

    indices: tuple[int, ...]
    pixels: torch.Tensor  # (len(indices), 3, H, W)
    failures: tuple[tuple[int, str], ...]  # (position, reason)

    def pin_memory(self) -> "DecodedBatch":
        """Called by DataLoader(pin_memory=True) so host->GPU copies can be asynchronous."""
        return DecodedBatch(self.indices, self.pixels.pin_memory(), self.failures)

    def __len__(self) -> int:
        return len(self.indices) + len(self.failures)


class ImageDataset(Dataset):
    """Item i: (i, pixels) or (i, reason) when the file cannot be read."""

    def __init__(self, records: Sequence[ImageRecord], transform: Callable[[Any], torch.Tensor]) -> None:
        self.records = list(records)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | str]:
        record = self.records[index]
        try:
            image = open_image(record.root, record.path)
            return index, self.transform(image)
        except (ImageError, OSError, ValueError) as e:
            # A truncated file can pass open_image's check and fail only in the transform.
            return index, (e.reason if isinstance(e, ImageError) else str(e)) or type(e).__name__


def collate(items: list[tuple[int, torch.Tensor | str]]) -> DecodedBatch:
    """Stack the decoded images; keep the failures beside them."""
    good = [(i, pixels) for i, pixels in items if isinstance(pixels, torch.Tensor)]
    bad = tuple((i, reason) for i, reason in items if isinstance(reason, str))
    pixels = torch.stack([p for _, p in good]) if good else torch.zeros((0, 3, 1, 1))
    return DecodedBatch(tuple(i for i, _ in good), pixels, bad)


def worker_context() -> multiprocessing.context.BaseContext:
    """The fork-server context, preloading this module (see the module docstring)."""
    context = multiprocessing.get_context(WORKER_START_METHOD)
    context.set_forkserver_preload([__name__])
    return context


def image_loader(
    records: Sequence[ImageRecord],
    transform: Callable[[Any], torch.Tensor],
    batch_size: int,
    workers: int,
    pin_memory: bool = False,
    prefetch_factor: int = 2,
) -> DataLoader:
    """Batches in record order; `workers=0` decodes in this process."""
    dataset = ImageDataset(records, transform)
    extra: dict[str, Any] = {}
    if workers > 0:
        extra = {"prefetch_factor": prefetch_factor, "persistent_workers": False,
                 "multiprocessing_context": worker_context()}
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        **extra,
    )
