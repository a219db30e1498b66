"""Crash safety: `kill -9` a build in the middle, run it again: nothing lost, duplicated or encoded twice."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import qdrant_edge as qe

from tests.embed.conftest import make_test_collection
from embed.build import BuildOptions, run_build
from index.catalog import Catalog
from index.readers import read_collection

REPO = Path(__file__).resolve().parents[2]
VECTOR = "tol-tiny"
N_IMAGES = 240
KILL_AFTER = 12  # images counted in the first run's record (3 batches of 4)
START_TIMEOUT_S = 120


def _edge_ids(path: Path) -> list[str]:
    shard = qe.EdgeShard.load(str(path))
    try:
        ids, offset = [], None
        while True:
            page, offset = shard.scroll(qe.ScrollRequest(limit=500, offset=offset, with_payload=False,
                                                         with_vector=False))
            ids += [str(p.id) for p in page]
            if offset is None:
                return ids
    finally:
        shard.close()


def _first_run_done(db: str) -> int:
    with Catalog(db) as catalog:
        runs = catalog.runs(VECTOR)
        return runs[-1].done if runs else 0


@pytest.mark.slow
def test_kill_9_then_rerun_finishes_without_duplicates(tmp_path, tiny):
    collection = make_test_collection(tmp_path / "col", per_species=N_IMAGES, species=1, size=32)
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
