"""`python -m training train` flags -> a frozen `TrainConfig` (SPEC §7).

A run config (`--config NAME|FILE.json`, default `bioclip`) supplies the defaults; flags win over it.
No torch here: `--help` and validation stay instant.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from training.constants import (
    CONFIG_DIR,
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONFIG,
    DEFAULT_EPOCHS,
    DEFAULT_LOG_EVERY,
    DEFAULT_LR,
    DEFAULT_SEED,
    DEFAULT_SPLIT,
    DEFAULT_TEXT_TYPE,
    DEFAULT_VAL_SPLIT,
    DEFAULT_WARMUP,
    DEFAULT_WD,
    DEFAULT_WORKERS,
    DEFAULT_ZERO_SHOT_TEXT_TYPE,
    DEVICES,
    PRECISIONS,
    TEXT_TYPE_CHOICES,
)
from taxonomy.constants import TEXT_TYPES


@dataclass(frozen=True)
class TrainConfig:
    """One training run, as parsed and validated; stored in every checkpoint."""

    out: str
    model: str = "tol-tiny"
    catalog: str | None = None
    images: str | None = None
    shards: str | None = None
    train_num_samples: int | None = None  # for shards without a sizes.json
    split: str = DEFAULT_SPLIT
    val_catalog: str | None = None  # zero-shot data when training from shards
    val_images: str | None = None
    val_split: str = DEFAULT_VAL_SPLIT
    text_type: str = DEFAULT_TEXT_TYPE
    higher_rank_captions: float = 0.0  # share of samples captioned by an ancestor (not in BioCLIP's recipe)
    zeroshot_text_type: str = DEFAULT_ZERO_SHOT_TEXT_TYPE
    zeroshot_every: int = 1  # epochs; 0 turns the per-epoch zero-shot off
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE  # per process
    lr: float = DEFAULT_LR
    wd: float = DEFAULT_WD
    warmup: int = DEFAULT_WARMUP
    grad_clip: float | None = None
    precision: str | None = None  # None: bf16 on CUDA, fp32 on CPU
    device: str = "auto"
    workers: int = DEFAULT_WORKERS
    threads: int | None = None  # torch CPU threads per process; None keeps torch's default
    seed: int = DEFAULT_SEED
    grad_checkpointing: bool = False
    compile: bool = False
    save_every_steps: int = 0
    keep_epoch_checkpoints: bool = False  # epoch_N.pt next to latest.pt
    max_steps: int | None = None  # stop (with a checkpoint) after this many steps in all
    log_every: int = DEFAULT_LOG_EVERY
    resume: bool = False
    from_scratch: bool = False  # ignore the spec's weights (a folder or NAME:TAG) and start at random
    config: str = DEFAULT_CONFIG

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_configs() -> list[str]:
    """The run configs shipped in training/configs, by name."""
    return sorted(path.stem for path in CONFIG_DIR.glob("*.json"))


def load_config(name_or_path: str) -> dict[str, Any]:
    """A run config's values, keyed by `TrainConfig` field; unknown keys are an error."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise ValueError(f"unknown run config {name_or_path!r}; expected a JSON file or one of {', '.join(list_configs())}")
    values = json.loads(path.read_text(encoding="utf-8"))
    values.pop("description", None)
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path}: unknown keys {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
    return values


def make_config(config: str = DEFAULT_CONFIG, **values: Any) -> TrainConfig:
    """The run config `config` (a name or a JSON file) with `values` instead of its own: what the flags
    `--config CONFIG --KEY VALUE ...` make, for a caller that is no command line (`python -m demo`)."""
    return TrainConfig(**{**load_config(config), "config": config, **values})


DESCRIPTION = "Train a CLIP model with BioCLIP's recipe (also under torchrun --nproc-per-node N)."


def create_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The `train` flags, on a new parser or on a subcommand's."""
    if parser is None:
        parser = argparse.ArgumentParser(prog="python -m training train", description=DESCRIPTION)
    data = parser.add_argument_group("data")
    data.add_argument("--catalog", help="CSV catalog of the collection (SPEC §2); optional with class folders")
    data.add_argument("--images", help="images root of the collection")
    data.add_argument("--shards", help="webdataset shards in TreeOfLife-10M's layout, 'dir/shard-{000000..000009}.tar'")
    data.add_argument("--train-num-samples", type=int, help="samples in --shards when they have no sizes.json")
    data.add_argument("--split", help=f"catalog split to train on (default {DEFAULT_SPLIT})")
    data.add_argument("--val-catalog", help="catalog for the per-epoch zero-shot (default: --catalog)")
    data.add_argument("--val-images", help="images root for the zero-shot (default: --images)")
    data.add_argument("--val-split", help=f"split for the zero-shot (default {DEFAULT_VAL_SPLIT})")
    data.add_argument("--workers", type=int, help=f"data loader workers per process (default {DEFAULT_WORKERS})")
    data.add_argument("--threads", type=int, help="torch CPU threads per process (default: torch's choice)")

    model = parser.add_argument_group("model")
    model.add_argument("--model", help="open_clip spec (hf-hub:ORG/REPO, a folder, tol-tiny, ViT-B-16[:TAG]) "
                       "or an open_clip model-config JSON file (from scratch)")
    model.add_argument("--from-scratch", action="store_true", default=None, help="random init even if the spec has weights")
    model.add_argument("--grad-checkpointing", action="store_true", default=None)
    model.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")

    recipe = parser.add_argument_group("recipe")
    recipe.add_argument("--config", default=DEFAULT_CONFIG,
                        help=f"run config: a name ({', '.join(list_configs())}) or a JSON file; flags override it")
    recipe.add_argument("--text-type", choices=TEXT_TYPE_CHOICES, help="caption type; mixed draws one per batch")
    recipe.add_argument("--higher-rank-captions", type=float, metavar="P",
                        help="caption this share of samples by a random ancestor (kingdom..genus), as "
                             "TreeOfLife-10M's images labelled above species; 0 in BioCLIP's recipe")
    recipe.add_argument("--epochs", type=int)
    recipe.add_argument("--batch-size", type=int, help="per process; global batch = this x world size")
    recipe.add_argument("--lr", type=float)
    recipe.add_argument("--wd", type=float, help="AdamW weight decay (not on gains, biases, logit scale)")
    recipe.add_argument("--warmup", type=int, help="warm-up steps, capped at 10%% of all steps")
    recipe.add_argument("--grad-clip", type=float, help="clip the gradient norm to this")
    recipe.add_argument("--precision", choices=PRECISIONS, help="default bf16 on CUDA, fp32 on CPU")
    recipe.add_argument("--device", choices=DEVICES)
    recipe.add_argument("--seed", type=int)

    run = parser.add_argument_group("run")
    run.add_argument("--out", required=True, help="folder for checkpoints, logs and the final model")
    run.add_argument("--resume", action="store_true", default=None, help="continue from OUT/checkpoints/latest.pt")
    run.add_argument("--save-every-steps", type=int, help="also checkpoint every N steps")
    run.add_argument("--keep-epoch-checkpoints", action="store_true", default=None,
                     help="keep checkpoints/epoch_N.pt of every epoch, not only latest.pt")
    run.add_argument("--max-steps", type=int, help="stop after N steps in all (checkpointed; resume later)")
    run.add_argument("--log-every", type=int, help=f"steps between log lines (default {DEFAULT_LOG_EVERY})")
    run.add_argument("--zeroshot-every", type=int, help="epochs between zero-shot evaluations (0: never)")
    run.add_argument("--zeroshot-text-type", choices=TEXT_TYPES)
    return parser


def parse_args(args: list[str] | None) -> TrainConfig:
    """Parse and validate; bad combinations exit through `parser.error` with what is allowed."""
    parser = create_parser()
    namespace = parser.parse_args(args)
    try:
        values = load_config(namespace.config)
    except ValueError as e:
        parser.error(str(e))
    flags = {key: value for key, value in vars(namespace).items() if value is not None}
    values.update(flags)
    config = TrainConfig(**values)

    if config.shards and (config.catalog or config.images):
        parser.error("give either --shards or a collection (--images [--catalog]), not both; "
                     "use --val-catalog/--val-images for the zero-shot data of a shard run")
    if not config.shards and not config.images:
        parser.error("no training data: give --images DIR [--catalog CSV] or --shards SPEC")
    if config.catalog and not Path(config.catalog).is_file():
        parser.error(f"--catalog {config.catalog!r}: no such file")
    for name in ("images", "val_images"):
        value = getattr(config, name)
        if value and not Path(value).is_dir():
            parser.error(f"--{name.replace('_', '-')} {value!r}: no such folder")
    for name in ("epochs", "batch_size", "log_every"):
        if getattr(config, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    for name in ("warmup", "workers", "save_every_steps", "zeroshot_every"):
        if getattr(config, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(config, name)}")
    if config.threads is not None and config.threads < 1:
        parser.error(f"--threads must be at least 1, got {config.threads}")
    if config.max_steps is not None and config.max_steps < 1:
        parser.error(f"--max-steps must be at least 1, got {config.max_steps}")
    choices = {"text_type": TEXT_TYPE_CHOICES, "zeroshot_text_type": TEXT_TYPES, "device": DEVICES}
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            parser.error(f"{name} {getattr(config, name)!r}; expected one of {', '.join(allowed)}")
    if config.precision is not None and config.precision not in PRECISIONS:
        parser.error(f"precision {config.precision!r}; expected one of {', '.join(PRECISIONS)}")
    if not 0.0 <= config.higher_rank_captions <= 1.0:
        parser.error(f"--higher-rank-captions must be in [0, 1], got {config.higher_rank_captions}")
    if config.lr <= 0:
        parser.error(f"--lr must be positive, got {config.lr}")
    return config
