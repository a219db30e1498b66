"""`torchrun -m embed build`: the split of the images across ranks, and 2 gloo processes building the
same points and vectors as one process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embed.build import BuildOptions, run_build
from embed.parallel import World, shared_store, world_from_env
from index.catalog import Catalog
from index.collection.entries import image_point_id
from index.collection.readers import read_collection
from tests.collections import make_collection
from tests.embed.shards import stored_vectors

REPO = Path(__file__).resolve().parents[2]


class _R:
    def __init__(self, i: int) -> None:
        self.id = image_point_id(f"x/{i}.jpg")


def test_the_ranks_split_the_images_by_point_id_without_overlap():
    records = [_R(i) for i in range(1000)]
    shares = [World(rank, 3).share(records) for rank in range(3)]
    ids = [r.id for share in shares for r in share]
    assert sorted(ids) == sorted(r.id for r in records)  # each image once
    assert all(250 < len(share) < 420 for share in shares)  # and about evenly
    assert World(1, 3).share(records) == [r for r in records if World(1, 3).owns(r.id)]  # order kept
    assert World(0, 3).steps(records, 64) == max(-(-len(s) // 64) for s in shares)
    assert World().share(records) == records and World().steps(records, 64) == 16


def test_the_world_comes_from_torchruns_variables(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert world_from_env() == World(0, 1, 0)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    world = world_from_env()
    assert world == World(3, 4, 1) and not world.main and world.device("cuda") == "cuda:1"
    assert world.device("cpu") == "cpu"
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK < WORLD_SIZE"):
        world_from_env()


def test_only_a_server_is_written_by_every_rank():
    assert shared_store("http://qdrant:6333") and shared_store("HTTPS://q.example")
    assert not shared_store("/var/qdrant") and not shared_store(":memory:")


@pytest.mark.slow
def test_two_gloo_processes_build_what_one_process_builds(tmp_path, tiny):
    collection = make_collection(tmp_path / "col", per_species=9, species=4, size=32)
    one_db, one_store = str(tmp_path / "one.db"), tmp_path / "one"
    with Catalog(one_db) as catalog:
        catalog.ingest(read_collection(collection.catalog, collection.images))
    one = run_build(BuildOptions(model="tol-tiny", store=str(one_store), db=one_db, batch_size=4, workers=0),
                    loaded=tiny)
    assert one.images_embedded == 36

    two_db, two_store = str(tmp_path / "two.db"), tmp_path / "two"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "embed",
         "build", "--catalog", str(collection.catalog), "--images", str(collection.images), "--model", "tol-tiny",
         "--store", str(two_store), "--db", two_db, "--batch-size", "4", "--workers", "0"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]

    a, b = stored_vectors(one_store, tiny.vector_name), stored_vectors(two_store, tiny.vector_name)
    assert set(a) == set(b) and len(b) == 36
    cosines = [float(np.dot(a[i], b[i]) / np.linalg.norm(a[i]) / np.linalg.norm(b[i])) for i in a]
    assert min(cosines) > 0.9999
    with Catalog(two_db) as catalog:
        assert catalog.embedded_count(tiny.vector_name, str(two_store.resolve())) == 36
        (run,) = catalog.runs(tiny.vector_name)
        assert (run.status, run.done, run.failed) == ("done", 36, 0)  # rank 0's writer counted both shares
