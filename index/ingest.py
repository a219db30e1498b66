"""Ingest a collection into the SQL catalog: check every file, record what changed, keep what left.

Semantics:
- an image new to the catalog, or coming back after it was gone, is `added`;
- a known image whose file (sha256), size or labels changed is `updated`;
- the same file with the same labels is `unchanged`; a file whose size and mtime match the catalog
  is not hashed again (as rsync and make do), which keeps a re-ingest of millions of images cheap;
- an image of this root that is no longer in the collection is marked `gone`, never deleted;
- a bad input (missing, empty, truncated, not an image, a format not accepted, too elongated,
  outside the root, a bomb; a row with a NUL byte, an oversized field or a `/` in a rank name) is
  `skipped` and reported with its file and row while the rest is ingested.
Each batch is one transaction, so a crash loses at most the batch in flight; the taxa table is
rebuilt from the present images at the end.
"""
from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import NamedTuple

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from index.constants import (
    IMAGE_GONE, IMAGE_PRESENT, INGEST_BATCH_SIZE, INGEST_WORKERS, MAX_STORED_PROBLEMS, QUERY_CHUNK,
)
from index.collection.images import ImageError, ImageInfo, inspect_image, resolve_inside, tar_member
from index.collection.shards import member_size
from index.orm import (
    LINEAGE_COLUMNS, ImageRow, IngestRow, TaxonRow, lineage_of, lineage_values, problem_value,
    taxon_values, utcnow,
)
from index.collection.readers import Collection
from index.collection.entries import CatalogEntry, Problem, image_point_id
from index.records import IngestSummary
from taxonomy.lineage import Lineage
from taxonomy.taxon import Taxon, taxa_of
from taxonomy.validate import reconcile
from toolkit.cli import Progress, chunks

logger = logging.getLogger(__name__)

BATCH_ATTEMPTS = 3

_METADATA = ("split", "source", "license")


@dataclass
class _Tally:
    added: int = 0
    updated: int = 0
    unchanged: int = 0


def _reference(entry: CatalogEntry) -> str:
    """How a conflict names an entry: `catalog.csv:17`, or the image path in a folder collection."""
    return f"{entry.origin}:{entry.row}" if entry.row is not None else entry.path


def reconcile_entries(entries: list[CatalogEntry], strict: bool) -> tuple[list[CatalogEntry], list[str]]:
    """Settle inconsistent lineages with `taxonomy.validate.reconcile`: majority wins, or raise.

    Raises:
        InconsistentLineageError: `strict` and some lineages disagree (the message lists the rows).
    """
    settled, conflicts = reconcile([(_reference(entry), entry.lineage) for entry in entries], strict)
    fixed = [entry if entry.lineage == lineage else replace(entry, lineage=lineage)
             for entry, (_, lineage) in zip(entries, settled, strict=True)]
    return fixed, [conflict.describe() for conflict in conflicts]


class _Stat(NamedTuple):
    """What `_may_have_changed` reads of a file's stat."""

    st_size: int
    st_mtime_ns: int


def _stat(root: str, path: str) -> _Stat | None:
    """The file's size and mtime; for a sample inside a webdataset shard, its member's size and the shard's mtime."""
    try:
        try:
            st = resolve_inside(root, path).stat()
            return _Stat(st.st_size, st.st_mtime_ns)
        except (FileNotFoundError, NotADirectoryError):
            inside = tar_member(root, path)
            if inside is None:
                return None
            tar, member = inside
            return _Stat(member_size(tar, member), tar.stat().st_mtime_ns)
    except (ImageError, OSError, KeyError, ValueError):
        return None  # inspect_image reports it with the right reason


def _inspect(root: str, path: str) -> ImageInfo | ImageError:
    try:
        return inspect_image(root, path)
    except ImageError as e:
        return e


def _may_have_changed(row: ImageRow | None, root: str, st: _Stat | None) -> bool:
    """Hash and decode only unknown images, moved roots, and files of another size or mtime."""
    return (st is None or row is None or row.root != root
            or row.bytes != st.st_size or row.mtime_ns != st.st_mtime_ns)


def _same_labels(row: ImageRow, entry: CatalogEntry) -> bool:
    return lineage_of(row) == entry.lineage and all(getattr(row, f) == getattr(entry, f) for f in _METADATA)


def _write(row: ImageRow, root: str, entry: CatalogEntry, info: ImageInfo | None, mtime_ns: int) -> None:
    row.root, row.path, row.status, row.mtime_ns = root, entry.path, IMAGE_PRESENT, mtime_ns
    if info is not None:
        row.sha256, row.bytes, row.width, row.height = info
    for name, value in lineage_values(entry.lineage).items():
        setattr(row, name, value)
    for name in _METADATA:
        setattr(row, name, getattr(entry, name))
    row.taxon = entry.lineage.key()
    row.updated = utcnow()


def _ingest_batch(session: Session, root: str, batch: list[CatalogEntry], pool: ThreadPoolExecutor,
                  tally: _Tally, problems: list[Problem], seen: set[str]) -> None:
    """Write one batch into `session`, counting into `tally`, `problems` and `seen`."""
    ids = [image_point_id(entry.path) for entry in batch]
    rows = {row.id: row for row in session.scalars(select(ImageRow).where(ImageRow.id.in_(ids)))}
    stats = [_stat(root, entry.path) for entry in batch]
    to_inspect = [i for i, (image_id, st) in enumerate(zip(ids, stats))
                  if _may_have_changed(rows.get(image_id), root, st)]
    infos = dict(zip(to_inspect, pool.map(lambda i: _inspect(root, batch[i].path), to_inspect)))
    for i, (entry, image_id, st) in enumerate(zip(batch, ids, stats)):
        info = infos.get(i)
        if isinstance(info, ImageError):
            problems.append(Problem(entry.origin, entry.row, entry.path, info.reason))
            continue
        seen.add(image_id)
        mtime_ns = st.st_mtime_ns if st is not None else 0
        row = rows.get(image_id)
        if row is None:
            row = ImageRow(id=image_id, created=utcnow())
            _write(row, root, entry, info, mtime_ns)
            session.add(row)
            tally.added += 1
        elif row.status == IMAGE_GONE:
            _write(row, root, entry, info, mtime_ns)
            tally.added += 1
        elif (info is not None and tuple(info) != (row.sha256, row.bytes, row.width, row.height)) \
                or row.root != root or not _same_labels(row, entry):
            _write(row, root, entry, info, mtime_ns)
            tally.updated += 1
        else:
            row.mtime_ns = mtime_ns  # a touched but identical file is not hashed next time
            tally.unchanged += 1


def _mark_gone(session: Session, root: str, seen: set[str]) -> int:
    present = session.scalars(
        select(ImageRow.id).where(ImageRow.root == root, ImageRow.status == IMAGE_PRESENT)).all()
    gone = [image_id for image_id in present if image_id not in seen]
    for start in range(0, len(gone), QUERY_CHUNK):
        session.execute(update(ImageRow).where(ImageRow.id.in_(gone[start:start + QUERY_CHUNK]))
                        .values(status=IMAGE_GONE, updated=utcnow()))
    return len(gone)


def present_taxa(session: Session) -> list[Taxon]:
    """Every taxon of the present images with its image count, from one GROUP BY over lineages."""
    columns = [getattr(ImageRow, name) for name in LINEAGE_COLUMNS]
    grouped = session.execute(
        select(*columns, func.count()).where(ImageRow.status == IMAGE_PRESENT).group_by(*columns)).all()
    counts: Counter[str] = Counter()
    lineages: list[Lineage] = []
    for result in grouped:
        lineage = lineage_of(result)
        lineages.append(lineage)
        for key in lineage.keys():
            counts[key] += result[-1]
    return [replace(taxon, n_images=counts[taxon.key]) for taxon in taxa_of(lineages)]


def _take_turns_on_taxa(session: Session) -> None:
    """Make two ingests that end at once rebuild the taxa one after the other.

    Each deletes every taxon and inserts its own; on PostgreSQL (read committed) the second
    delete misses the first's new rows and its insert collides with them. SQLite's write lock
    already makes them take turns. Plain reads of the taxa are not blocked.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"LOCK TABLE {TaxonRow.__tablename__} IN EXCLUSIVE MODE"))


def rebuild_taxa(session: Session) -> int:
    """Replace the taxa table by the taxa of the present images; returns their number."""
    taxa = present_taxa(session)
    session.execute(delete(TaxonRow))
    session.add_all(TaxonRow(**taxon_values(taxon)) for taxon in taxa)
    return len(taxa)


def _commit_batch(sessions: sessionmaker[Session], root: str, batch: list[CatalogEntry], pool: ThreadPoolExecutor,
                  tally: _Tally, problems: list[Problem], seen: set[str]) -> None:
    """One batch in one transaction; counted only once it is committed.

    Another ingest of the same images may insert some of them between this batch's read and its
    write: the insert then fails on the primary key, and the batch is read and written again.
    """
    for attempt in range(BATCH_ATTEMPTS):
        batch_tally, batch_problems, batch_seen = _Tally(), [], set()
        try:
            with sessions.begin() as session:
                _ingest_batch(session, root, batch, pool, batch_tally, batch_problems, batch_seen)
        except IntegrityError:
            if attempt == BATCH_ATTEMPTS - 1:
                raise
            logger.info("another ingest wrote some of these images at the same time; reading them again")
            continue
        tally.added += batch_tally.added
        tally.updated += batch_tally.updated
        tally.unchanged += batch_tally.unchanged
        problems.extend(batch_problems)
        seen.update(batch_seen)
        return


def ingest_collection(
    sessions: sessionmaker[Session],
    collection: Collection,
    *,
    strict: bool = False,
    progress: Progress | None = None,
    batch_size: int = INGEST_BATCH_SIZE,
    workers: int = INGEST_WORKERS,
) -> IngestSummary:
    """Bring the catalog in line with `collection`; see the module docstring for the rules.

    Raises:
        InconsistentLineageError: `strict` and lineages disagree; nothing is written.
    """
    if batch_size < 1 or workers < 1:
        raise ValueError(f"batch_size and workers must be at least 1, got {batch_size} and {workers}")
    entries, conflicts = reconcile_entries(collection.entries, strict)  # logs each conflict
    root = str(collection.root)
    problems = list(collection.problems)
    tally, done = _Tally(), 0
    seen: set[str] = set()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest") as pool:
        for batch in chunks(entries, batch_size):
            _commit_batch(sessions, root, batch, pool, tally, problems, seen)
            done += len(batch)
            if progress is not None:
                progress(done / len(entries), f"{done}/{len(entries)} images")
    with sessions.begin() as session:
        _take_turns_on_taxa(session)
        gone = _mark_gone(session, root, seen)
        n_taxa = rebuild_taxa(session)
        summary = IngestSummary(
            added=tally.added, updated=tally.updated, unchanged=tally.unchanged, gone=gone,
            skipped=len(problems), problems=problems, unknown_columns=collection.unknown_columns,
            conflicts=conflicts, root=root)
        session.add(IngestRow(
            root=root, finished=utcnow(), added=summary.added, updated=summary.updated,
            unchanged=summary.unchanged, gone=gone, skipped=summary.skipped,
            problems=[problem_value(p) for p in problems[:MAX_STORED_PROBLEMS]]))
    for problem in problems:
        logger.debug("skipped %s", problem)
    if problems:
        logger.warning("%s: %d inputs skipped", root, len(problems))
    logger.info("%s: %d added, %d updated, %d unchanged, %d gone, %d skipped; %d taxa", root,
                summary.added, summary.updated, summary.unchanged, gone, summary.skipped, n_taxa)
    return summary
