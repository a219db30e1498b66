"""The catalog's schema version, and the steps that bring an older catalog up to it.

A catalog records its version in `catalog_meta`; one written before versions existed (main up
to 57d6aa0) is version 1. Opening a catalog runs every step from its version to
`SCHEMA_VERSION`, so a catalog written by one release opens in the next.
A catalog newer than this code is refused rather than misread. The whole set-up is one
transaction under the catalog's write lock, so two processes opening a new catalog at once
cannot see it half made.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from index.constants import RUN_INTERRUPTED, RUN_RUNNING
from index.errors import CatalogError
from index.orm import RUNNING_RUN_INDEX, Base, BuildRunRow, EmbeddingRow, MetaRow, ReferenceSetRow, utcnow

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 3
VERSION_KEY = "schema_version"
_FIRST_VERSION = 1  # tables without `catalog_meta`
SET_UP_ATTEMPTS = 5
SET_UP_RETRY_S = 0.2
SET_UP_LOCK_KEY = 0x746F6C  # PostgreSQL advisory lock of the catalog's set-up ("tol")


class CatalogVersionError(CatalogError):
    """The catalog was written by a newer release of this project."""


def _add_column(connection: Connection, table: str, column: str) -> None:
    column_type = BuildRunRow.__table__.c[column].type.compile(dialect=connection.dialect)
    connection.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {column_type}"))


def _v1_to_v2(connection: Connection) -> None:
    """Embeddings are recorded per store; runs know their process (and hold a lease while running)."""
    for column in ("pid", "host", "heartbeat"):
        _add_column(connection, "build_runs", column)
    # Their process cannot be told any more; a live build of the old release would have to restart.
    connection.execute(
        text("UPDATE build_runs SET status = :interrupted, finished = :now WHERE status = :running"),
        {"interrupted": RUN_INTERRUPTED, "running": RUN_RUNNING, "now": utcnow()},
    )
    for index in BuildRunRow.__table__.indexes:
        if index.name == RUNNING_RUN_INDEX:
            index.create(connection)
    # A copy, not a rename: PostgreSQL keeps constraint names through a rename, and the new table's
    # would then differ from those of a catalog made new (`embeddings_pkey1`).
    connection.execute(text("CREATE TABLE embeddings_v1 AS SELECT * FROM embeddings"))
    connection.execute(text("DROP TABLE embeddings"))
    EmbeddingRow.__table__.create(connection)
    # An old mark meant "in the store of the model's last finished run"; the build checks the store anyway.
    connection.execute(text(
        "INSERT INTO embeddings (image_id, model, store, sha256, embedded) "
        "SELECT e.image_id, e.model, COALESCE((SELECT r.store FROM build_runs r WHERE r.model = e.model "
        "AND r.status = 'done' ORDER BY r.id DESC LIMIT 1), ''), e.sha256, e.embedded FROM embeddings_v1 e"
    ))
    connection.execute(text("DROP TABLE embeddings_v1"))


def _v2_to_v3(connection: Connection) -> None:
    """Reference sets of taxa (`python -m embed taxa`) are recorded per store."""
    ReferenceSetRow.__table__.create(connection, checkfirst=True)


# STEPS[v] upgrades a catalog of version v to v + 1.
STEPS: dict[int, Callable[[Connection], None]] = {1: _v1_to_v2, 2: _v2_to_v3}


def _version(connection: Connection) -> int | None:
    """The catalog's version; None for an empty database."""
    tables = set(inspect(connection).get_table_names())
    if MetaRow.__tablename__ in tables:
        value = connection.execute(
            text(f"SELECT value FROM {MetaRow.__tablename__} WHERE key = :key"), {"key": VERSION_KEY}
        ).scalar()
        if value is not None:
            return int(value)
    return _FIRST_VERSION if "images" in tables else None


def _set_version(connection: Connection, version: int) -> None:
    table = MetaRow.__table__
    connection.execute(table.delete().where(table.c.key == VERSION_KEY))
    connection.execute(table.insert().values(key=VERSION_KEY, value=str(version)))


def upgrade(engine: Engine) -> int:
    """Create a new catalog, or bring an older one to `SCHEMA_VERSION`; returns the version found.

    Two processes opening one new catalog at once race to create its tables; the one that loses
    finds them made and starts over.

    Raises:
        CatalogVersionError: the catalog is newer than this code.
    """
    for attempt in range(SET_UP_ATTEMPTS):
        try:
            return _upgrade(engine)
        except (OperationalError, ProgrammingError, IntegrityError) as e:
            if attempt == SET_UP_ATTEMPTS - 1 or not _lost_a_race(e):
                raise
            logger.debug("another process set the catalog up at the same time; looking again (%s)", e)
            time.sleep(SET_UP_RETRY_S * (attempt + 1))
    raise AssertionError("unreachable")


def _lost_a_race(error: Exception) -> bool:
    message = str(error).lower()
    return any(sign in message for sign in ("already exists", "duplicate", "unique", "locked"))


def _lock_for_set_up(connection: Connection) -> None:
    """Begin the set-up transaction holding the catalog's write lock, so one process sets up at a time."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # DDL joins it: pysqlite would autocommit it otherwise
    elif connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SET_UP_LOCK_KEY})


def _upgrade(engine: Engine) -> int:
    with engine.connect() as connection:
        _lock_for_set_up(connection)
        found = _version(connection)
        if found is not None and found > SCHEMA_VERSION:
            raise CatalogVersionError(
                f"the catalog {engine.url.render_as_string(hide_password=True)} has schema version {found}, "
                f"newer than this release's {SCHEMA_VERSION}; upgrade tree-of-life-search to open it"
            )
        version = found or SCHEMA_VERSION
        while version < SCHEMA_VERSION:
            STEPS[version](connection)
            logger.info("catalog upgraded from schema version %d to %d", version, version + 1)
            version += 1
        Base.metadata.create_all(connection)
        if found != SCHEMA_VERSION:
            _set_version(connection, SCHEMA_VERSION)
        connection.commit()
    return found or SCHEMA_VERSION
