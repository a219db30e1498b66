"""BioCLIP's published species embeddings, read as they are (SPEC §2 reference taxa).

The folder holds `txt_emb_species.npy`, a float array of shape (dim, N) with one L2-normalised
column per species, and `txt_emb_species.json`, N entries `[[kingdom, ..., genus, epithet], common_name]`.
The array is memory-mapped: a 450k-species file is ~0.9 GB and is read one slice of columns at a time.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index.constants import TOL_NAMES_FILE, TOL_VECTORS_FILE
from index.collection.entries import Problem
from taxonomy.constants import KEY_SEPARATOR, Rank
from taxonomy.lineage import Lineage

logger = logging.getLogger(__name__)

_SPAN_SLACK = 1024  # columns read past the ones asked for before reading them one by one
_ENTRY_FORM = "[[kingdom, phylum, class, order, family, genus, epithet], common_name]"


@dataclass(frozen=True)
class TolEmbeddings:
    """The usable entries of a published embeddings folder; `columns[i]` is the array column of `lineages[i]`."""

    folder: Path
    vectors: np.ndarray  # (dim, N) as published, memory-mapped
    lineages: list[Lineage]
    columns: list[int]
    problems: list[Problem] = field(default_factory=list)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[0])

    def rows(self, positions: list[int] | np.ndarray) -> np.ndarray:
        """The vectors of `lineages[positions]` as a float32 (n, dim) matrix, kept as given."""
        cols = np.asarray([self.columns[p] for p in positions], dtype=np.int64)
        if cols.size == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        lo, hi = int(cols.min()), int(cols.max()) + 1
        if hi - lo > 2 * cols.size + _SPAN_SLACK:  # scattered columns: read only those
            return np.ascontiguousarray(np.asarray(self.vectors[:, np.sort(cols)], dtype=np.float32)[
                :, np.argsort(np.argsort(cols))].T)
        block = np.asarray(self.vectors[:, lo:hi], dtype=np.float32)  # one contiguous slice of the mmap
        return np.ascontiguousarray(block[:, cols - lo].T)


def read_tol_embeddings(folder: Path) -> TolEmbeddings:
    """Check and open a `txt_emb_species.npy` + `.json` folder; entries that cannot be used become problems.

    Raises:
        FileNotFoundError: the folder or one of its two files is missing.
        ValueError: the array is not (dim, N) floats, the JSON is not a list of N entries.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"embeddings folder {folder} {'is not a folder' if folder.exists() else 'not found'}")
    vectors_file, names_file = folder / TOL_VECTORS_FILE, folder / TOL_NAMES_FILE
    for path in (vectors_file, names_file):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; a published embeddings folder holds {TOL_VECTORS_FILE} "
                                    f"and {TOL_NAMES_FILE}")
    try:
        vectors = np.load(vectors_file, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ValueError(f"{vectors_file}: not a numpy array file ({e})") from e
    if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.floating) or vectors.shape[0] == 0:
        raise ValueError(f"{vectors_file}: expected a float array of shape (dim, N), got {vectors.dtype} "
                         f"{vectors.shape}")
    try:
        entries = json.loads(names_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{names_file}: not JSON text ({e})") from e
    if not isinstance(entries, list):
        raise ValueError(f"{names_file}: expected a list of entries {_ENTRY_FORM}, got {type(entries).__name__}")
    if len(entries) != vectors.shape[1]:
        raise ValueError(f"{names_file} has {len(entries)} entries but {vectors_file} has {vectors.shape[1]} "
                         f"columns (shape {vectors.shape}); expected one column per entry")
    lineages, columns, problems = _entries(entries, str(names_file))
    logger.info("%s: %d taxa of %d-d vectors, %d entries skipped", folder, len(lineages), vectors.shape[0],
                len(problems))
    return TolEmbeddings(folder, vectors, lineages, columns, problems)


def _entries(entries: list[object], origin: str) -> tuple[list[Lineage], list[int], list[Problem]]:
    lineages: list[Lineage] = []
    columns: list[int] = []
    problems: list[Problem] = []
    first: dict[str, int] = {}
    for index, entry in enumerate(entries):
        lineage, reason = _entry_lineage(entry)
        if lineage is not None:
            key = lineage.key()
            if key in first:
                lineage, reason = None, f"{key} repeats entry {first[key]}"
            else:
                first[key] = index
        if lineage is None:
            problems.append(Problem(origin, index, "", reason))
            continue
        lineages.append(lineage)
        columns.append(index)
    return lineages, columns, problems


def _entry_lineage(entry: object) -> tuple[Lineage | None, str]:
    """The lineage of one JSON entry, or None and why not (the entry's index is its column)."""
    if (not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], list)
            or not all(isinstance(name, (str, type(None))) for name in entry[0])
            or not isinstance(entry[1], (str, type(None)))):
        return None, f"expected {_ENTRY_FORM}, got {json.dumps(entry)[:80]}"
    try:
        lineage = Lineage.from_ranks(entry[0], entry[1] or "")
    except ValueError as e:
        return None, str(e)
    if lineage.is_empty:
        return None, "no rank given"
    slashed = [rank for rank in Rank if KEY_SEPARATOR in lineage.get(rank)]
    if slashed:
        return None, f"{KEY_SEPARATOR!r} in the {slashed[0].label} name {lineage.get(slashed[0])!r}"
    return lineage, ""
