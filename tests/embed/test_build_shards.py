"""`embed build --shards`: webdataset shards in TreeOfLife-10M's layout embedded directly (SPEC §2, §7),
a rerun that embeds nothing twice, bad samples reported by shard and key, and 2 gloo processes, each
reading its own shards, building what one process builds."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embed.build import BuildOptions, run_build
from embed.parallel import World
from index.catalog import Catalog
from index.collection.entries import image_point_id
from index.collection.shards import read_shards, shard_order
from index.schema import IMAGES
from tests.collections import make_shards
from tests.embed.shards import edge_points, stored_vectors

REPO = Path(__file__).resolve().parents[2]


def _spec(folder: Path, n: int) -> str:
    return str(folder / f"shard-{{000000..{n - 1:06d}}}.tar")


def test_shards_are_embedded_with_their_lineage_and_a_rerun_embeds_nothing(tmp_path, tiny):
    make_shards(tmp_path / "tol", shards=3, per_shard=4)
    spec, store = _spec(tmp_path / "tol", 3), tmp_path / "qdrant"
    options = BuildOptions(model="tol-tiny", shards=spec, store=str(store), db=str(tmp_path / "c.db"),
                           batch_size=5, workers=0)
    first = run_build(options, loaded=tiny)
    assert (first.ingested.added, first.images_embedded, first.images_failed) == (12, 12, 0)
    assert first.ingested.root == str((tmp_path / "tol").resolve())
    second = run_build(options, loaded=tiny)
    assert (second.ingested.unchanged, second.images_total, second.images_embedded) == (12, 0, 0)

    points = {pid: payload for pid, payload, _ in edge_points(store / IMAGES, with_vector=False)}
    path = "shard-000001.tar/s1-0003.jpg"  # sample 7 of the run: species 7 % 4 = Amphiprion, no order
    payload = points[image_point_id(path)]
    assert payload["path"] == path and payload["species"] == "Amphiprion ocellaris" and "order" not in payload
    assert payload["taxon"] == "Animalia/Chordata/Actinopteri//Pomacentridae/Amphiprion/ocellaris"
    assert payload["common_name"] == "clown anemonefish" and payload["width"] == 40
    assert first.taxa_total > 0 and first.taxa_embedded == first.taxa_total


def test_a_bad_sample_is_a_problem_naming_its_shard_and_key_and_the_rest_is_built(tmp_path, tiny):
    extra = {"broken": {"jpg": b"\xff\xd8\xff\xe0" + b"\0" * 64, "taxonomic_name.txt": b"Animalia Chordata Aves"},
             "unnamed": {"taxonomic_name.txt": b"Animalia"}}
    paths = make_shards(tmp_path / "tol", shards=2, per_shard=3, extra=extra)
    summary = run_build(BuildOptions(model="tol-tiny", shards=_spec(tmp_path / "tol", 2), store=str(tmp_path / "q"),
                                     db=str(tmp_path / "c.db"), batch_size=4, workers=0), loaded=tiny)
    assert summary.images_embedded == 6
    problems = {p.path: p for p in summary.ingested.problems}
    assert set(problems) == {"shard-000001.tar/broken.jpg", "unnamed"}
    assert all(p.origin == str(paths[1]) for p in problems.values())
    assert "no image member" in problems["unnamed"].reason


def test_a_missing_shard_fails_before_anything_is_opened(tmp_path, tiny):
    make_shards(tmp_path / "tol", shards=1, per_shard=1)
    db = tmp_path / "c.db"
    with pytest.raises(FileNotFoundError, match="shard-000001.tar' not found"):
        run_build(BuildOptions(model="tol-tiny", shards=_spec(tmp_path / "tol", 2), store=str(tmp_path / "q"),
                               db=str(db), workers=0), loaded=tiny)
    assert not db.exists()
    with pytest.raises(ValueError, match="two collections"):
        BuildOptions(shards=_spec(tmp_path / "tol", 1), images=str(tmp_path))


def test_each_rank_takes_whole_shards_by_their_index_modulo_the_world_size(tmp_path):
    make_shards(tmp_path, shards=5, per_shard=3)
    spec = _spec(tmp_path, 5)
    entries = [type("R", (), {"path": e.path, "id": image_point_id(e.path)})()
               for e in read_shards(spec).entries]
    shard_of = shard_order(spec)
    shares = [World(rank, 2).share(entries, shard_of) for rank in range(2)]
    assert [{r.path.split("/")[0] for r in share} for share in shares] == [
        {"shard-000000.tar", "shard-000002.tar", "shard-000004.tar"}, {"shard-000001.tar", "shard-000003.tar"}]
    assert World(0, 2).steps(entries, 2, shard_of) == 5  # rank 0's 9 samples in batches of 2
    # Images of another collection in the same catalog keep the split by point id.
    other = type("R", (), {"path": "Pica_hudsonia/0001.jpg", "id": image_point_id("Pica_hudsonia/0001.jpg")})()
    assert World(0, 2).owner(other, shard_of) == World(0, 2).owner(other)


@pytest.mark.slow
def test_two_gloo_processes_build_the_shards_as_one_process_does(tmp_path, tiny):
    make_shards(tmp_path / "tol", shards=3, per_shard=5)
    spec = _spec(tmp_path / "tol", 3)
    one_store = tmp_path / "one"
    one = run_build(BuildOptions(model="tol-tiny", shards=spec, store=str(one_store), db=str(tmp_path / "one.db"),
                                 batch_size=4, workers=0), loaded=tiny)
    assert one.images_embedded == 15

    two_db, two_store = str(tmp_path / "two.db"), tmp_path / "two"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "embed",
         "build", "--shards", spec, "--model", "tol-tiny", "--store", str(two_store), "--db", two_db,
         "--batch-size", "4", "--workers", "0"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "rank 0 of 2: 10 images from shards 0,2 of --shards" in done.stderr  # each reads its own shards
    assert "rank 1 of 2: 5 images from shards 1 of --shards" in done.stderr

    a, b = stored_vectors(one_store, tiny.vector_name), stored_vectors(two_store, tiny.vector_name)
    assert set(a) == set(b) and len(b) == 15
    cosines = [float(np.dot(a[i], b[i]) / np.linalg.norm(a[i]) / np.linalg.norm(b[i])) for i in a]
    assert min(cosines) > 0.9999
    with Catalog(two_db) as catalog:
        (run,) = catalog.runs(tiny.vector_name)
        assert (run.status, run.done, run.failed) == ("done", 15, 0)
