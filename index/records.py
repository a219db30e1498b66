"""Records that leave `index/`: plain frozen dataclasses, never ORM or Qdrant objects."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taxonomy import Lineage, point_id

IMAGE_KEY_PREFIX = "image/"


def image_point_id(path: str) -> str:
    """The point id of an image: UUIDv5 of its path relative to the collection root."""
    return point_id(IMAGE_KEY_PREFIX + path)


@dataclass(frozen=True)
class CatalogEntry:
    """One row of a collection as read, before its file is checked."""

    path: str  # relative to the images root, POSIX separators
    lineage: Lineage
    origin: str  # the catalog file or folder the row came from
    row: int | None = None  # 1-based line in a CSV catalog (the header is line 1)
    id: str = ""
    split: str = ""
    source: str = ""
    license: str = ""


@dataclass(frozen=True)
class ImageRecord:
    """An ingested image of the catalog."""

    id: str  # image_point_id(path)
    root: str  # absolute images root of its collection
    path: str
    sha256: str
    bytes: int
    width: int
    height: int
    lineage: Lineage
    split: str = ""
    source: str = ""
    license: str = ""

    @property
    def file(self) -> Path:
        return Path(self.root) / self.path


@dataclass(frozen=True)
class Problem:
    """A bad input, skipped and reported: which file, which row, what is wrong."""

    origin: str  # catalog file, folder or image file
    row: int | None
    path: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.origin}:{self.row}" if self.row is not None else self.origin
        return f"{where}: {self.path}: {self.reason}" if self.path else f"{where}: {self.reason}"
