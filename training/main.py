"""`python -m training train ...` and `torchrun --nproc-per-node N -m training train ...`.

Set-up (model, data, optimizer, schedule, DDP), then epochs of `train_one_epoch`, each followed by
a checkpoint and the zero-shot top-1 on the val split; at the end the model is written as an
open_clip folder (`OUT/model`) that `python -m embed build --model OUT/model` loads.
"""
from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from training.constants import (
    ADAM_BETAS,
    ADAM_EPS,
    CONFIG_FILE,
    LOG_COLUMNS,
    LOG_FILE,
    METRICS_FILE,
    MODEL_DIR,
)
from training.params import TrainConfig, parse_args

if TYPE_CHECKING:
    from training.distributed import DistInfo

logger = logging.getLogger(__name__)

# A change in these makes a resumed run differ from the uninterrupted one.
_RESUME_KEYS = ("batch_size", "seed", "text_type", "lr", "wd", "warmup", "epochs", "shards", "catalog", "split")


@dataclass(frozen=True)
class TrainResult:
    """What a run produced (the model folder is written by rank 0)."""

    out: Path
    model_dir: Path
    steps: int  # global steps done in all, across resumes
    seconds: float  # wall time of this invocation
    metrics: list[dict[str, Any]]  # one entry per zero-shot evaluation


def main(args: list[str] | None = None) -> TrainResult:
    """Train as the flags say; `args` may start with the subcommand `train`."""
    if args and args[0] == "train":
        args = args[1:]
    return train(parse_args(args))


def train(config: TrainConfig) -> TrainResult:
    """Train as `config` says: join the process group (under torchrun), set up logging, run, leave."""
    from training.distributed import cleanup, init_distributed
    from training.logger import setup_logging

    info = init_distributed(config.device)
    setup_logging(rank=info.rank)
    try:
        return run(config, info)
    finally:
        cleanup(info)


def _param_groups(model: torch.nn.Module, wd: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only: not on gains, biases, embeddings' scalars or the logit scale."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "logit_scale" in name else decay).append(param)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": wd}]


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def model_spec(spec: str) -> str:
    """The open_clip spec to load: a model-config JSON file (from scratch) is registered under its stem."""
    from embed.models import parse_spec

    if parse_spec(spec).is_config_file:
        path = Path(spec.strip())
        if not path.is_file():
            raise FileNotFoundError(f"model config {spec!r} not found")
        import open_clip

        open_clip.add_model_config(path)
        return path.stem
    return spec


def _read_metrics(path: Path, before_epoch: int) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [entry for entry in json.loads(path.read_text(encoding="utf-8")) if entry["epoch"] < before_epoch]


@dataclass(frozen=True)
class ZeroShotData:
    """The images the per-epoch zero-shot scores, and the taxa it chooses among."""

    root: Path
    entries: list
    candidates: list


def _zero_shot_data(config: TrainConfig, train_lineages: list) -> ZeroShotData | None:
    """The val split and the seen taxa (train and val splits), or None when there is nothing to score."""
    from training.data import read_split

    images = config.val_images or config.images
    if not config.zeroshot_every or not images:
        if config.zeroshot_every:
            logger.info("no --val-images for the zero-shot of a shard run: no zero-shot evaluation")
        return None
    root, everything = read_split(config.val_catalog or config.catalog, images, None)
    entries = [entry for entry in everything if entry.split == config.val_split]
    if not entries:
        logger.warning("no images in split %r of %s: no zero-shot evaluation", config.val_split, images)
        return None
    seen = {entry.lineage for entry in everything if entry.split in (config.split, config.val_split)}
    return ZeroShotData(root, entries, sorted(seen | set(train_lineages), key=lambda lineage: lineage.key()))


def _check_resume(state: dict[str, Any], config: TrainConfig, world_size: int) -> None:
    changed = [key for key in _RESUME_KEYS if state["config"].get(key) != getattr(config, key)]
    if changed or state["world_size"] != world_size:
        logger.warning("resuming with changed %s (world size %d -> %d): the run will not repeat the "
                       "uninterrupted one exactly", ", ".join(changed) or "nothing", state["world_size"], world_size)


def run(config: TrainConfig, info: "DistInfo") -> TrainResult:
    """The run itself, in an initialised process (group); see `main`."""
    import open_clip
    from torch.nn.parallel import DistributedDataParallel

    from embed.encoder import Encoder
    from embed.models import load_model, save_model_folder
    from training import checkpoint as ckpt
    from training.data import collection_data, read_split, shard_data
    from training.distributed import barrier, gather_objects
    from training.evaluate import zero_shot_split
    from training.logger import CsvLog
    from training.scheduler import capped_warmup, warmup_cosine
    from training.train import Run, train_one_epoch

    started = time.perf_counter()
    out = Path(config.out)
    precision = config.precision or ("bf16" if info.device.type == "cuda" else "fp32")
    if config.threads:
        # On a small shared CPU, fewer threads than cores avoids OpenMP threads spinning against each other.
        torch.set_num_threads(config.threads)
    if info.device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for what runs outside bf16 autocast, as open_clip_train
    torch.manual_seed(config.seed + info.rank)
    random.seed(config.seed + info.rank)
    np.random.seed(config.seed + info.rank)
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(out)) if config.resume else None
    if state is not None:
        _check_resume(state, config, info.world_size)

    # Model: rank 0 first, so that a Hub download happens once.
    for turn in (True, False):
        if info.is_master == turn:
            loaded = load_model(model_spec(config.model), device=str(info.device),
                                weights=state is None and not config.from_scratch)
        barrier(info)
    module = loaded.model
    if state is not None:
        module.load_state_dict(state["model"])
    if config.grad_checkpointing:
        module.set_grad_checkpointing(True)
    channels_last = info.device.type == "cuda"
    if channels_last:
        module.to(memory_format=torch.channels_last)
    module.train()

    # Data: this process's share of the training data, and the zero-shot split.
    common = dict(transform=loaded.train_preprocess, tokenizer=loaded.tokenizer, info=info,
                  batch_size=config.batch_size, seed=config.seed, epochs=config.epochs, workers=config.workers)
    if config.shards:
        if config.higher_rank_captions:
            logger.warning("--higher-rank-captions applies to collections only; shards keep their captions")
        data = shard_data(config.shards, config.train_num_samples, **common)
        train_lineages: list = []
    else:
        root, entries = read_split(config.catalog, config.images, config.split)
        data = collection_data(root, entries, higher_rank_p=config.higher_rank_captions, **common)
        train_lineages = [entry.lineage for entry in entries]
    val = _zero_shot_data(config, train_lineages)

    # Optimizer (fused kernels on CUDA and CPU alike: 4x faster than foreach on the CPU) and schedule.
    optimizer = torch.optim.AdamW(_param_groups(module, config.wd), lr=config.lr, betas=ADAM_BETAS, eps=ADAM_EPS,
                                  fused=True)
    total_steps = config.epochs * data.steps_per_epoch
    scheduler = warmup_cosine(optimizer, config.lr, capped_warmup(config.warmup, total_steps), total_steps)
    start_epoch, start_step = 0, 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, start_step = state["epoch"], state["step_in_epoch"]
        if state["world_size"] == info.world_size:
            ckpt.set_rng_state(state["rng"][info.rank])
        logger.info("resumed from step %d (epoch %d, step %d in it)", state["step"], start_epoch, start_step)

    model: torch.nn.Module = module
    if info.distributed:
        model = DistributedDataParallel(module, device_ids=[info.local_rank] if info.device.type == "cuda" else None)
    if config.compile:
        model = torch.compile(model)
    loss_fn = open_clip.ClipLoss(local_loss=True, gather_with_grad=True, cache_labels=True,
                                 rank=info.rank, world_size=info.world_size)
    taxonomy = ckpt.taxonomy_version(train_lineages)

    def save(epoch: int, steps_done: int, epoch_end: bool = False) -> None:
        """Checkpoint after `steps_done` steps of `epoch`; a collective (RNG states of every process)."""
        rng = gather_objects(ckpt.rng_state(), info)
        if not info.is_master:
            return
        finished = steps_done == data.steps_per_epoch
        next_epoch, next_step = (epoch + 1, 0) if finished else (epoch, steps_done)
        ckpt.save_checkpoint({
            "model": module.state_dict(), "optimizer": optimizer.state_dict(),
            "step": next_epoch * data.steps_per_epoch + next_step, "epoch": next_epoch, "step_in_epoch": next_step,
            "steps_per_epoch": data.steps_per_epoch, "world_size": info.world_size, "rng": rng,
            "config": config.as_dict(), "model_cfg": loaded.model_cfg, "preprocess_cfg": loaded.preprocess_cfg,
            "taxonomy_version": taxonomy,
        }, out, epoch_end=epoch + 1 if epoch_end and config.keep_epoch_checkpoints else None)

    log = None
    metrics: list[dict[str, Any]] = []
    if info.is_master:
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_FILE).write_text(json.dumps(config.as_dict(), indent=2), encoding="utf-8")
        log = CsvLog(out / LOG_FILE, LOG_COLUMNS, resume_step=state["step"] if state else None)
        metrics = _read_metrics(out / METRICS_FILE, start_epoch) if state else []
    logger.info("%d samples, %d steps per epoch of %d (global batch), %d epochs, %s on %s x %d",
                data.num_samples, data.steps_per_epoch, config.batch_size * info.world_size, config.epochs,
                precision, info.device, info.world_size)

    # The epochs: train, checkpoint, and now and then the zero-shot (rank 0; the others wait).
    train_run = Run(config, info, module, data.steps_per_epoch, _autocast(info.device, precision),
                    channels_last, log, save)
    batches = data.batches(start_epoch, start_step)
    encoder = Encoder(replace(loaded, model=module)) if val else None
    step = start_epoch * data.steps_per_epoch + start_step
    for epoch in range(start_epoch, config.epochs):
        first = start_step if epoch == start_epoch else 0
        done = train_one_epoch(model, batches, loss_fn, optimizer, scheduler, train_run, epoch, first)
        step += done
        finished = first + done == data.steps_per_epoch
        save(epoch, first + done, epoch_end=finished)
        if not finished:
            logger.info("stopped at step %d (--max-steps); --resume continues", step)
            break
        last = epoch == config.epochs - 1
        if val and info.is_master and ((epoch + 1) % config.zeroshot_every == 0 or last):
            result = zero_shot_split(encoder, val.root, val.entries, val.candidates, config.zeroshot_text_type)
            metrics.append({"epoch": epoch, "step": step, "zero_shot": result.as_dict()})
            (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
            logger.info("epoch %d zero-shot top-1 (%s, %d images): %s", epoch, result.text_type, result.images,
                        ", ".join(f"{rank} {acc:.3f} (chance {result.chance[rank]:.3f})"
                                  for rank, acc in result.top1.items()))
        barrier(info)
    del batches  # stops the loader workers

    model_dir = out / MODEL_DIR
    if info.is_master:
        if log is not None:
            log.close()
        save_model_folder(module, loaded.model_cfg, model_dir, loaded.preprocess_cfg)
    barrier(info)
    return TrainResult(out, model_dir, step, time.perf_counter() - started, metrics)
