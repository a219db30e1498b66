"""Every literal of the embed package: model ids, file names, batch sizes, devices (SPEC §6-§7)."""
from __future__ import annotations

from pathlib import Path

from toolkit.settings import DEFAULT_MODEL

# Model specs (SPEC §7). `hf-hub:` and `local-dir:` are open_clip's own schemas, passed through unchanged.
HF_HUB_PREFIX = "hf-hub:"
LOCAL_DIR_PREFIX = "local-dir:"
BIOCLIP_MODEL = DEFAULT_MODEL  # the default of --model and $TOL_MODEL (toolkit.settings) is BioCLIP
BIOCLIP_2_MODEL = "hf-hub:imageomics/bioclip-2"
TOL_TINY_MODEL = "tol-tiny"
# Vector dimensions of Hub models whose config may not be reachable offline (a ToL import checks them).
KNOWN_HUB_DIMS: dict[str, int] = {BIOCLIP_MODEL: 512, BIOCLIP_2_MODEL: 768}
RANDOM_INIT_SEED = 0  # models without weights are seeded: a build and its resume agree
PRETRAINED_SEPARATOR = ":"  # `ViT-B-16:openai` = open_clip built-in name + pretrained tag

# A model folder in open_clip's hub layout: what `training` writes and `load_model(folder)` reads.
OPEN_CLIP_CONFIG_FILE = "open_clip_config.json"
OPEN_CLIP_WEIGHTS_FILE = "open_clip_model.safetensors"
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
TRAINED_MODEL_FOLDER = "model"  # training's `<run>/model`: its vector name takes the run's name
WEIGHTS_HASH_CHARS = 8  # hex digits of the weights' sha256 in a model folder's vector name
# How a weights file (`NAME:FILE`) starts: a torch.save zip archive, torch's legacy pickle (protocol 2,
# then its magic number), or safetensors (a little-endian header length, then the JSON header's `{`).
TORCH_ZIP_MAGIC = b"PK\x03\x04"
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
SAFETENSORS_HEADER_OFFSET = 8
WEIGHTS_FORMS = "a .safetensors file or a torch.save file of a state dict"

# Defaults of the build.
DEFAULT_BATCH_SIZE = 64
DEFAULT_TEXT_BATCH_SIZE = 256
# Taxa encoded and written together: 81 template texts each, so ~10k strings per store write.
TAXA_PER_CHUNK = 128
CPU_DEVICE = "cpu"
CUDA_DEVICE = "cuda"
AUTO_DEVICE = "auto"  # training's choice: cuda when torch sees a GPU, else cpu (embed.device.resolve_device)
DEFAULT_DEVICE = CPU_DEVICE
DEVICES: tuple[str, ...] = (CPU_DEVICE, CUDA_DEVICE)
DEVICE_FORMS = "cpu, cuda or cuda:N"
# DataLoader workers when --workers is not given (`embed.build.default_workers`): on CPU half the
# cores decode and the other half run the model; with a GPU the model needs one core, so all but
# two decode (SPEC §8: CPU decoding is the ceiling of a GPU build). Capped to bound memory.
MAX_DEFAULT_WORKERS = 16
PREFETCH_FACTOR = 4

# Reference taxa (`python -m embed taxa`, SPEC §2, §5, §7).
NCBI_SET = "ncbi"  # the default set name of --ncbi; clades added under one name accumulate
TOL_SET = "tol-10m"  # the default set name of --tol-embeddings (BioCLIP's TreeOfLife-10M species)
SET_KINDS: tuple[str, ...] = ("ncbi", "checklist", "tol")
# Names a set may not take: `catalog` is the collection's own, `all` picks every set in `predict --taxa`.
RESERVED_SET_NAMES: tuple[str, ...] = ("catalog", "all")
REFERENCE_CHUNK = 512  # taxa looked up, encoded or copied, and written together
HIGHER_RANK_VECTORS: tuple[str, ...] = ("mean", "text")  # how a ToL import gets its genera, families, ...
DEFAULT_HIGHER_RANK_VECTORS = "mean"
# `text` of a higher rank whose vector is the normalised mean of its species' published vectors.
MEAN_TEXT = "mean of {n} species vectors: {caption}"
