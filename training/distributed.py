"""The only module that reads torchrun's RANK/LOCAL_RANK/WORLD_SIZE or starts a process group.

Everything else receives a `DistInfo`; with `world_size == 1` no process group exists and the
same code runs on one CPU or GPU. Multi-node: torchrun's `--nnodes/--node-rank/--rdzv-*` flags
set the same variables, so nothing changes here.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_master(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Join torchrun's process group (NCCL on CUDA, gloo on CPU) and pick this process's device."""
    from embed.device import check_device, resolve_device
    from embed.parallel import world_from_env

    world = world_from_env()
    world_size, rank, local_rank = world.size, world.rank, world.local_rank

    use_cuda = resolve_device(device, check=False) == "cuda"
    if use_cuda:
        check_device("cuda" if local_rank == 0 else f"cuda:{local_rank}")  # one line listing what is there
    if use_cuda:
        torch.cuda.set_device(local_rank)
        chosen = torch.device("cuda", local_rank)
    else:
        chosen = torch.device("cpu")
    if world_size > 1:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", device_id=chosen if use_cuda else None)
        logger.info("process %d/%d (local %d) on %s", rank, world_size, local_rank, chosen)
    return DistInfo(rank, local_rank, world_size, chosen)


def mean_across(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of a tensor over all processes (itself when alone)."""
    if info.distributed:
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= info.world_size
    return value


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's `obj`, in rank order (a collective: all processes must call it)."""
    if not info.distributed:
        return [obj]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()
