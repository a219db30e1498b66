"""`torchrun --nproc-per-node N [--nnodes M ...] -m embed build ...`: the images split across processes.

Rank 0 does what a one-process build does before and after the images (ingest, the run record,
the store sync, the taxa, optimize). Every rank, rank 0 included, encodes its share of the images
still to embed: those whose point id, as a 128-bit number, is its rank modulo the world size (a
split that needs no exchange of lists: each rank reads the same list from the catalog once rank 0
has prepared it, and the split of an image never changes between reruns). With `--shards`, the
samples of those shards go by shard instead: shard i of the spec to rank i modulo the world size,
so that each rank reads its own shards (index.collection.shards), as webdataset splits them.

Where the vectors go depends on the store:
- a server store (an http(s) URL): each rank writes its share itself through its own writer
  thread (embed.writer) and marks it in the shared catalog;
- the embedded store (a folder, one writer process): the ranks hand each encoded batch to rank 0
  (`gather_object`, step by step: every rank takes the same number of steps, the last ones
  empty), and rank 0's writer writes them all.
Crash safety is the one-process build's: every write is in the store before it is marked, a
killed rank loses only its batches in flight, and a rerun (with any number of processes) encodes
only what is not in the store.

The process group uses gloo on the CPU and NCCL on GPUs; the objects exchanged are small
(a batch's records, vectors and failures; the run id), so on NCCL they travel through the GPU.
"""
from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
ShardOf = Callable[[str], "int | None"]  # an image path -> the index of its shard in --shards, None outside them


@dataclass(frozen=True)
class World:
    """This process's place among the build's processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1

    def device(self, device: str) -> str:
        """`cuda` means this process's own GPU (its local rank); anything else stays as it is."""
        return f"cuda:{self.local_rank}" if self.parallel and device == "cuda" else device

    def owns(self, point_id: str) -> bool:
        """Whether this rank encodes the image of `point_id`."""
        return uuid.UUID(point_id).int % self.size == self.rank

    def owner(self, record: Any, shard_of: ShardOf | None = None) -> int:
        """The rank that encodes `record` (one with an `id` and a `path`): its shard's index modulo the world
        size when `shard_of` places its path in a shard of the build's --shards, else its point id's."""
        shard = shard_of(record.path) if shard_of is not None else None
        return (shard if shard is not None else uuid.UUID(record.id).int) % self.size

    def share(self, records: Sequence[T], shard_of: ShardOf | None = None) -> list[T]:
        """The records this rank encodes, in their order; `shard_of`: see `owner`."""
        if not self.parallel:
            return list(records)
        return [r for r in records if self.owner(r, shard_of) == self.rank]

    def steps(self, records: Sequence[Any], batch_size: int, shard_of: ShardOf | None = None) -> int:
        """Batches of the largest share: the steps every rank takes when batches are gathered."""
        if not self.parallel:
            return -(-len(records) // batch_size)
        sizes = [0] * self.size
        for r in records:
            sizes[self.owner(r, shard_of)] += 1
        return max(-(-n // batch_size) for n in sizes)

    def broadcast(self, value: T) -> T:
        """Rank 0's `value`, on every rank."""
        if not self.parallel:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: T) -> list[T] | None:
        """Every rank's `value`, in rank order, on rank 0 (None on the others)."""
        if not self.parallel:
            return [value]
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.size if self.main else None
        dist.gather_object(value, out, dst=0)
        return out

    def barrier(self) -> None:
        if self.parallel:
            import torch.distributed as dist

            dist.barrier()


def world_from_env() -> World:
    """RANK, WORLD_SIZE and LOCAL_RANK as torchrun sets them; one process when they are absent."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as e:
        raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them): {e}") from None
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"rank {rank} of world size {size}: expected 0 <= RANK < WORLD_SIZE")
    return World(rank, size, local)


@contextmanager
def process_group(world: World, device: str) -> Iterator[World]:
    """The torch.distributed process group of `world` (none for one process), destroyed on exit."""
    if not world.parallel:
        yield world
        return
    import torch
    import torch.distributed as dist

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(world.local_rank)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        yield world
    finally:
        if started and dist.is_initialized():
            dist.destroy_process_group()


def shared_store(location: str) -> bool:
    """Whether every rank may write to `location` itself (a server), rather than through rank 0 (a folder)."""
    from index.schema import URL_SCHEMES

    scheme, sep, _ = location.partition("://")
    return bool(sep) and scheme.lower() in URL_SCHEMES
