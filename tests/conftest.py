"""Fixtures of every test folder: the catalog on both engines, the tol-tiny model, the shared collections.

The catalog on both engines: an SQLite file in tmp_path, and a database of one private PostgreSQL server.
The server is started once per run (`initdb` into a temporary folder, `pg_ctl start` listening on a
Unix socket only, as the `postgres` user when the tests run as root, since PostgreSQL refuses
root) and stopped at the end, failures included. Each test gets its own database. Where the
binaries or the driver are missing, the `postgresql` cases are skipped with one line saying why.
"""
from __future__ import annotations

import glob
import importlib.util
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import DateTime, Integer, MetaData, create_engine, text

from tests.built_index import BuiltIndex, build_index, tiny_model
from tests.collections import TRAINING_SPECIES, TestCollection, make_collection

ENGINES = ("sqlite", "postgresql")
PG_SUPERUSER = "postgres"
PG_SYSTEM_USER = "postgres"  # who runs the server when the tests run as root
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"  # Debian's layout: not on PATH
PG_START_TIMEOUT_S = 60


def _pg_bin() -> Path | None:
    """The folder of `initdb` and `pg_ctl`: on PATH, else the newest Debian one."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    folders = sorted(glob.glob(PG_BIN_GLOB), key=lambda folder: int(Path(folder).parent.name)
                     if Path(folder).parent.name.isdigit() else 0)
    return Path(folders[-1]) if folders else None


def postgres_url(user: str, database: str, socket_dir: Path) -> str:
    """The catalog URL of a database reached through a Unix socket: docker-compose.yml's form, over the socket."""
    return f"postgresql+psycopg://{user}@/{database}?host={socket_dir}"


class PostgresServer:
    """A throw-away PostgreSQL cluster in a temporary folder, reachable only through its Unix socket."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="tol-pg-"))
        self.data, self.socket_dir, self.log = self.folder / "data", self.folder, self.folder / "server.log"
        self._run_as = PG_SYSTEM_USER if os.geteuid() == 0 else None
        if self._run_as:
            entry = pwd.getpwnam(self._run_as)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self._names = itertools.count()

    def _command(self, *argv: str) -> list[str]:
        return ["runuser", "-u", self._run_as, "--", *argv] if self._run_as else list(argv)

    def _pg_ctl(self, *argv: str) -> None:
        subprocess.run(self._command(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *argv),
                       check=True, capture_output=True, text=True, timeout=PG_START_TIMEOUT_S)

    def start(self) -> None:
        subprocess.run(self._command(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", PG_SUPERUSER,
                                     "--auth=trust", "--no-sync", "-E", "UTF8"),
                       check=True, capture_output=True, text=True, timeout=PG_START_TIMEOUT_S)
        # No TCP listener; fsync off because the cluster is thrown away.
        options = f"-k {self.socket_dir} -c listen_addresses='' -F"
        try:
            self._pg_ctl("-l", str(self.log), "-w", "-o", options, "start")
        except subprocess.CalledProcessError as e:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"the test PostgreSQL server did not start: {e.stderr.strip()} {log[-2000:]}") from e

    def stop(self) -> None:
        try:
            self._pg_ctl("-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str) -> str:
        return postgres_url(PG_SUPERUSER, database, self.socket_dir)

    def execute(self, statement: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(host=str(self.socket_dir), user=PG_SUPERUSER, dbname=database, autocommit=True) as c:
            c.execute(statement)

    def new_database(self, request: pytest.FixtureRequest) -> str:
        """A new empty database, dropped when `request`'s scope ends; returns its URL."""
        name = f"test_{next(self._names)}"
        self.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        # Each holds ~8 MB; a run makes hundreds. FORCE: a test may leave a connection open.
        request.addfinalizer(lambda: self.execute(f"DROP DATABASE {name} WITH (FORCE)"))
        return self.url(name)


def postgres_unavailable() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None."""
    if importlib.util.find_spec("psycopg") is None:
        return "the driver psycopg is not installed (pip install -e '.[test]')"
    if _pg_bin() is None:
        return f"no initdb/pg_ctl on PATH or in {PG_BIN_GLOB} (apt-get install postgresql-15)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            return f"running as root and there is no {PG_SYSTEM_USER!r} user to run the server"
    return None


_LEFT_OUT = pytest.StashKey[str]()


def _on_postgresql(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "postgresql" in callspec.params.values()


@pytest.hookimpl(trylast=True)  # after -k and -m, so the count is of the tests that would have run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Where PostgreSQL cannot run, leave its cases out and say why once (pytest would give a line per test)."""
    reason = postgres_unavailable()
    left_out = [item for item in items if _on_postgresql(item)] if reason else []
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not _on_postgresql(item)]
        config.stash[_LEFT_OUT] = f"{len(left_out)} PostgreSQL tests skipped: {reason}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if _LEFT_OUT in config.stash:
        terminalreporter.write_line(config.stash[_LEFT_OUT])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One private PostgreSQL server for the whole run (skips when it cannot run here)."""
    reason = postgres_unavailable()
    if reason:
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    server = PostgresServer(_pg_bin())  # type: ignore[arg-type]
    try:
        server.start()
        yield server
    finally:
        server.stop()


def engine_url(engine: str, request: pytest.FixtureRequest, folder: Path) -> str:
    """A new empty catalog of `engine`: an SQLite file in `folder`, or a new PostgreSQL database."""
    if engine == "postgresql":
        return request.getfixturevalue("postgres_server").new_database(request)
    return f"sqlite:///{folder / 'catalog.db'}"


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new empty catalog, once on each engine."""
    return engine_url(request.param, request, tmp_path / "db")


def copy_catalog(sqlite_file: Path, url: str, schema: MetaData | None = None) -> None:
    """Copy an SQLite catalog's tables and rows into the empty database at `url`.

    The tables made are `schema`'s, or else those of the file, with the time-zone-aware
    datetimes that every release declared (SQLite does not record the time zone).
    """
    source, target = create_engine(f"sqlite:///{sqlite_file}"), create_engine(url)
    found = MetaData()
    found.reflect(source)
    for table in found.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, DateTime):
                column.type = DateTime(timezone=True)
    made = schema if schema is not None else found
    try:
        with source.connect() as reading, target.begin() as writing:
            made.create_all(writing)
            for table in found.sorted_tables:
                rows = [{key: value.replace(tzinfo=timezone.utc) if isinstance(value, datetime) else value
                         for key, value in row.items()} for row in reading.execute(table.select()).mappings()]
                into = made.tables[table.name]
                if rows:
                    writing.execute(into.insert(), rows)
                if rows and "id" in into.c and isinstance(into.c.id.type, Integer):
                    # Rows copied with their ids leave the id sequence behind; the release itself would not have.
                    writing.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                         f"(SELECT max(id) FROM {table.name}))"))
    finally:
        source.dispose()
        target.dispose()


# --- models and collections ------------------------------------------------------------------------

TORCH_TEST_FOLDERS = ("embed", "training")  # tests/<folder>: where tests run torch on tiny tensors


@pytest.fixture(autouse=True)
def one_torch_thread(request: pytest.FixtureRequest) -> Iterator[None]:
    """One intra-op thread in the embed and training tests, restored after each test.

    Tiny tensors gain nothing from more threads, and on a shared 2-core machine spinning OpenMP
    threads make them many times slower (measured several times faster than two threads).
    """
    if Path(request.node.path).parent.name not in TORCH_TEST_FOLDERS:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny():
    """`tol-tiny` (seeded random weights), loaded once per session and shared with the built index."""
    return tiny_model()


@pytest.fixture(scope="session")
def encoder(tiny):
    from embed.encoder import Encoder

    return Encoder(tiny, text_batch_size=50)


@pytest.fixture(scope="session")
def small_collection(tmp_path_factory: pytest.TempPathFactory) -> TestCollection:
    """4 species (homonyms, an empty rank) x 5 JPEGs; read-only for tests (copy before damaging files)."""
    return make_collection(tmp_path_factory.mktemp("small"), per_species=5)


@pytest.fixture(scope="session")
def training_collection(tmp_path_factory: pytest.TempPathFactory) -> TestCollection:
    """6 species x 10 pictures of 40 x 32 px (PNG and JPEG): 48 in the train split, 12 in val."""
    return make_collection(tmp_path_factory.mktemp("training"), per_species=10, size=32,
                           lineages=TRAINING_SPECIES, val_every=5, png_every=3)


@pytest.fixture(scope="session")
def built_index(tmp_path_factory: pytest.TempPathFactory) -> BuiltIndex:
    """The demo collection built with tol-tiny, once per session; open a `store_copy`, not its store."""
    return build_index(tmp_path_factory.mktemp("built_index"))
