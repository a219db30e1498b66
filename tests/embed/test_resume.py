"""Crash safety: `kill -9` a build in the middle, run it again: nothing lost, duplicated or encoded twice.
A second build at the same store stops with one line, and a build killed while it creates a shard
leaves nothing that the next build does not repair."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import qdrant_edge as qe

from tests.collections import make_collection
from tests.embed.shards import edge_points
from embed.build import BuildOptions, run_build
from index.catalog import Catalog
from index.collection.readers import read_collection
from index.schema import COLLECTIONS, IMAGES, KEYWORD_INDEX_FIELDS
from index.store import open_store

REPO = Path(__file__).resolve().parents[2]
VECTOR = "tol-tiny"
N_IMAGES = 240
KILL_AFTER = 12  # images counted in the first run's record (3 batches of 4)
START_TIMEOUT_S = 120


def _edge_ids(path: Path) -> list[str]:
    return [point_id for point_id, _, _ in edge_points(path, with_payload=False, with_vector=False)]


def _first_run_done(db: str) -> int:
    with Catalog(db) as catalog:
        runs = catalog.runs(VECTOR)
        return runs[-1].done if runs else 0


@pytest.mark.slow
def test_kill_9_then_rerun_finishes_without_duplicates(tmp_path, tiny):
    collection = make_collection(tmp_path / "col", per_species=N_IMAGES, species=1, size=32)
    db, store = str(tmp_path / "catalog.db"), tmp_path / "qdrant"
    with Catalog(db) as catalog:
        catalog.ingest(read_collection(collection.catalog, collection.images))
    command = [sys.executable, "-m", "embed", "build", "--model", "tol-tiny", "--store", str(store),
               "--db", db, "--batch-size", "4", "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while _first_run_done(db) < KILL_AFTER:
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the build wrote no batch in time"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL

    in_store = len(_edge_ids(store / "images"))
    with Catalog(db) as catalog:
        marked = catalog.embedded_count(VECTOR, str(store.resolve()))
        (killed,) = catalog.runs(VECTOR)
    assert killed.status == "running" and killed.finished is None  # it never got to say goodbye
    assert KILL_AFTER <= killed.done <= marked <= in_store < N_IMAGES, (killed.done, marked, in_store)

    summary = run_build(BuildOptions(model="tol-tiny", store=str(store), db=db, batch_size=64, workers=0),
                        loaded=tiny)
    # Only the images missing from the store are encoded; those written but not marked are only marked.
    assert summary.images_total == N_IMAGES - marked
    assert summary.images_skipped == in_store - marked
    assert summary.images_embedded == N_IMAGES - in_store
    assert summary.images_failed == 0

    ids = _edge_ids(store / "images")
    assert len(ids) == len(set(ids)) == N_IMAGES
    with Catalog(db) as catalog:
        assert catalog.embedded_count(VECTOR, str(store.resolve())) == N_IMAGES
        assert {r.id for r in catalog.images()} == set(ids)
        rerun, first = catalog.runs(VECTOR)
        assert (rerun.status, rerun.done, rerun.skipped) == ("done", N_IMAGES - in_store, in_store - marked)
        assert first.status == "interrupted" and first.finished is not None  # the rerun saw its process gone
    # Every image was encoded once: by the killed run (its store writes) or by the rerun.
    assert in_store + rerun.done == N_IMAGES


# The engine's shard, killed (-9) at its Nth update after `create`: mid-way through the keyword
# indexes of a new shard. The project's code runs as it is; only the engine's call is intercepted.
KILL_WHILE_INDEXING = """
import os, signal, sys
import qdrant_edge as qe

N = int(sys.argv[1])
real = qe.EdgeShard


class DiesAtUpdate:
    def __init__(self, shard):
        self._shard, self._updates = shard, 0

    def __getattr__(self, name):
        return getattr(self._shard, name)

    def update(self, operation):
        self._updates += 1
        if self._updates > N:
            os.kill(os.getpid(), signal.SIGKILL)
        return self._shard.update(operation)


class Engine:
    load = staticmethod(real.load)

    @staticmethod
    def create(path, config):
        return DiesAtUpdate(real.create(path, config))


qe.EdgeShard = Engine
from embed.__main__ import main
sys.exit(main(sys.argv[2:]))
"""
INDEXES_BEFORE_KILL = 5


@pytest.mark.slow
def test_kill_9_while_creating_a_shard_then_rerun_adds_every_index(tmp_path, tiny):
    collection = make_collection(tmp_path / "col", per_species=6, species=2, size=32)
    db, store = str(tmp_path / "catalog.db"), tmp_path / "qdrant"
    with Catalog(db) as catalog:
        catalog.ingest(read_collection(collection.catalog, collection.images))
    command = [sys.executable, "-c", KILL_WHILE_INDEXING, str(INDEXES_BEFORE_KILL), "build", "--model", "tol-tiny",
               "--store", str(store), "--db", db, "--workers", "0"]
    killed = subprocess.run(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                            text=True, timeout=START_TIMEOUT_S)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    shard = qe.EdgeShard.load(str(store / IMAGES))
    try:
        assert len(shard.info().payload_schema) == INDEXES_BEFORE_KILL
    finally:
        shard.close()

    summary = run_build(BuildOptions(model="tol-tiny", store=str(store), db=db, batch_size=8, workers=0),
                        loaded=tiny)
    assert (summary.images_embedded, summary.images_failed) == (12, 0) and summary.taxa_embedded > 0
    for collection_name in COLLECTIONS:
        shard = qe.EdgeShard.load(str(store / collection_name))
        try:
            assert set(shard.info().payload_schema) == set(KEYWORD_INDEX_FIELDS), collection_name
        finally:
            shard.close()
    with open_store(str(store)) as opened:
        assert opened.facet_counts(IMAGES, "split") == {"train": 8, "val": 4}
    with Catalog(db) as catalog:
        assert [r.status for r in catalog.runs(VECTOR)] == ["done"]


def test_a_second_build_on_a_store_in_use_stops_with_one_line(tmp_path):
    store, db = tmp_path / "qdrant", str(tmp_path / "catalog.db")
    with open_store(str(store)) as holder:
        holder.ensure_vector(VECTOR, 16)
        command = [sys.executable, "-m", "embed", "build", "--model", "tol-tiny", "--store", str(store), "--db", db]
        second = subprocess.run(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                                text=True, timeout=START_TIMEOUT_S)
        assert holder.vector_names(IMAGES) == {VECTOR: 16}
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert second.stderr.strip().splitlines()[-1] == (
        f"ERROR embed.commands: build failed: the embedded store {store} is in use by another process "
        f"(pid {os.getpid()}) (a build): one writer at a time may open it; wait for that one to end, then run this "
        "again (the UI and searches read beside it)"
    )
