"""What reading a collection yields: one entry per usable row, one problem per bad one."""
from __future__ import annotations

from dataclasses import dataclass

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
class Problem:
    """A bad input, skipped and reported: which file, which row, what is wrong."""

    origin: str  # catalog file, folder or image file
    row: int | None
    path: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.origin}:{self.row}" if self.row is not None else self.origin
        return ": ".join(part for part in (where, self.path, self.reason) if part)
