"""A pickle that runs code when loaded: what a hostile weights file or checkpoint would hold."""
from __future__ import annotations

from pathlib import Path


class Planted:
    """Unpickling this calls `open(marker, "w")`: the file appears only if the file's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return open, (str(self.marker), "w")
