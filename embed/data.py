"""The one image dataset: decode + the model's preprocessing in DataLoader workers.

The build, the evaluation (`training.evaluate.embed_collection`) and training
(`training.data.CollectionDataset`, a subclass) all read image files through `ImageDataset`.
A file that cannot be decoded becomes a failure in its batch instead of an exception, so a
single bad image never stops a build; the evaluation raises on the first failure.

Workers are forked (fast: they share the loaded modules) and die with the build: a forked
worker inherits the build's open files, among them the embedded Qdrant shard's WAL lock, so
after a `kill -9` of the build, orphaned workers would hold that lock until they noticed (up to
seconds), and an immediate rerun would be refused. On Linux each worker asks the kernel for
SIGKILL when its parent dies (`prctl(PR_SET_PDEATHSIG)`). A fork server or spawn would avoid
the inheritance, but re-imports the main module in every worker (10-40 s on a busy 2-core
machine, and an error for scripts without a `__main__` guard).
"""
from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from index.collection.images import ImageError, open_image

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


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


class ImageFile(Protocol):
    """What the dataset reads of a record: its path under the images root (`ImageRecord`, `CatalogEntry`)."""

    @property
    def path(self) -> str: ...


class ImageDataset(Dataset):
    """Item i: (i, pixels) or (i, reason) when the file cannot be read.

    `root` is the images root of every record (catalog entries); without it each record's own
    `root` is used (`ImageRecord`s, which may come from several collections).
    """

    def __init__(self, records: Sequence[ImageFile], transform: Callable[[Any], torch.Tensor],
                 root: str | Path | None = None) -> None:
        self.records = list(records)
        self.transform = transform
        self.root = root

    def __len__(self) -> int:
        return len(self.records)

    def open(self, index: int) -> Image.Image:
        """The decoded image of record `index`. Raises ImageError as `open_image` does."""
        record = self.records[index]
        return open_image(record.root if self.root is None else self.root, record.path)  # type: ignore[attr-defined]

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | str]:
        try:
            return index, self.transform(self.open(index))
        except (ImageError, OSError, ValueError) as e:
            # A truncated file can pass open_image's check and fail only in the transform.
            return index, (e.reason if isinstance(e, ImageError) else str(e)) or type(e).__name__


def collate(items: list[tuple[int, torch.Tensor | str]]) -> DecodedBatch:
    """Stack the decoded images; keep the failures beside them."""
    good = [(i, pixels) for i, pixels in items if isinstance(pixels, torch.Tensor)]
    bad = tuple((i, reason) for i, reason in items if isinstance(reason, str))
    pixels = torch.stack([p for _, p in good]) if good else torch.zeros((0, 3, 1, 1))
    return DecodedBatch(tuple(i for i, _ in good), pixels, bad)


def die_with_parent(parent: int, worker_id: int = 0) -> None:
    """DataLoader `worker_init_fn`: SIGKILL this worker when the build process dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        logger.debug("worker %d: prctl(PR_SET_PDEATHSIG) failed, errno %d", worker_id, ctypes.get_errno())
    if os.getppid() != parent:  # the build died before the request took effect
        os._exit(1)


def worker_options(workers: int, prefetch_factor: int) -> dict[str, Any]:
    """The DataLoader options of decoding workers that die with this process; none for `workers=0`."""
    if workers <= 0:
        return {}
    return {"prefetch_factor": prefetch_factor, "persistent_workers": False,
            "worker_init_fn": functools.partial(die_with_parent, os.getpid()),
            "multiprocessing_context": "fork" if sys.platform.startswith("linux") else None}


def image_loader(
    records: Sequence[ImageFile],
    transform: Callable[[Any], torch.Tensor],
    batch_size: int,
    workers: int,
    pin_memory: bool = False,
    prefetch_factor: int = 2,
    root: str | Path | None = None,
) -> DataLoader:
    """Batches of `DecodedBatch` in record order; `workers=0` decodes in this process. `root`: see ImageDataset."""
    dataset = ImageDataset(records, transform, root)
    extra = worker_options(workers, prefetch_factor)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        **extra,
    )
