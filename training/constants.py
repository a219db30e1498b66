"""Every literal of the training package: BioCLIP's recipe, file names, shard keys (SPEC §2, §4, §7)."""
from __future__ import annotations

from pathlib import Path

from embed.constants import AUTO_DEVICE, DEVICES as EMBED_DEVICES
from taxonomy.constants import DEFAULT_TEST_TEXT_TYPE, MIXED, TEXT_TYPES

# Run configs (`--config NAME`): JSON files in training/configs, loaded into `params.TrainConfig`.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = "bioclip"
DEMO_CONFIG = "demo"

# BioCLIP's recipe (Stevens et al. 2024, open_clip defaults for ViT): AdamW, warm-up then cosine.
DEFAULT_LR = 1e-4
DEFAULT_WD = 0.2
DEFAULT_WARMUP = 1000
ADAM_BETAS = (0.9, 0.98)
ADAM_EPS = 1e-6
# open_clip clamps the learned temperature so that logits stay below 100 (CLIP paper, §2.5).
LOGIT_SCALE_MAX = 100.0

DEFAULT_EPOCHS = 1
DEFAULT_BATCH_SIZE = 256  # per process; the global batch is this times the world size
DEFAULT_SEED = 0
DEFAULT_WORKERS = 2
PREFETCH_FACTOR = 2
DEFAULT_SPLIT = "train"
DEFAULT_VAL_SPLIT = "val"
DEFAULT_LOG_EVERY = 10
ZERO_SHOT_BATCH_SIZE = 256

TEXT_TYPE_CHOICES: tuple[str, ...] = (MIXED, *TEXT_TYPES)
DEFAULT_TEXT_TYPE = MIXED
DEFAULT_ZERO_SHOT_TEXT_TYPE = DEFAULT_TEST_TEXT_TYPE

PRECISIONS: tuple[str, ...] = ("bf16", "fp32")
DEVICES: tuple[str, ...] = (AUTO_DEVICE, *EMBED_DEVICES)  # embed.device's vocabulary, with `auto`

# TreeOfLife-10M's webdataset keys for our five text types: each holds the full caption,
# `a photo of ...`, exactly as SPEC §4 writes it (`taxon.txt` is the plain taxonomic caption;
# `taxonomic_name.txt`, `scientific_name.txt`, `common_name.txt` hold bare names, not captions).
SHARD_IMAGE_KEY = "jpg"
# In TEXT_TYPES' order: taxonomic, scientific, common, sci_com, taxon_com.
SHARD_TEXT_KEYS: dict[str, str] = dict(zip(TEXT_TYPES, ("taxon.txt", "sci.txt", "com.txt", "sci_com.txt",
                                                         "taxon_com.txt"), strict=True))
SHARD_NAME_KEYS: dict[str, str] = {
    "taxonomic_name.txt": "taxonomic",
    "scientific_name.txt": "scientific",
    "common_name.txt": "common",
}
SHARD_PATTERN = "shard-%06d.tar"
SHARD_SIZES_FILE = "sizes.json"  # {shard file name: sample count}, as open_clip's get_dataset_size reads
DEFAULT_PER_SHARD = 10_000
SHARD_JPEG_QUALITY = 95
SHUFFLE_BUFFER = 1000  # samples held per loader worker to shuffle shard streams

# Files written into --out.
LOG_FILE = "train_log.csv"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoints"
LATEST_CHECKPOINT = "latest.pt"
EPOCH_CHECKPOINT = "epoch_{epoch}.pt"
# Checkpoints hold tensors and plain data only (loaded with weights_only=True); the format number
# changes whenever their layout does, so that an older file is refused rather than misread.
CHECKPOINT_FORMAT_KEY = "format"
CHECKPOINT_FORMAT = 2
TORCH_FILE_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
CHECKPOINT_KEYS: tuple[str, ...] = (
    "model", "optimizer", "step", "epoch", "step_in_epoch", "steps_per_epoch", "world_size", "rng", "config",
)
MODEL_DIR = "model"
CONFIG_FILE = "config.json"
LOG_COLUMNS: tuple[str, ...] = (
    "step", "epoch", "loss", "lr", "text_type", "logit_scale", "samples_per_s", "memory_mb",
)

EXIT_FAILED = 1  # a command that could not run: one line on stderr says why

# For a short run the warm-up may not exceed this fraction of all steps (BioCLIP's 1,000 steps
# are 0.3 % of its 300k; a 60-step demo would otherwise never leave the warm-up).
MAX_WARMUP_FRACTION = 0.1
