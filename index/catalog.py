"""`Catalog`: the SQL catalog of images, taxa, embeddings and build runs behind one facade.

Only records leave this class (`ImageRecord`, `Taxon`, `BuildRun`, ...), never ORM rows or
sessions. Any SQLAlchemy URL works; SQLite (the default, `./var/catalog.db`) runs in WAL mode
with foreign keys on, so a build can read while an ingest writes.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from index.config import CatalogError, resolve_db_url
from index.constants import (
    DB_DRIVER_INSTALL, IMAGE_GONE, IMAGE_PRESENT, INGEST_BATCH_SIZE, INGEST_WORKERS, MAX_STORED_FAILURES, QUERY_CHUNK,
    RUN_END_STATUSES, RUN_RUNNING, SQLITE_HEADER,
)
from index.ingest import Progress, ingest_collection
from index.models import (
    Base, BuildRunRow, EmbeddingRow, ImageRow, IngestRow, TaxonRow, as_utc, build_run_record,
    failure_value, image_record, problem_record, taxon_record, utcnow,
)
from index.readers import Collection
from index.records import BuildRun, CatalogStats, ImageRecord, IngestSummary, Problem
from taxonomy.constants import Rank
from taxonomy.taxon import Taxon

logger = logging.getLogger(__name__)

_SQLITE_BUSY_TIMEOUT_S = 30  # a build and an ingest may write at the same time


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _prepare_sqlite_file(path: Path) -> None:
    """Refuse a folder or a file of another kind before SQLite opens it (it fails on first use only),
    and create the folder of a new file."""
    if path.is_dir():
        raise CatalogError(str(path), "it is a folder, not an SQLite file")
    if path.is_file():
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
        if header and header != SQLITE_HEADER:
            raise CatalogError(str(path), "it is not an SQLite database (it does not start with SQLite's header)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CatalogError(str(path), f"its folder cannot be created ({e.strerror}: {e.filename})") from None


def make_engine(url: str) -> Engine:
    """An engine for `url`; for an SQLite file, its folder is created first.

    Raises:
        CatalogError: an SQLite path that is a folder or another kind of file, or a URL whose
            driver is not installed (with the command that installs it).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        try:
            return create_engine(url)
        except ImportError as e:
            install = DB_DRIVER_INSTALL.get(e.name or "", f"pip install {e.name}")
            raise CatalogError(parsed.render_as_string(hide_password=True),
                               f"its driver {e.name!r} is not installed ({install})") from None
    database = parsed.database or ""
    if database in ("", ":memory:"):
        # One shared connection, or every session would see its own empty in-memory database.
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        if not database.startswith("file:"):
            _prepare_sqlite_file(Path(database).expanduser())
        engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _chunks(items: Sequence[Any], size: int = QUERY_CHUNK) -> list[Sequence[Any]]:
    return [items[start:start + size] for start in range(0, len(items), size)]


class Catalog:
    """The catalog at `url` (`--db` value); None means `$TOL_DB`, then `./var/catalog.db`.

    Raises:
        CatalogError (a ValueError): `url` is not a database URL or SQLite file, its driver is
            missing, or the database cannot be opened; one line naming the value and what is accepted.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = resolve_db_url(url)
        self._engine = make_engine(self.url)
        try:
            Base.metadata.create_all(self._engine)
        except DBAPIError as e:
            self._engine.dispose()
            reason = str(e.orig or e).strip().splitlines()[0]
            raise CatalogError(self._engine.url.render_as_string(hide_password=True), reason) from None
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"Catalog({self._engine.url.render_as_string(hide_password=True)!r})"

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._engine.dispose()

    # --- ingest and reading ------------------------------------------------------------------------

    def ingest(self, collection: Collection, *, strict: bool = False, progress: Progress | None = None,
               batch_size: int = INGEST_BATCH_SIZE, workers: int = INGEST_WORKERS) -> IngestSummary:
        """Bring the catalog in line with `collection` (see `index.ingest`).

        Raises:
            taxonomy.validate.InconsistentLineageError (a ValueError): `strict` and lineages
                disagree; nothing is written.
        """
        return ingest_collection(self._sessions, collection, strict=strict, progress=progress,
                                 batch_size=batch_size, workers=workers)

    def images(self, split: str | None = None, include_gone: bool = False) -> list[ImageRecord]:
        """Present images (and gone ones with `include_gone`), optionally of one split, by root and path."""
        query = select(ImageRow).order_by(ImageRow.root, ImageRow.path)
        if not include_gone:
            query = query.where(ImageRow.status == IMAGE_PRESENT)
        if split is not None:
            query = query.where(ImageRow.split == split)
        with self._sessions() as session:
            return [image_record(row) for row in session.scalars(query)]

    def image(self, image_id: str) -> ImageRecord | None:
        """The image with this point id, present or gone; None when the catalog never had it."""
        with self._sessions() as session:
            row = session.get(ImageRow, image_id)
            return image_record(row) if row is not None else None

    def taxa(self, rank: Rank | str | int | None = None) -> list[Taxon]:
        """The taxa of the present images (as of the last ingest), by rank then key."""
        query = select(TaxonRow)
        if rank is not None:
            query = query.where(TaxonRow.rank == Rank.parse(rank).label)
        with self._sessions() as session:
            taxa = [taxon_record(row) for row in session.scalars(query)]
        return sorted(taxa, key=lambda taxon: (taxon.rank, taxon.key))

    def stats(self) -> CatalogStats:
        """Counts per rank, images per kingdom and split, embeddings per model, last ingest's problems."""
        present = ImageRow.status == IMAGE_PRESENT
        with self._sessions() as session:
            by_status = dict(session.execute(select(ImageRow.status, func.count()).group_by(ImageRow.status)).all())
            per_rank = dict(session.execute(select(TaxonRow.rank, func.count()).group_by(TaxonRow.rank)).all())
            per_kingdom = session.execute(select(ImageRow.kingdom, func.count()).where(present)
                                          .group_by(ImageRow.kingdom).order_by(ImageRow.kingdom)).all()
            per_split = session.execute(select(ImageRow.split, func.count()).where(present)
                                        .group_by(ImageRow.split).order_by(ImageRow.split)).all()
            embedded = session.execute(
                select(EmbeddingRow.model, func.count()).join(ImageRow, self._embedding_is_current())
                .where(present).group_by(EmbeddingRow.model).order_by(EmbeddingRow.model)).all()
            last = session.scalars(select(IngestRow).order_by(IngestRow.id.desc()).limit(1)).first()
        return CatalogStats(
            images=by_status.get(IMAGE_PRESENT, 0), gone=by_status.get(IMAGE_GONE, 0),
            taxa_per_rank={rank.label: per_rank.get(rank.label, 0) for rank in Rank},
            images_per_kingdom=dict(per_kingdom), images_per_split=dict(per_split), embedded=dict(embedded),
            last_ingest=as_utc(last.finished) if last else None, last_ingest_root=last.root if last else "",
            problems=[problem_record(value) for value in last.problems] if last else [],
        )

    # --- the embedding build -------------------------------------------------------------------------

    @staticmethod
    def _embedding_is_current(model: str | None = None) -> Any:
        condition = (EmbeddingRow.image_id == ImageRow.id) & (EmbeddingRow.sha256 == ImageRow.sha256)
        return condition & (EmbeddingRow.model == model) if model is not None else condition

    def images_to_embed(self, model: str) -> list[ImageRecord]:
        """Present images that `model` has not embedded at their current sha256, by root and path."""
        query = (select(ImageRow).outerjoin(EmbeddingRow, self._embedding_is_current(model))
                 .where(ImageRow.status == IMAGE_PRESENT, EmbeddingRow.image_id.is_(None))
                 .order_by(ImageRow.root, ImageRow.path))
        with self._sessions() as session:
            return [image_record(row) for row in session.scalars(query)]

    def stale_embeddings(self, model: str) -> set[str]:
        """Ids of present images that `model` embedded at another sha256: the file changed since."""
        query = (select(ImageRow.id).join(EmbeddingRow, (EmbeddingRow.image_id == ImageRow.id)
                                          & (EmbeddingRow.model == model))
                 .where(ImageRow.status == IMAGE_PRESENT, EmbeddingRow.sha256 != ImageRow.sha256))
        with self._sessions() as session:
            return set(session.scalars(query))

    def mark_embedded(self, model: str, records: Sequence[ImageRecord]) -> None:
        """Record that `model` embedded these images at the sha256 each record carries.

        Raises:
            ValueError: a record's image is not in the catalog.
        """
        _check_name("model", model)
        with self._sessions.begin() as session:
            for chunk in _chunks(list(records)):
                ids = [record.id for record in chunk]
                known = set(session.scalars(select(ImageRow.id).where(ImageRow.id.in_(ids))))
                unknown = [record.path for record in chunk if record.id not in known]
                if unknown:
                    raise ValueError(f"{len(unknown)} images are not in the catalog, e.g. {unknown[:3]}")
                existing = {row.image_id: row for row in session.scalars(
                    select(EmbeddingRow).where(EmbeddingRow.model == model, EmbeddingRow.image_id.in_(ids)))}
                now = utcnow()
                for record in chunk:
                    row = existing.get(record.id)
                    if row is None:
                        row = EmbeddingRow(image_id=record.id, model=model)
                        session.add(row)
                        existing[record.id] = row
                    row.sha256, row.embedded = record.sha256, now

    def embedded_count(self, model: str) -> int:
        """Present images that `model` has embedded at their current sha256."""
        query = (select(func.count()).select_from(ImageRow).join(EmbeddingRow, self._embedding_is_current(model))
                 .where(ImageRow.status == IMAGE_PRESENT))
        with self._sessions() as session:
            return int(session.scalar(query) or 0)

    def start_run(self, model: str, spec: str, store: str) -> int:
        """Open a build run in state `running`; returns its id."""
        _check_name("model", model)
        with self._sessions.begin() as session:
            row = BuildRunRow(model=model, spec=spec, store=store, started=utcnow(), status=RUN_RUNNING,
                              failures=[])
            session.add(row)
            session.flush()
            return row.id

    def update_run(self, run_id: int, *, done: int = 0, skipped: int = 0, failed: int = 0,
                   failures: Sequence[Problem] = (), rate: float | None = None) -> None:
        """Add counts and failures to a run; `rate` (images/s) replaces the last one."""
        with self._sessions.begin() as session:
            row = self._run_row(session, run_id)
            row.done += done
            row.skipped += skipped
            row.failed += failed
            if failures:
                room = MAX_STORED_FAILURES - len(row.failures or [])
                if room < len(failures):
                    logger.warning("run %d: keeping only the first %d failure details", run_id, MAX_STORED_FAILURES)
                row.failures = [*(row.failures or []), *(failure_value(p) for p in list(failures)[:max(room, 0)])]
            if rate is not None:
                row.rate = float(rate)

    def finish_run(self, run_id: int, status: str) -> None:
        """Close a run as `done`, `failed` or `interrupted`."""
        if status not in RUN_END_STATUSES:
            raise ValueError(f"unknown final run status {status!r}; expected one of {', '.join(RUN_END_STATUSES)}")
        with self._sessions.begin() as session:
            row = self._run_row(session, run_id)
            row.status, row.finished = status, utcnow()

    def runs(self, model: str | None = None) -> list[BuildRun]:
        """Build runs, newest first, optionally of one model."""
        query = select(BuildRunRow).order_by(BuildRunRow.id.desc())
        if model is not None:
            query = query.where(BuildRunRow.model == model)
        with self._sessions() as session:
            return [build_run_record(row) for row in session.scalars(query)]

    @staticmethod
    def _run_row(session: Session, run_id: int) -> BuildRunRow:
        row = session.get(BuildRunRow, run_id)
        if row is None:
            raise KeyError(f"no build run {run_id} in the catalog")
        return row


def _check_name(what: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty name, got {value!r}")
