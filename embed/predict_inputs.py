"""The files `predict` reads besides images, as pybioclip reads them (SPEC §7).

- `--subset CSV`: the first column is named after a rank; its values restrict the candidate
  species to those of these taxa (`species` values are binomials, `Pica hudsonia`).
- `--cls LABELS|FILE`: custom labels, a comma-separated list or a file with one label a line.
- `--bins CSV`: a header, then `label,bin` rows; the labels' probabilities are added per bin.

Each error names the file and, where there is one, the row.
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from taxonomy import RANK_LABELS, Rank, parse_key

logger = logging.getLogger(__name__)


class PredictInputError(ValueError):
    """A --subset, --cls or --bins value that cannot be used."""


@dataclass(frozen=True)
class Subset:
    """Candidate species restricted to those whose name at `rank` is one of `values` (pybioclip's --subset)."""

    rank: Rank
    values: frozenset[str]
    source: str = ""  # the file it came from, for messages

    def name_of(self, key: str) -> str:
        """The name at this subset's rank of the taxon `key` ("" when the taxon is above that rank)."""
        lineage = parse_key(key)
        if key.count("/") < self.rank:
            return ""
        return lineage.binomial if self.rank == Rank.SPECIES else lineage.get(self.rank)

    def keeps(self, key: str) -> bool:
        return self.name_of(key) in self.values

    def check_known(self, keys: list[str]) -> None:
        """Raise, naming the unknown values, when some value names no candidate taxon (pybioclip does)."""
        known = {self.name_of(key) for key in keys}
        unknown = sorted(self.values - known)
        if unknown:
            shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
            raise PredictInputError(f"{self.source}: unknown {self.rank.label} received: {shown}. "
                                    f"Only {self.rank.label} of the candidate taxa may be used")


def _rows(path: str) -> list[list[str]]:
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with file.open(newline="", encoding="utf-8-sig") as f:
            return [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise PredictInputError(f"{path}: not a readable CSV file ({e})") from e


def read_subset(path: str) -> Subset:
    """pybioclip's --subset CSV: a rank-named first column and the names to keep."""
    rows = _rows(path)
    if not rows:
        raise PredictInputError(f"{path}: empty; expected a header naming a rank ({','.join(RANK_LABELS)})")
    column = rows[0][0].strip().lower()
    if column not in RANK_LABELS:
        raise PredictInputError(f"{path}: the first column is named {rows[0][0]!r} but must be one of "
                                f"{','.join(RANK_LABELS)}")
    rank = Rank.parse(column)
    values = frozenset(" ".join(row[0].split()) for row in rows[1:] if row and row[0].strip())
    if not values:
        raise PredictInputError(f"{path}: no {column} below the header")
    return Subset(rank, values, path)


def read_labels(value: str) -> list[str]:
    """--cls: a file with one label a line when `value` is an existing file, else a comma-separated list."""
    file = Path(value).expanduser()
    if file.is_file():
        try:
            labels = [line.strip() for line in file.read_text(encoding="utf-8-sig").splitlines()]
        except UnicodeDecodeError as e:
            raise PredictInputError(f"{value}: not a text file of labels ({e})") from e
        where = value
    else:
        labels = [label.strip() for label in value.split(",")]
        where = "--cls"
    labels = [label for label in labels if label]
    if not labels:
        raise PredictInputError(f"{where}: no labels; give a comma-separated list or a file with one label a line")
    unique = list(dict.fromkeys(labels))
    if len(unique) < len(labels):
        logger.warning("%s: %d repeated labels taken once", where, len(labels) - len(unique))
    return unique


def read_bins(path: str) -> dict[str, str]:
    """--bins: a CSV with a header and two columns, label then bin; label -> bin, in file order."""
    rows = _rows(path)
    if not rows or len(rows[0]) < 2:
        raise PredictInputError(f"{path}: expected a header and two columns (label, bin)")
    bins: dict[str, str] = {}
    for number, row in enumerate(rows[1:], start=2):
        label = row[0].strip() if row else ""
        value = row[1].strip() if len(row) > 1 else ""
        if not label:
            raise PredictInputError(f"{path} row {number}: empty label")
        if not value or value.lower() == "nan":
            raise PredictInputError(f"{path} row {number}: empty bin for label {label!r}; every label needs a bin")
        if label in bins and bins[label] != value:
            raise PredictInputError(f"{path} row {number}: label {label!r} is already in bin {bins[label]!r}")
        bins[label] = value
    if not bins:
        raise PredictInputError(f"{path}: no label,bin rows below the header")
    return bins
