"""Catalog: where it lives, SQLite settings, taxa, stats, and the embedding build's bookkeeping."""
from __future__ import annotations

import os
import sqlite3
from datetime import datetime

import pytest
from sqlalchemy import text

from index import Catalog as LazyCatalog
from index import catalog as catalog_module
from index.catalog import Catalog
from index.config import resolve_db_url, resolve_setting
from index.readers import read_collection
from index.records import BuildRun, ImageRecord, Problem, image_point_id
from taxonomy import Rank
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


def test_sqlite_runs_in_wal_mode_with_foreign_keys(catalog, tmp_path):
    with catalog._engine.connect() as connection:
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


def test_stats_count_ranks_kingdoms_splits_and_keep_the_last_problems(tmp_path, collection):
    csv_file, root = collection
    url = f"sqlite:///{tmp_path / 'stats.db'}"
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


def test_images_to_embed_follow_the_sha256_per_model(catalog, collection):
    csv_file, root = collection
    catalog.ingest(read_collection(csv_file, root))
    todo = catalog.images_to_embed("demo")
    assert [r.path for r in todo] == ["birds/jay.jpg", "birds/magpie1.jpg", "birds/magpie2.png"]
    assert all(isinstance(r, ImageRecord) for r in todo)
    catalog.mark_embedded("demo", todo[:2])
    catalog.mark_embedded("demo", todo[:1])  # marking twice is harmless
    assert [r.path for r in catalog.images_to_embed("demo")] == ["birds/magpie2.png"]
    assert catalog.embedded_count("demo") == 2 and catalog.embedded_count("bioclip") == 0
    assert len(catalog.images_to_embed("bioclip")) == 3
    jay = root / "birds" / "jay.jpg"
    make_image(jay, colour=(1, 250, 1), size=(33, 24))
    os.utime(jay, ns=(0, jay.stat().st_mtime_ns + 10**9))
    catalog.ingest(read_collection(csv_file, root))
    assert [r.path for r in catalog.images_to_embed("demo")] == ["birds/jay.jpg", "birds/magpie2.png"]
    assert catalog.embedded_count("demo") == 1 and catalog.stats().embedded == {"demo": 1}


def test_mark_embedded_refuses_unknown_images(catalog, collection):
    csv_file, root = collection
    catalog.ingest(read_collection(csv_file, root))
    stranger = ImageRecord(image_point_id("elsewhere.jpg"), str(root), "elsewhere.jpg", "0" * 64, 1, 1, 1, MAGPIE)
    with pytest.raises(ValueError, match="elsewhere.jpg"):
        catalog.mark_embedded("demo", [stranger])
    with pytest.raises(ValueError, match="model must be a non-empty name"):
        catalog.mark_embedded("", catalog.images())
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
