"""Records that leave `index/`: plain frozen dataclasses, never ORM or Qdrant objects."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from datetime import datetime
from pathlib import Path

from index.collection.entries import Problem
from index.constants import IMAGE_PRESENT
from taxonomy import Lineage

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
    status: str = IMAGE_PRESENT  # IMAGE_GONE once its row left the collection

    @property
    def file(self) -> Path:
        return Path(self.root) / self.path

    @property
    def taxon(self) -> str:
        """The key of the deepest known rank, "" for an unlabelled image."""
        return self.lineage.key()


@dataclass(frozen=True)
class IngestSummary:
    """What one ingest did; `problems` are the skipped inputs, each with its file and row."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    gone: int = 0
    skipped: int = 0
    problems: list[Problem] = field(default_factory=list)
    unknown_columns: tuple[str, ...] = ()
    conflicts: list[str] = field(default_factory=list)  # inconsistent lineages settled by majority
    root: str = ""

    @property
    def read(self) -> int:
        """Images of the collection now in the catalog (added, updated or unchanged)."""
        return self.added + self.updated + self.unchanged


@dataclass(frozen=True)
class CatalogStats:
    """Counts over present images, and the problems of the last ingest."""

    images: int
    gone: int
    taxa_per_rank: dict[str, int]  # rank label -> taxa, every rank listed
    images_per_kingdom: dict[str, int]  # "" for unlabelled images
    images_per_split: dict[str, int]  # "" for images without a split
    embedded: dict[str, int]  # "vector in store" -> present images whose vector there is current
    last_ingest: datetime | None = None
    last_ingest_root: str = ""
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class BuildRun:
    """One embedding build of one model into one store."""

    id: int
    model: str  # the vector name
    spec: str  # the open_clip model spec
    store: str
    started: datetime
    finished: datetime | None
    status: str  # running | done | failed | interrupted
    done: int = 0
    skipped: int = 0
    failed: int = 0
    rate: float = 0.0  # images per second
    failures: tuple[Problem, ...] = ()
    pid: int | None = None  # the build's process, on `host`
    host: str = ""
    heartbeat: datetime | None = None  # when it last reported progress


@dataclass(frozen=True)
class ReferenceSet:
    """A named set of reference taxa in one store (`python -m embed taxa`), as the catalog records it."""

    name: str  # the value in each of its taxa's `sources`
    kind: str  # ncbi | checklist | tol
    arguments: tuple[str, ...]  # clades, or the file or folder it was read from
    model: str  # the vector name its vectors fill
    spec: str
    store: str
    details: dict[str, Any] = field(default_factory=dict)  # templates, text type, counts per rank
    added: datetime | None = None
    updated: datetime | None = None
