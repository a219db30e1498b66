"""Logging set-up (once per entry point) and the CSV log of a run."""
from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def setup_logging(level: int = logging.INFO, rank: int = 0) -> None:
    """Messages to stderr with their time, replacing any set-up; processes other than rank 0 only report
    warnings and errors (`toolkit.cli.setup_logging`)."""
    from toolkit.cli import setup_logging as setup

    setup(level, rank=rank, timestamps=True, replace=True)


class CsvLog:
    """Rows appended to a CSV file; on resume, rows past the checkpoint's step are dropped first.

    Rows written after the last checkpoint of a killed run would otherwise appear twice.
    """

    def __init__(self, path: Path, columns: Sequence[str], resume_step: int | None = None) -> None:
        self.path = path
        self.columns = list(columns)
        kept: list[dict[str, str]] = []
        if resume_step is not None and path.is_file():
            with path.open(newline="", encoding="utf-8") as handle:
                kept = [row for row in csv.DictReader(handle) if int(row["step"]) < resume_step]
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._handle, fieldnames=self.columns)
        self._writer.writeheader()
        self._writer.writerows(kept)
        self._handle.flush()

    def write(self, row: dict[str, Any]) -> None:
        self._writer.writerow({key: row.get(key, "") for key in self.columns})
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()
