"""One epoch of contrastive training: the loop, in the order lr -> forward -> loss -> backward -> step -> log."""
from __future__ import annotations

import logging
import math
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from training.constants import LOGIT_SCALE_MAX
from training.data import Batch
from training.distributed import DistInfo, gather_objects, mean_across
from training.logger import CsvLog
from training.params import TrainConfig
from training.scheduler import Scheduler
from training.text import pick, text_type_at

logger = logging.getLogger(__name__)

_BYTES_PER_MB = 2**20
_KB_PER_MB = 1024  # ru_maxrss is in kilobytes on Linux


@dataclass(frozen=True)
class Run:
    """What stays fixed during a run and every epoch needs."""

    config: TrainConfig
    info: DistInfo
    module: torch.nn.Module  # the plain open_clip model under DDP / torch.compile
    steps_per_epoch: int
    autocast: Callable[[], AbstractContextManager]
    channels_last: bool
    log: CsvLog | None  # rank 0 only
    save: Callable[[int, int], None]  # (epoch, steps done in it) -> checkpoint; every process calls it

    @property
    def global_batch(self) -> int:
        return self.config.batch_size * self.info.world_size


def memory_mb(device: torch.device) -> float:
    """Peak memory: CUDA allocations on a GPU, the process's peak resident set on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / _BYTES_PER_MB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / _KB_PER_MB


def contrastive_loss(loss_fn: torch.nn.Module, image_features: torch.Tensor, text_features: torch.Tensor,
                     logit_scale: torch.Tensor) -> torch.Tensor:
    """ClipLoss in fp32, also under bf16 autocast: the towers run in bf16, the logits and their softmax do not.

    In bf16 a logit near the clamped scale of 100 has a spacing of 0.5 (8 bits of mantissa), so the softmax
    over the batch would see noise as large as the differences it learns from; a [B, D] x [D, B] matmul in
    fp32 costs next to nothing beside the towers.
    """
    with torch.autocast(device_type=image_features.device.type, enabled=False):
        return loss_fn(image_features.float(), text_features.float(), logit_scale.float())


def clamp_logit_scale(module: torch.nn.Module) -> None:
    """As CLIP and open_clip_train: the learned temperature may not pass LOGIT_SCALE_MAX (nor go below 1)."""
    with torch.no_grad():
        module.logit_scale.clamp_(0, math.log(LOGIT_SCALE_MAX))


def train_step(model: Callable[..., Any], module: torch.nn.Module, images: torch.Tensor, texts: torch.Tensor,
               loss_fn: torch.nn.Module, optimizer: torch.optim.Optimizer,
               autocast: Callable[[], AbstractContextManager[Any]], grad_clip: float | None) -> torch.Tensor:
    """One optimisation step; the loss. `model` runs the forward pass (compiled or DDP-wrapped as may be),
    `module` is the plain model whose gradients are clipped and whose logit scale is clamped."""
    with autocast():
        image_features, text_features, logit_scale = model(images, texts)[:3]
    loss = contrastive_loss(loss_fn, image_features, text_features, logit_scale)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
    optimizer.step()
    clamp_logit_scale(module)
    return loss


def check_finite(loss: float, step: int) -> None:
    """Stop a run whose loss is NaN or infinite, before it writes a checkpoint of NaN weights."""
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"step {step}: the loss is {loss}; the weights are no longer finite. Lower --lr, lengthen --warmup "
            "or set --grad-clip, and --resume from the last checkpoint")


def train_one_epoch(model: torch.nn.Module, batches: Iterator[Batch], loss_fn: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler: Scheduler, run: Run,
                    epoch: int, start_step: int = 0) -> int:
    """Train from `start_step` of `epoch` to its end, or until --max-steps; returns the steps done in it."""
    config, info, device = run.config, run.info, run.info.device
    max_steps = config.max_steps
    model.train()
    progress = tqdm(total=run.steps_per_epoch, initial=start_step, desc=f"epoch {epoch}",
                    disable=not info.is_master, dynamic_ncols=True, leave=False)
    last_time, last_step = time.perf_counter(), start_step
    step_in_epoch = start_step
    while step_in_epoch < run.steps_per_epoch:
        step = epoch * run.steps_per_epoch + step_in_epoch
        if max_steps is not None and step >= max_steps:
            break
        images, tokens = next(batches)
        lr = scheduler(step)
        text_type = text_type_at(step, config.seed, config.text_type)
        memory_format = torch.channels_last if run.channels_last else torch.contiguous_format
        images = images.to(device, non_blocking=True, memory_format=memory_format)
        texts = pick(tokens, text_type).to(device, non_blocking=True)

        loss = train_step(model, run.module, images, texts, loss_fn, optimizer, run.autocast, config.grad_clip)

        step_in_epoch += 1
        progress.update(1)
        done = step_in_epoch == run.steps_per_epoch or (max_steps is not None and step + 1 >= max_steps)
        if (step + 1) % config.log_every == 0 or done:
            # Collectives: every process takes part, rank 0 writes.
            mean_loss = mean_across(loss.detach().float(), info).item()
            check_finite(mean_loss, step)  # every process sees the same mean, so all stop together
            types = gather_objects(text_type, info)
            if len(set(types)) != 1:
                raise RuntimeError(f"step {step}: processes drew different text types {types}")
            now = time.perf_counter()
            row = {
                "step": step, "epoch": epoch, "loss": f"{mean_loss:.6f}", "lr": f"{lr:.6g}",
                "text_type": "|".join(types), "logit_scale": f"{run.module.logit_scale.exp().item():.4f}",
                "samples_per_s": f"{(step_in_epoch - last_step) * run.global_batch / (now - last_time):.1f}",
                "memory_mb": f"{memory_mb(device):.0f}",
            }
            last_time, last_step = now, step_in_epoch
            if info.is_master:
                progress.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")
                logger.info("epoch %d step %d loss %.4f lr %.3g %s %s samples/s %s MB", epoch, step,
                            mean_loss, lr, text_type, row["samples_per_s"], row["memory_mb"])
                if run.log is not None:
                    run.log.write(row)
        if config.save_every_steps and (step + 1) % config.save_every_steps == 0 and not done:
            run.save(epoch, step_in_epoch)
    progress.close()
    return step_in_epoch - start_step
