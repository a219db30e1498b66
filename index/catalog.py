"""`Catalog`: the SQL catalog of images, taxa, embeddings and build runs behind one facade.

Only records leave this class (`ImageRecord`, `Taxon`, `BuildRun`, ...), never ORM rows or
sessions. Any SQLAlchemy URL works; SQLite (the default, `./var/catalog.db`) runs in WAL mode
with foreign keys on, so a build can read while an ingest writes.
"""
from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from index.config import CatalogLocationError, resolve_db_url
from index.constants import (
    DB_DRIVER_INSTALL, IMAGE_GONE, IMAGE_PRESENT, INGEST_BATCH_SIZE, INGEST_WORKERS, MAX_STORED_FAILURES,
    QUERY_CHUNK, RUN_END_STATUSES, RUN_INTERRUPTED, RUN_RUNNING, RUN_SILENT_AFTER_S, SQLITE_HEADER,
)
from index.ingest import Progress, ingest_collection
from index.errors import CatalogError
from index.migrations import upgrade
from index.orm import (
    BuildRunRow, EmbeddingRow, ImageRow, IngestRow, ModelRow, ReferenceSetRow, TaxonRow, as_utc, build_run_record,
    failure_value, image_record, problem_record, reference_set_record, taxon_record, utcnow,
)
from index.collection.readers import Collection
from index.collection.entries import Problem
from index.records import BuildRun, CatalogStats, ImageRecord, IngestSummary, ReferenceSet
from taxonomy.constants import Rank
from taxonomy.taxon import Taxon

logger = logging.getLogger(__name__)

_SQLITE_BUSY_TIMEOUT_S = 30  # a build and an ingest may write at the same time


class BuildInProgressError(CatalogError):
    """Another live build is writing the same model into the same store."""

    def __init__(self, run: BuildRun) -> None:
        self.run = run
        since = run.started.strftime("%Y-%m-%d %H:%M:%S UTC") if run.started else "?"
        super().__init__(
            f"another build is writing vector {run.model!r} into {run.store}: run {run.id}, process {run.pid} "
            f"on {run.host or '?'}, started {since}. Wait for it to finish or stop it; a build that was "
            "killed is marked interrupted by the next one"
        )


class VectorNameConflictError(CatalogError, ValueError):
    """A vector name already holds the vectors of other weights."""

    def __init__(self, name: str, registered_spec: str, spec: str) -> None:
        self.name, self.registered_spec, self.spec = name, registered_spec, spec
        super().__init__(
            f"vector name {name!r} already holds the vectors of {registered_spec!r}, other weights than "
            f"{spec!r}; nothing was written. Give the model folder another name, or build into another store"
        )


def _this_host() -> str:
    return socket.gethostname()


def _is_alive(run: BuildRunRow, now: datetime) -> bool:
    """Whether a `running` run's process may still be at work."""
    if run.host == _this_host() and run.pid is not None:
        if run.pid == os.getpid():
            return True
        try:
            os.kill(run.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    beat = as_utc(run.heartbeat or run.started)
    return beat is not None and now - beat < timedelta(seconds=RUN_SILENT_AFTER_S)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _prepare_sqlite_file(path: Path) -> None:
    """Refuse a folder or a file of another kind before SQLite opens it (it fails on first use only),
    and create the folder of a new file."""
    if path.is_dir():
        raise CatalogLocationError(str(path), "it is a folder, not an SQLite file")
    if path.is_file():
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
        if header and header != SQLITE_HEADER:
            raise CatalogLocationError(str(path), "it is not an SQLite database (it does not start with SQLite's header)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CatalogLocationError(str(path), f"its folder cannot be created ({e.strerror}: {e.filename})") from None


def make_engine(url: str) -> Engine:
    """An engine for `url`; for an SQLite file, its folder is created first.

    Raises:
        CatalogLocationError: an SQLite path that is a folder or another kind of file, or a URL whose
            driver is not installed (with the command that installs it).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        try:
            return create_engine(url)
        except ImportError as e:
            install = DB_DRIVER_INSTALL.get(e.name or "", f"pip install {e.name}")
            raise CatalogLocationError(parsed.render_as_string(hide_password=True),
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
        CatalogLocationError (a CatalogError and ValueError): `url` is not a database URL or SQLite file, its driver is
            missing, or the database cannot be opened; one line naming the value and what is accepted.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = resolve_db_url(url)
        self._engine = make_engine(self.url)
        try:
            upgrade(self._engine)
        except DBAPIError as e:
            self._engine.dispose()
            reason = str(e.orig or e).strip().splitlines()[0]
            raise CatalogLocationError(self._engine.url.render_as_string(hide_password=True), reason) from None
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

    def roots(self, image_ids: Sequence[str]) -> dict[str, str]:
        """The collection root of each of `image_ids` the catalog has, in one query."""
        if not image_ids:
            return {}
        query = select(ImageRow.id, ImageRow.root).where(ImageRow.id.in_(set(image_ids)))
        with self._sessions() as session:
            return {image_id: root for image_id, root in session.execute(query)}

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
                select(EmbeddingRow.model, EmbeddingRow.store, func.count()).join(ImageRow, self._embedding_is_current())
                .where(present).group_by(EmbeddingRow.model, EmbeddingRow.store)
                .order_by(EmbeddingRow.model, EmbeddingRow.store)).all()
            last = session.scalars(select(IngestRow).order_by(IngestRow.id.desc()).limit(1)).first()
        return CatalogStats(
            images=by_status.get(IMAGE_PRESENT, 0), gone=by_status.get(IMAGE_GONE, 0),
            taxa_per_rank={rank.label: per_rank.get(rank.label, 0) for rank in Rank},
            images_per_kingdom=dict(per_kingdom), images_per_split=dict(per_split),
            embedded={f"{model} in {store or '(unknown store)'}": n for model, store, n in embedded},
            last_ingest=as_utc(last.finished) if last else None, last_ingest_root=last.root if last else "",
            problems=[problem_record(value) for value in last.problems] if last else [],
        )

    # --- the embedding build -------------------------------------------------------------------------
    # Embeddings are recorded per model AND store: a build into a new or wiped store finds the
    # catalog's marks of another store irrelevant (see embed.build for how a wiped store is noticed).

    @staticmethod
    def _embedding_is_current(model: str | None = None, store: str | None = None) -> Any:
        condition = (EmbeddingRow.image_id == ImageRow.id) & (EmbeddingRow.sha256 == ImageRow.sha256)
        if model is not None:
            condition = condition & (EmbeddingRow.model == model)
        if store is not None:
            condition = condition & (EmbeddingRow.store == store)
        return condition

    def images_to_embed(self, model: str, store: str) -> list[ImageRecord]:
        """Present images without a vector of `model` in `store` at their current sha256, by root and path."""
        query = (select(ImageRow).outerjoin(EmbeddingRow, self._embedding_is_current(model, store))
                 .where(ImageRow.status == IMAGE_PRESENT, EmbeddingRow.image_id.is_(None))
                 .order_by(ImageRow.root, ImageRow.path))
        with self._sessions() as session:
            return [image_record(row) for row in session.scalars(query)]

    def stale_embeddings(self, model: str, store: str) -> set[str]:
        """Ids of present images that `model` embedded into `store` at another sha256: the file changed since."""
        query = (select(ImageRow.id).join(EmbeddingRow, (EmbeddingRow.image_id == ImageRow.id)
                                          & (EmbeddingRow.model == model) & (EmbeddingRow.store == store))
                 .where(ImageRow.status == IMAGE_PRESENT, EmbeddingRow.sha256 != ImageRow.sha256))
        with self._sessions() as session:
            return set(session.scalars(query))

    def stale_payloads(self, model: str, store: str) -> list[ImageRecord]:
        """Present images whose vector in `store` is current but whose row changed after it was written."""
        query = (select(ImageRow).join(EmbeddingRow, self._embedding_is_current(model, store))
                 .where(ImageRow.status == IMAGE_PRESENT, ImageRow.updated > EmbeddingRow.embedded)
                 .order_by(ImageRow.root, ImageRow.path))
        with self._sessions() as session:
            return [image_record(row) for row in session.scalars(query)]

    def embedded_ids(self, model: str, store: str) -> set[str]:
        """Ids of present images with a current vector of `model` in `store`."""
        query = (select(ImageRow.id).join(EmbeddingRow, self._embedding_is_current(model, store))
                 .where(ImageRow.status == IMAGE_PRESENT))
        with self._sessions() as session:
            return set(session.scalars(query))

    def image_count(self) -> int:
        """Present images."""
        with self._sessions() as session:
            return int(session.scalar(select(func.count()).select_from(ImageRow)
                                      .where(ImageRow.status == IMAGE_PRESENT)) or 0)

    def present_ids(self) -> set[str]:
        with self._sessions() as session:
            return set(session.scalars(select(ImageRow.id).where(ImageRow.status == IMAGE_PRESENT)))

    def gone_in_store(self, store: str) -> list[str]:
        """Ids of images that left the catalog while some model still has their point in `store`."""
        query = (select(EmbeddingRow.image_id).distinct()
                 .join(ImageRow, EmbeddingRow.image_id == ImageRow.id)
                 .where(EmbeddingRow.store == store, ImageRow.status == IMAGE_GONE)
                 .order_by(EmbeddingRow.image_id))
        with self._sessions() as session:
            return list(session.scalars(query))

    def forget_embeddings(self, store: str, ids: Sequence[str], model: str | None = None) -> None:
        """Drop the marks of `ids` in `store` (of every model, or of `model`): their points are not there."""
        with self._sessions.begin() as session:
            for chunk in _chunks(list(ids)):
                query = delete(EmbeddingRow).where(EmbeddingRow.store == store, EmbeddingRow.image_id.in_(chunk))
                if model is not None:
                    query = query.where(EmbeddingRow.model == model)
                session.execute(query)

    def mark_embedded(self, model: str, store: str, records: Sequence[ImageRecord]) -> None:
        """Record that `store` holds `model`'s vector of these images, at the sha256 each record carries.

        Raises:
            ValueError: a record's image is not in the catalog.
        """
        _check_name("model", model)
        _check_name("store", store)
        upsert = _embedding_upsert(self._engine.dialect.name)
        with self._sessions.begin() as session:
            for chunk in _chunks(list(records)):
                ids = [record.id for record in chunk]
                known = set(session.scalars(select(ImageRow.id).where(ImageRow.id.in_(ids))))
                unknown = [record.path for record in chunk if record.id not in known]
                if unknown:
                    raise ValueError(f"{len(unknown)} images are not in the catalog, e.g. {unknown[:3]}")
                now = utcnow()
                if upsert is not None:
                    # One executemany per chunk: the ORM's per-row objects cost more than the build's writes.
                    session.execute(upsert, [{"image_id": r.id, "model": model, "store": store, "sha256": r.sha256,
                                              "embedded": now} for r in chunk])
                    continue
                existing = {row.image_id: row for row in session.scalars(
                    select(EmbeddingRow).where(EmbeddingRow.model == model, EmbeddingRow.store == store,
                                               EmbeddingRow.image_id.in_(ids)))}
                for record in chunk:
                    row = existing.get(record.id)
                    if row is None:
                        row = EmbeddingRow(image_id=record.id, model=model, store=store)
                        session.add(row)
                        existing[record.id] = row
                    row.sha256, row.embedded = record.sha256, now

    def embedded_count(self, model: str, store: str | None = None) -> int:
        """Present images that `model` has embedded at their current sha256 (into `store`, or into any)."""
        query = (select(func.count(func.distinct(ImageRow.id))).select_from(ImageRow)
                 .join(EmbeddingRow, self._embedding_is_current(model, store))
                 .where(ImageRow.status == IMAGE_PRESENT))
        with self._sessions() as session:
            return int(session.scalar(query) or 0)

    def register_model(self, name: str, spec: str, fingerprint: str) -> None:
        """Tie a vector name to the weights it holds; the first build of a name registers it.

        Raises:
            VectorNameConflictError: the name already holds the vectors of other weights.
        """
        _check_name("model", name)
        for attempt in range(2):  # a concurrent first registration of the same name: read it back
            try:
                with self._sessions.begin() as session:
                    row = session.get(ModelRow, name)
                    if row is None:
                        session.add(ModelRow(name=name, spec=spec, fingerprint=fingerprint, registered=utcnow()))
                    elif row.fingerprint != fingerprint:
                        raise VectorNameConflictError(name, row.spec, spec)
                return
            except IntegrityError:
                if attempt:
                    raise

    # --- reference sets of taxa --------------------------------------------------------------------

    def record_reference_set(self, reference: ReferenceSet) -> None:
        """Create or replace the record of a reference set in its store (`added` kept on replace)."""
        _check_name("reference set", reference.name)
        now = utcnow()
        with self._sessions.begin() as session:
            row = session.get(ReferenceSetRow, (reference.store, reference.name))
            if row is None:
                row = ReferenceSetRow(store=reference.store, name=reference.name, added=now)
                session.add(row)
            row.kind, row.arguments, row.model = reference.kind, list(reference.arguments), reference.model
            row.spec, row.details, row.updated = reference.spec, dict(reference.details), now

    def reference_sets(self, store: str) -> list[ReferenceSet]:
        """The reference sets recorded for `store`, by name."""
        query = select(ReferenceSetRow).where(ReferenceSetRow.store == store).order_by(ReferenceSetRow.name)
        with self._sessions() as session:
            return [reference_set_record(row) for row in session.scalars(query)]

    def rename_reference_set(self, store: str, old: str, new: str) -> None:
        """Rename a recorded set; a set that was never recorded here is left alone."""
        _check_name("reference set", new)
        with self._sessions.begin() as session:
            row = session.get(ReferenceSetRow, (store, old))
            if row is not None:
                session.add(ReferenceSetRow(
                    store=store, name=new, kind=row.kind, arguments=row.arguments, model=row.model, spec=row.spec,
                    details=row.details, added=row.added, updated=utcnow()))
                session.delete(row)

    def forget_reference_set(self, store: str, name: str) -> None:
        with self._sessions.begin() as session:
            session.execute(delete(ReferenceSetRow).where(
                ReferenceSetRow.store == store, ReferenceSetRow.name == name))

    def interrupt_dead_runs(self) -> list[int]:
        """Mark `running` runs whose process is gone as `interrupted`; returns their ids.

        On this host a run's process id is checked; a run of another host counts as dead when it
        reported no progress for `RUN_SILENT_AFTER_S`.
        """
        now = utcnow()
        with self._sessions.begin() as session:
            dead = [row for row in session.scalars(select(BuildRunRow).where(BuildRunRow.status == RUN_RUNNING))
                    if not _is_alive(row, now)]
            for row in dead:
                row.status, row.finished = RUN_INTERRUPTED, now
                logger.warning("build run %d (%s into %s, process %s on %s) was killed: marked interrupted",
                               row.id, row.model, row.store, row.pid, row.host)
            return [row.id for row in dead]

    def start_run(self, model: str, spec: str, store: str) -> int:
        """Open a build run in state `running`; returns its id.

        Raises:
            BuildInProgressError: a live build of `model` into `store` is running.
        """
        _check_name("model", model)
        self.interrupt_dead_runs()
        now = utcnow()
        try:
            with self._sessions.begin() as session:
                row = BuildRunRow(model=model, spec=spec, store=store, started=now, status=RUN_RUNNING,
                                  failures=[], pid=os.getpid(), host=_this_host(), heartbeat=now)
                session.add(row)
                session.flush()
                return row.id
        except IntegrityError:
            running = [run for run in self.runs(model) if run.status == RUN_RUNNING and run.store == store]
            if not running:
                raise
            raise BuildInProgressError(running[0]) from None

    def update_run(self, run_id: int, *, done: int = 0, skipped: int = 0, failed: int = 0,
                   failures: Sequence[Problem] = (), rate: float | None = None) -> None:
        """Add counts and failures to a run; `rate` (images/s) replaces the last one. Also its heartbeat."""
        with self._sessions.begin() as session:
            row = self._run_row(session, run_id)
            row.done += done
            row.skipped += skipped
            row.failed += failed
            row.heartbeat = utcnow()
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


def _embedding_upsert(dialect: str) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE of an embeddings row, for the dialects that have it; else None."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        return None
    statement = insert(EmbeddingRow)
    return statement.on_conflict_do_update(
        index_elements=[EmbeddingRow.image_id, EmbeddingRow.model, EmbeddingRow.store],
        set_={"sha256": statement.excluded.sha256, "embedded": statement.excluded.embedded},
    )


def _check_name(what: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty name, got {value!r}")
