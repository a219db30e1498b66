"""The SQL catalog's tables (SQLAlchemy 2 ORM) and their conversion to records.

ORM rows never leave `index/`: the functions at the end of this module are the one place where a
row becomes a record (`ImageRecord`, `Taxon`, `BuildRun`) or a record a row.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from index.constants import (
    ID_LENGTH, IMAGE_PRESENT, KEY_LENGTH, NAME_LENGTH, PATH_LENGTH, RUN_RUNNING, SHA256_LENGTH,
    STATUS_LENGTH,
)
from index.collection.entries import Problem
from index.records import BuildRun, ImageRecord, ReferenceSet
from taxonomy.constants import RANK_LABELS, Rank
from taxonomy.lineage import Lineage
from taxonomy.taxon import Taxon

COMMON_NAME = "common_name"
LINEAGE_COLUMNS: tuple[str, ...] = (*RANK_LABELS, COMMON_NAME)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored one is UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment and moment.tzinfo is None else moment


class Base(DeclarativeBase):
    pass


def _lineage_columns() -> type:
    """A mixin with one column per rank label (`class` included) and `common_name`.

    Built from `RANK_LABELS` so the list of ranks is written once; read them with `getattr`.
    """
    columns = {label: mapped_column(String(NAME_LENGTH), nullable=False, default="") for label in LINEAGE_COLUMNS}
    return type("LineageColumns", (), columns)


LineageColumns = _lineage_columns()


class TaxonRow(LineageColumns, Base):
    """A taxon of the present images, rebuilt at the end of every ingest."""

    __tablename__ = "taxa"

    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    rank: Mapped[str] = mapped_column(String(STATUS_LENGTH), index=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    parent: Mapped[str] = mapped_column(String(KEY_LENGTH), default="")
    n_images: Mapped[int] = mapped_column(Integer, default=0)


class ImageRow(LineageColumns, Base):
    """An image of a collection; `gone` once it left its collection, never deleted."""

    __tablename__ = "images"
    __table_args__ = (Index("ix_images_root_status", "root", "status"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    root: Mapped[str] = mapped_column(String(PATH_LENGTH))
    path: Mapped[str] = mapped_column(String(PATH_LENGTH))
    sha256: Mapped[str] = mapped_column(String(SHA256_LENGTH))
    bytes: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger, default=0)  # with `bytes`, skips re-hashing unchanged files
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    split: Mapped[str] = mapped_column(String(NAME_LENGTH), default="", index=True)
    license: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    taxon: Mapped[str] = mapped_column(String(KEY_LENGTH), default="", index=True)
    status: Mapped[str] = mapped_column(String(STATUS_LENGTH), default=IMAGE_PRESENT, index=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EmbeddingRow(Base):
    """That `model`'s vector of `image_id` is in `store`, made when its file had `sha256`.

    `embedded` is when the point's vector or payload was last written: an image row updated
    after it (relabelled) has a stale payload in that store.
    """

    __tablename__ = "embeddings"
    __table_args__ = (Index("ix_embeddings_model_store", "model", "store"),)

    image_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    store: Mapped[str] = mapped_column(String(PATH_LENGTH), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(SHA256_LENGTH))
    embedded: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


_RUNNING = text(f"status = '{RUN_RUNNING}'")
RUNNING_RUN_INDEX = "uq_build_runs_running"


class BuildRunRow(Base):
    """One embedding build; counts are added as batches finish.

    At most one run of a model into a store is `running` (a partial unique index): a second
    build of the same model into the same store fails to insert its row. `pid` and `host` say
    who runs it, `heartbeat` when it last finished a batch, so a killed run can be told apart.
    """

    __tablename__ = "build_runs"
    __table_args__ = (
        Index(RUNNING_RUN_INDEX, "model", "store", unique=True, sqlite_where=_RUNNING,
              postgresql_where=_RUNNING),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH), index=True)
    spec: Mapped[str] = mapped_column(String(PATH_LENGTH))
    store: Mapped[str] = mapped_column(String(PATH_LENGTH))
    started: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(STATUS_LENGTH), default=RUN_RUNNING)
    done: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    rate: Mapped[float] = mapped_column(Float, default=0.0)
    failures: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{path, reason}]
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    host: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    heartbeat: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ModelRow(Base):
    """The weights behind a vector name: one name never holds two models' vectors."""

    __tablename__ = "models"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)  # the vector name
    spec: Mapped[str] = mapped_column(String(PATH_LENGTH))
    fingerprint: Mapped[str] = mapped_column(String(PATH_LENGTH))
    registered: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReferenceSetRow(Base):
    """A reference set of taxa in one store: what was asked to make it, and what it held when last written.

    Which taxa belong to it lives in the store (each taxon's `sources`), where `predict` reads it;
    this row keeps what the store cannot: the set's kind, arguments and model.
    """

    __tablename__ = "reference_sets"

    store: Mapped[str] = mapped_column(String(PATH_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    kind: Mapped[str] = mapped_column(String(STATUS_LENGTH))
    arguments: Mapped[list[str]] = mapped_column(JSON, default=list)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH))  # the vector name its vectors fill
    spec: Mapped[str] = mapped_column(String(PATH_LENGTH))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # templates, text type, counts per rank
    added: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MetaRow(Base):
    """Facts about the catalog itself: its schema version."""

    __tablename__ = "catalog_meta"

    key: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    value: Mapped[str] = mapped_column(String(NAME_LENGTH))


class IngestRow(Base):
    """One ingest, kept so that `stats` can show the problems of the last one."""

    __tablename__ = "ingests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    root: Mapped[str] = mapped_column(String(PATH_LENGTH))
    finished: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    added: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    gone: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{origin, row, path, reason}]


# --- conversion: the one place rows and records meet ---------------------------------------------

def lineage_of(row: Any) -> Lineage:
    """The lineage held in a row's rank columns (an ORM row or a result row)."""
    return Lineage(*(getattr(row, label) or "" for label in RANK_LABELS),
                   common_name=getattr(row, COMMON_NAME) or "")


def lineage_values(lineage: Lineage) -> dict[str, str]:
    return lineage.as_dict()


def image_record(row: ImageRow) -> ImageRecord:
    return ImageRecord(
        id=row.id, root=row.root, path=row.path, sha256=row.sha256, bytes=row.bytes,
        width=row.width, height=row.height, lineage=lineage_of(row), split=row.split,
        source=row.source, license=row.license, status=row.status,
    )


def taxon_record(row: TaxonRow) -> Taxon:
    return Taxon(lineage_of(row), Rank.parse(row.rank), row.n_images)


def taxon_values(taxon: Taxon) -> dict[str, Any]:
    return {"key": taxon.key, "rank": taxon.rank.label, "name": taxon.name, "parent": taxon.parent,
            "n_images": taxon.n_images, **lineage_values(taxon.lineage)}


def problem_value(problem: Problem) -> dict[str, Any]:
    return {"origin": problem.origin, "row": problem.row, "path": problem.path, "reason": problem.reason}


def problem_record(value: dict[str, Any]) -> Problem:
    return Problem(value.get("origin", ""), value.get("row"), value.get("path", ""), value.get("reason", ""))


def failure_value(problem: Problem) -> dict[str, str]:
    return {"path": problem.path, "reason": problem.reason}


def build_run_record(row: BuildRunRow) -> BuildRun:
    return BuildRun(
        id=row.id, model=row.model, spec=row.spec, store=row.store, started=as_utc(row.started),
        finished=as_utc(row.finished), status=row.status, done=row.done, skipped=row.skipped,
        failed=row.failed, rate=row.rate, failures=tuple(problem_record(f) for f in row.failures or ()),
        pid=row.pid, host=row.host or "", heartbeat=as_utc(row.heartbeat),
    )


def reference_set_record(row: ReferenceSetRow) -> ReferenceSet:
    return ReferenceSet(
        name=row.name, kind=row.kind, arguments=tuple(row.arguments or ()), model=row.model, spec=row.spec,
        store=row.store, details=dict(row.details or {}), added=as_utc(row.added), updated=as_utc(row.updated),
    )
