"""Catalog: where it lives, SQLite settings, taxa, stats, and the embedding build's bookkeeping."""
from __future__ import annotations

import os
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from index import Catalog as LazyCatalog
from index import catalog as catalog_module
from index.catalog import BuildInProgressError, Catalog
from index.config import resolve_db_url, resolve_setting
from index.collection.readers import read_collection
from index.collection.entries import Problem, image_point_id
from index.records import BuildRun, ImageRecord
from taxonomy import Rank
from tests.conftest import ENGINES, copy_catalog, engine_url
from tests.index.conftest import JAY, MAGPIE, make_image


def test_flag_wins_over_environment_over_default(monkeypatch):
    monkeypatch.delenv("TOL_DB", raising=False)
    assert resolve_db_url(None) == "sqlite:///var/catalog.db"
    monkeypatch.setenv("TOL_DB", "postgresql+psycopg://u@db/tol")
    assert resolve_db_url(None) == "postgresql+psycopg://u@db/tol"
    assert resolve_db_url("sqlite:///x.db") == "sqlite:///x.db"
    assert resolve_db_url("/data/cat.db") == "sqlite:////data/cat.db"
    assert resolve_db_url("  ") == "postgresql+psycopg://u@db/tol"
    assert resolve_setting(None, "TOL_UNSET_FOR_TEST", "dflt") == "dflt"


def test_default_catalog_is_created_under_var(tmp_path, monkeypatch):
    monkeypatch.delenv("TOL_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    with Catalog() as catalog:
        assert catalog.url == "sqlite:///var/catalog.db" and catalog.images() == []
    assert (tmp_path / "var" / "catalog.db").is_file()


def test_environment_chooses_the_catalog(tmp_path, monkeypatch):
    monkeypatch.setenv("TOL_DB", str(tmp_path / "deep" / "env.db"))
    with Catalog() as catalog:
        catalog.start_run("demo", "tol-tiny", ":memory:")
    assert (tmp_path / "deep" / "env.db").is_file()
    with Catalog(f"sqlite:///{tmp_path / 'flag.db'}") as catalog:
        assert catalog.runs() == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    with Catalog(f"sqlite:///{tmp_path / 'db' / 'catalog.db'}") as catalog, catalog._engine.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    with sqlite3.connect(tmp_path / "db" / "catalog.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"images", "taxa", "embeddings", "build_runs", "ingests"} <= tables


def test_in_memory_catalog_keeps_its_data_between_calls(collection):
    csv_file, root = collection
    with Catalog("sqlite://") as catalog:
        catalog.ingest(read_collection(csv_file, root))
        assert len(catalog.images()) == 3


def test_roots_of_many_images_in_one_query(catalog, collection):
    csv_file, root = collection
    catalog.ingest(read_collection(csv_file, root))
    ids = [record.id for record in catalog.images()]
    assert catalog.roots(ids + ["never-seen"]) == {i: str(root) for i in ids}
    assert catalog.roots([]) == {}


def test_lazy_package_export_is_the_class():
    assert LazyCatalog is Catalog


def test_taxa_come_from_present_images_with_counts(catalog, collection):
    csv_file, root = collection
    catalog.ingest(read_collection(csv_file, root))
    taxa = catalog.taxa()
    assert len(taxa) == 5 + 2 + 2
    assert [t.rank for t in taxa] == sorted(t.rank for t in taxa)
    species = {t.key: t for t in catalog.taxa("species")}
    assert species[MAGPIE.key()].n_images == 2 and species[JAY.key()].n_images == 1
    assert species[MAGPIE.key()].common_name == "black-billed magpie" and species[MAGPIE.key()].name == "Pica hudsonia"
    (family,) = catalog.taxa(Rank.FAMILY)
    assert (family.n_images, family.parent) == (3, "Animalia/Chordata/Aves/Passeriformes")
    with pytest.raises(ValueError, match="unknown rank 'tribe'"):
        catalog.taxa("tribe")


def test_stats_count_ranks_kingdoms_splits_and_keep_the_last_problems(db_url, collection):
    csv_file, root = collection
    url = db_url
    (root / "birds" / "jay.jpg").write_bytes(b"")
    with Catalog(url) as catalog:
        catalog.ingest(read_collection(csv_file, root))
    with Catalog(url) as reopened:  # another process, as `python -m index stats` is
        stats = reopened.stats()
    assert (stats.images, stats.gone) == (2, 0)
    assert stats.taxa_per_rank == {label: 1 for label in ("kingdom", "phylum", "class", "order", "family",
                                                          "genus", "species")}
    assert stats.images_per_kingdom == {"Animalia": 2} and stats.images_per_split == {"train": 1, "val": 1}
    assert [(p.row, p.path, p.reason) for p in stats.problems] == [(4, "birds/jay.jpg", "empty file (0 bytes)")]
    assert stats.last_ingest_root == str(root.resolve()) and stats.last_ingest.tzinfo is not None


STORE = "/srv/qdrant"


def test_images_to_embed_follow_the_sha256_per_model_and_store(catalog, collection):
    csv_file, root = collection
    catalog.ingest(read_collection(csv_file, root))
    todo = catalog.images_to_embed("demo", STORE)
    assert [r.path for r in todo] == ["birds/jay.jpg", "birds/magpie1.jpg", "birds/magpie2.png"]
    assert all(isinstance(r, ImageRecord) for r in todo)
    catalog.mark_embedded("demo", STORE, todo[:2])
    catalog.mark_embedded("demo", STORE, todo[:1])  # marking twice is harmless
    assert [r.path for r in catalog.images_to_embed("demo", STORE)] == ["birds/magpie2.png"]
    assert catalog.embedded_count("demo", STORE) == 2 and catalog.embedded_count("bioclip", STORE) == 0
    assert len(catalog.images_to_embed("bioclip", STORE)) == 3
    # Another store holds nothing of this model, whatever the first one holds.
    assert len(catalog.images_to_embed("demo", "/elsewhere")) == 3 and catalog.embedded_count("demo", "/elsewhere") == 0
    jay = root / "birds" / "jay.jpg"
    make_image(jay, colour=(1, 250, 1), size=(33, 24))
    os.utime(jay, ns=(0, jay.stat().st_mtime_ns + 10**9))
    catalog.ingest(read_collection(csv_file, root))
    assert [r.path for r in catalog.images_to_embed("demo", STORE)] == ["birds/jay.jpg", "birds/magpie2.png"]
    assert catalog.embedded_count("demo", STORE) == 1 and catalog.stats().embedded == {f"demo in {STORE}": 1}


def test_relabelled_and_gone_images_are_reported_per_store(catalog, collection):
    csv_file, root = collection
    catalog.ingest(read_collection(csv_file, root))
    catalog.mark_embedded("demo", STORE, catalog.images())
    assert catalog.stale_payloads("demo", STORE) == []
    rows = csv_file.read_text().splitlines()
    relabelled = [rows[0], rows[1].replace("hudsonia", "pica").replace("black-billed magpie", "Eurasian magpie")]
    csv_file.write_text("\n".join(relabelled + rows[3:]) + "\n")  # magpie1 relabelled, magpie2 gone
    catalog.ingest(read_collection(csv_file, root))
    assert [r.path for r in catalog.stale_payloads("demo", STORE)] == ["birds/magpie1.jpg"]
    assert catalog.stale_payloads("demo", "/elsewhere") == []
    gone = catalog.gone_in_store(STORE)
    assert gone == [image_point_id("birds/magpie2.png")] and catalog.gone_in_store("/elsewhere") == []
    catalog.forget_embeddings(STORE, gone)
    assert catalog.gone_in_store(STORE) == []


def test_mark_embedded_refuses_unknown_images(catalog, collection):
    csv_file, root = collection
    catalog.ingest(read_collection(csv_file, root))
    stranger = ImageRecord(image_point_id("elsewhere.jpg"), str(root), "elsewhere.jpg", "0" * 64, 1, 1, 1, MAGPIE)
    with pytest.raises(ValueError, match="elsewhere.jpg"):
        catalog.mark_embedded("demo", STORE, [stranger])
    with pytest.raises(ValueError, match="model must be a non-empty name"):
        catalog.mark_embedded("", STORE, catalog.images())
    assert catalog.embedded_count("demo") == 0


def test_build_runs_add_counts_and_keep_failures(catalog, monkeypatch):
    first = catalog.start_run("demo", "tol-tiny", "var/qdrant")
    second = catalog.start_run("bioclip", "hf-hub:imageomics/bioclip", "http://qdrant:6333")
    catalog.update_run(first, done=10, skipped=2, rate=5.0)
    catalog.update_run(first, done=5, failed=1, failures=[Problem("", None, "a.jpg", "truncated image")], rate=7.5)
    (run,) = catalog.runs("demo")
    assert isinstance(run, BuildRun) and run.id == first
    assert (run.status, run.done, run.skipped, run.failed, run.rate, run.finished) == ("running", 15, 2, 1, 7.5, None)
    assert [(f.path, f.reason) for f in run.failures] == [("a.jpg", "truncated image")]
    assert str(run.failures[0]) == "a.jpg: truncated image"
    catalog.finish_run(first, "done")
    assert [r.id for r in catalog.runs()] == [second, first]
    finished = catalog.runs("demo")[0]
    assert finished.status == "done" and isinstance(finished.finished, datetime)
    assert finished.finished >= finished.started


def test_build_run_errors_name_what_is_allowed(catalog, monkeypatch):
    run = catalog.start_run("demo", "tol-tiny", "var/qdrant")
    with pytest.raises(ValueError, match="expected one of done, failed, interrupted"):
        catalog.finish_run(run, "finished")
    with pytest.raises(KeyError, match="no build run 999"):
        catalog.update_run(999, done=1)
    monkeypatch.setattr(catalog_module, "MAX_STORED_FAILURES", 2)
    failures = [Problem("", None, f"{i}.jpg", "bad") for i in range(3)]
    catalog.update_run(run, failed=3, failures=failures)
    catalog.update_run(run, failed=1, failures=failures[:1])
    (stored,) = catalog.runs()
    assert stored.failed == 4 and [f.path for f in stored.failures] == ["0.jpg", "1.jpg"]


def test_a_second_build_of_a_model_into_a_store_is_refused_while_the_first_lives(catalog):
    from index.catalog import BuildInProgressError

    first = catalog.start_run("demo", "tol-tiny", STORE)
    with pytest.raises(BuildInProgressError, match=rf"run {first}, process {os.getpid()}.*Wait for it"):
        catalog.start_run("demo", "tol-tiny", STORE)
    other_store = catalog.start_run("demo", "tol-tiny", "/elsewhere")
    other_model = catalog.start_run("bioclip", "hf-hub:imageomics/bioclip", STORE)
    assert len({first, other_store, other_model}) == 3
    catalog.finish_run(first, "done")
    catalog.finish_run(catalog.start_run("demo", "tol-tiny", STORE), "done")  # free again once finished


def _plant_run(catalog, pid: int, host: str, heartbeat_age_s: float = 0) -> int:
    """A `running` run as another process (or host) left it."""
    from datetime import timedelta

    from index.orm import BuildRunRow, utcnow

    with catalog._sessions.begin() as session:
        now = utcnow()
        row = BuildRunRow(model="demo", spec="tol-tiny", store=STORE, started=now, status="running", failures=[],
                          pid=pid, host=host, heartbeat=now - timedelta(seconds=heartbeat_age_s))
        session.add(row)
        session.flush()
        return row.id


def test_a_killed_run_is_marked_interrupted_by_the_next_build(catalog):
    import socket
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a process id that is gone
    killed = _plant_run(catalog, child.pid, socket.gethostname())
    assert catalog.runs()[0].status == "running"
    new = catalog.start_run("demo", "tol-tiny", STORE)  # no BuildInProgressError: the holder is dead
    by_id = {run.id: run for run in catalog.runs()}
    assert by_id[killed].status == "interrupted" and by_id[killed].finished is not None
    assert by_id[new].status == "running" and by_id[new].pid == os.getpid()


def test_a_run_of_another_host_is_dead_only_after_a_silence(catalog):
    from index.catalog import BuildInProgressError
    from index.constants import RUN_SILENT_AFTER_S

    live = _plant_run(catalog, 1, "another-host", heartbeat_age_s=60)
    with pytest.raises(BuildInProgressError, match="on another-host"):
        catalog.start_run("demo", "tol-tiny", STORE)
    catalog.finish_run(live, "done")
    silent = _plant_run(catalog, 1, "another-host", heartbeat_age_s=RUN_SILENT_AFTER_S + 1)
    assert catalog.interrupt_dead_runs() == [silent]


def test_a_vector_name_never_holds_two_models_weights(catalog):
    from index.catalog import VectorNameConflictError

    catalog.register_model("bioclip", "hf-hub:imageomics/bioclip", "hf-hub:imageomics/bioclip")
    catalog.register_model("bioclip", "hf-hub:imageomics/bioclip", "hf-hub:imageomics/bioclip")  # again: fine
    with pytest.raises(VectorNameConflictError, match="'bioclip' already holds the vectors of "
                                                      "'hf-hub:imageomics/bioclip', other weights than 'hf-hub:x/bioclip'"):
        catalog.register_model("bioclip", "hf-hub:x/bioclip", "hf-hub:x/bioclip")


V1_CATALOG = Path(__file__).parent / "data" / "catalog_v1.db"  # written by main at 57d6aa0: schema version 1


def _catalog_of_the_previous_release(engine: str, request, tmp_path: Path) -> str:
    url = engine_url(engine, request, tmp_path)
    if engine == "sqlite":
        tmp_path.mkdir(parents=True, exist_ok=True)
        shutil.copy(V1_CATALOG, tmp_path / "catalog.db")
    else:
        copy_catalog(V1_CATALOG, url)
    return url


def _schema_version(url: str) -> str | None:
    from index.migrations import VERSION_KEY

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT value FROM catalog_meta WHERE key = :key"),
                                      {"key": VERSION_KEY}).scalar()
    finally:
        engine.dispose()


def _schema_version_table_absent(url: str) -> bool:
    engine = create_engine(url)
    try:
        return "catalog_meta" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_catalog_written_by_the_previous_release_opens_and_keeps_everything(engine, request, tmp_path):
    from index.migrations import SCHEMA_VERSION

    url = _catalog_of_the_previous_release(engine, request, tmp_path)
    assert _schema_version_table_absent(url)
    with Catalog(url) as upgraded:
        stats = upgraded.stats()
        assert (stats.images, stats.taxa_per_rank["species"]) == (12, 4)
        # The marks belong to the store of the model's last finished run.
        assert stats.embedded == {"tol-tiny in /srv/qdrant": 10}
        assert len(upgraded.images_to_embed("tol-tiny", "/srv/qdrant")) == 2
        runs = upgraded.runs()
        assert [(r.id, r.status, r.done) for r in runs] == [(2, "interrupted", 0), (1, "done", 10)]
        upgraded.finish_run(upgraded.start_run("tol-tiny", "tol-tiny", "/srv/qdrant"), "done")
        running = upgraded.start_run("tol-tiny", "tol-tiny", "/srv/qdrant")
        with pytest.raises(BuildInProgressError):  # the upgrade made the index that allows one running run
            upgraded.start_run("tol-tiny", "tol-tiny", "/srv/qdrant")
        upgraded.finish_run(running, "done")
    with Catalog(url) as again:  # opening twice upgrades once
        assert len(again.runs()) == 4
    assert _schema_version(url) == str(SCHEMA_VERSION)


def _schema(url: str) -> dict[str, dict[str, object]]:
    """Every table's columns, keys, constraint and index names and partial-index conditions, as text."""
    engine = create_engine(url)
    try:
        found = inspect(engine)
        return {table: {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)],
            "primary key": found.get_pk_constraint(table),
            "foreign keys": found.get_foreign_keys(table),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]),
                               sorted((k, str(v)) for k, v in i.get("dialect_options", {}).items()))
                              for i in found.get_indexes(table)),
        } for table in found.get_table_names()}
    finally:
        engine.dispose()


@pytest.mark.parametrize("engine", ENGINES)
def test_an_upgraded_catalog_has_the_schema_of_a_new_one(engine, request, tmp_path):
    upgraded = _catalog_of_the_previous_release(engine, request, tmp_path / "old")
    new = engine_url(engine, request, tmp_path / "new")
    for url in (upgraded, new):
        Catalog(url).close()
    assert _schema(upgraded) == _schema(new)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_catalog_of_a_newer_release_is_refused(engine, request, tmp_path):
    from index.migrations import SCHEMA_VERSION, CatalogVersionError

    url = engine_url(engine, request, tmp_path)
    Catalog(url).close()
    engine_ = create_engine(url)
    with engine_.begin() as connection:
        connection.execute(text("UPDATE catalog_meta SET value = :v"), {"v": str(SCHEMA_VERSION + 1)})
    engine_.dispose()
    with pytest.raises(CatalogVersionError, match=f"schema version {SCHEMA_VERSION + 1}, newer than"):
        Catalog(url)
