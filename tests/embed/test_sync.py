"""The store follows the catalog: re-ingests, new or wiped stores, and vector names that follow the weights.

Every test runs real builds into the real embedded engine (qdrant-edge in a temp folder) and a real
catalog (an SQLite file, and a database of the private PostgreSQL server), then reads the shards back.
"""
from __future__ import annotations

import copy
import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from embed.build import BuildOptions, run_build
from embed.models import load_model, save_model_folder
from index.catalog import Catalog, VectorNameConflictError
from index.convert import image_payload
from index.schema import IMAGES, TAXA
from index.store import open_store
from taxonomy import point_id
from tests.collections import make_collection

VECTOR = "tol-tiny"
READ_EVERY_S = 0.2
BUILDS_AT_ONCE_TIMEOUT_S = 300  # far beyond the ~30 s they take on a busy machine: a deadlock, not slowness


def _build(collection, store: Path, db: str, loaded, ingest: bool = True):
    options = BuildOptions(model=loaded.spec, store=str(store), db=db, workers=0,
                           catalog=str(collection.catalog) if ingest else None,
                           images=str(collection.images) if ingest else None)
    return run_build(options, loaded=loaded)


def _rows(catalog_csv: Path) -> list[dict[str, str]]:
    with catalog_csv.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _write_rows(catalog_csv: Path, rows: list[dict[str, str]]) -> None:
    with catalog_csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_a_re_ingest_removes_gone_images_and_taxa_and_relabels(tmp_path, db_url, tiny):
    collection = make_collection(tmp_path / "col", per_species=6)
    db, store_dir = db_url, tmp_path / "qdrant"
    _build(collection, store_dir, db, tiny)
    rows = _rows(collection.catalog)
    amphiprion = [r for r in rows if r["genus"] == "Amphiprion"]
    kept = [r for r in rows if r["genus"] != "Amphiprion"]
    relabelled = kept[0]
    relabelled.update(genus="Cyanocitta", species="cristata", common_name="blue jay")
    changed = kept[1]["filepath"]
    Image.new("RGB", (72, 64), (250, 250, 0)).save(collection.images / changed)
    _write_rows(collection.catalog, kept)
    # A reference set also brought the clownfish's family: that taxon keeps its point, without `catalog`.
    family = "Animalia/Chordata/Actinopteri//Pomacentridae"
    with open_store(str(store_dir)) as store:
        payload = store.retrieve(TAXA, [point_id(family)])[0].payload
        store.overwrite_payloads(TAXA, [point_id(family)], [{**payload, "sources": ["catalog", "ncbi"]}])

    summary = _build(collection, store_dir, db, tiny)

    assert (summary.images_removed, summary.images_relabelled, summary.images_embedded) == (len(amphiprion), 1, 1)
    with Catalog(db) as catalog, open_store(str(store_dir)) as store:
        present = catalog.images()
        points = {hit.id: hit.payload for hit in store.scroll(IMAGES)}
        assert set(points) == {r.id for r in present}  # no point of a gone image
        for record in present:
            assert points[record.id] == image_payload(record), record.path  # every payload is the catalog row
        by_path = {p["path"]: p for p in points.values()}
        assert by_path[relabelled["filepath"]]["species"] == "Cyanocitta cristata"
        taxa = {hit.payload["taxon"]: hit.payload for hit in store.scroll(TAXA)}
        catalog_keys = {t.key for t in catalog.taxa()}
        assert {k for k, p in taxa.items() if "catalog" in p["sources"]} == catalog_keys
        assert set(taxa) == catalog_keys | {family}  # the other clownfish taxa are gone
        assert taxa[family]["sources"] == ["ncbi"] and taxa[family]["n_images"] == 0
        jay = "Animalia/Chordata/Aves/Passeriformes/Corvidae/Cyanocitta/cristata"
        assert taxa[jay]["n_images"] == 1
        magpie = "Animalia/Chordata/Aves/Passeriformes/Corvidae/Pica/hudsonia"
        assert taxa[magpie]["n_images"] == 5
    # Nothing is left to do: a third build writes nothing.
    again = _build(collection, store_dir, db, tiny)
    assert (again.images_embedded, again.images_removed, again.images_relabelled, again.taxa_embedded,
            again.taxa_relabelled, again.taxa_removed) == (0, 0, 0, 0, 0, 0)


@pytest.mark.parametrize("how", ["new store", "wiped store"])
def test_a_build_into_a_new_or_wiped_store_makes_it_complete(tmp_path, db_url, tiny, how):
    collection = make_collection(tmp_path / "col", per_species=3)
    db, first = db_url, tmp_path / "qdrant"
    _build(collection, first, db, tiny)
    target = tmp_path / "other" if how == "new store" else first
    if how == "wiped store":
        shutil.rmtree(first)
    summary = _build(collection, target, db, tiny, ingest=False)
    n = len(collection.paths)
    assert summary.images_embedded == n
    with Catalog(db) as catalog, open_store(str(target)) as store:
        assert store.count(IMAGES, vector=VECTOR) == n
        assert catalog.embedded_count(VECTOR, store.location) == n
        assert store.count(TAXA, vector=VECTOR) == len(catalog.taxa())


def test_status_counts_what_this_store_holds(tmp_path, db_url, tiny):
    from embed.status import collect_status

    collection = make_collection(tmp_path / "col", per_species=2)
    db = db_url
    _build(collection, tmp_path / "qdrant", db, tiny)
    with Catalog(db) as catalog, open_store(str(tmp_path / "empty")) as empty:
        (status,) = collect_status(catalog, empty, model=VECTOR).models
    assert (status.embedded, status.images, status.store_images) == (0, len(collection.paths), 0)


@pytest.fixture
def two_trained_models(tmp_path, tiny):
    """`runs/a/model` and `runs/b/model`: the same architecture, other weights, both folders named `model`."""
    other = copy.deepcopy(tiny.model)
    with torch.no_grad():
        for parameter in other.visual.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.5)
    a = save_model_folder(tiny.model, tiny.model_cfg, tmp_path / "runs" / "a" / "model", tiny.preprocess_cfg)
    b = save_model_folder(other, tiny.model_cfg, tmp_path / "runs" / "b" / "model", tiny.preprocess_cfg)
    return load_model(str(a)), load_model(str(b))


def test_two_trained_models_get_their_own_vectors(tmp_path, db_url, two_trained_models):
    a, b = two_trained_models
    assert a.vector_name != b.vector_name and a.vector_name.startswith("a-") and b.vector_name.startswith("b-")
    collection = make_collection(tmp_path / "col", per_species=2)
    db, store_dir = db_url, tmp_path / "qdrant"
    _build(collection, store_dir, db, a)
    summary = _build(collection, store_dir, db, b)
    n = len(collection.paths)
    assert summary.images_embedded == n  # was "0 embedded": b's build took a's marks for its own
    from embed.encoder import Encoder

    with open_store(str(store_dir)) as store:
        first = store.scroll(IMAGES, limit=1).__next__()
        pixels = [Image.open(collection.images / first.payload["path"]).convert("RGB")]
        for loaded in (a, b):
            (stored,) = store.retrieve(IMAGES, [first.id], vector_name=loaded.vector_name)
            np.testing.assert_allclose(stored.vector, Encoder(loaded).encode_images(pixels)[0], atol=1e-4)


def test_other_weights_under_a_known_vector_name_are_refused_before_any_write(tmp_path, db_url, tiny):
    collection = make_collection(tmp_path / "col", per_species=2)
    db, store_dir = db_url, tmp_path / "qdrant"
    with Catalog(db) as catalog:
        catalog.register_model(VECTOR, "hf-hub:someone/tol-tiny", "hf-hub:someone/tol-tiny")
    with pytest.raises(VectorNameConflictError, match="'tol-tiny' already holds the vectors of "
                                                      "'hf-hub:someone/tol-tiny', other weights than 'tol-tiny'"):
        _build(collection, store_dir, db, tiny)
    with open_store(str(store_dir)) as store:
        assert store.vector_names(IMAGES) == {} and store.count(IMAGES) == 0


@pytest.mark.slow
def test_two_builds_of_two_models_at_once_with_a_reader(tmp_path, db_url, two_trained_models):
    """Two processes ingest one collection into one new catalog and build two models into two stores at
    once, while this process reads the catalog: nothing lost or doubled, no deadlock, reads never go back."""
    import os
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parents[2]
    collection = make_collection(tmp_path / "col", per_species=20, size=16)
    builds = {model.vector_name: (model.spec, str(tmp_path / f"store-{i}")) for i, model in enumerate(two_trained_models)}
    commands = [[sys.executable, "-m", "embed", "build", "--model", spec, "--catalog", str(collection.catalog),
                 "--images", str(collection.images), "--store", store, "--db", db_url, "--workers", "0"]
                for spec, store in builds.values()]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    processes = [subprocess.Popen(c, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for c in commands]
    seen: dict[str, int] = dict.fromkeys(builds, 0)
    reads, deadline = 0, time.monotonic() + BUILDS_AT_ONCE_TIMEOUT_S
    while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
        with Catalog(db_url) as reader:  # opened anew each time: also races the builds' set-up of the catalog
            for name, (_, store) in builds.items():
                count = reader.embedded_count(name, store)
                assert count >= seen[name], f"{name}: {count} embedded after {seen[name]}"
                seen[name] = count
            assert {run.status for run in reader.runs()} <= {"running", "done"}
        reads += 1
        time.sleep(READ_EVERY_S)  # leave the CPU to the builds
    outputs = [p.communicate(timeout=max(deadline - time.monotonic(), 1)) for p in processes]
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-2000:]
        assert "Traceback" not in err
    n = len(collection.paths)
    with Catalog(db_url) as catalog:
        assert len(catalog.images()) == n and catalog.stats().taxa_per_rank["species"] == 4
        for name, (_, store) in builds.items():
            assert catalog.embedded_count(name, store) == n
            (run,) = catalog.runs(name)
            assert (run.status, run.done, run.failed) == ("done", n, 0)
    for name, (_, store) in builds.items():
        with open_store(store) as opened:
            assert opened.count(IMAGES, vector=name) == n
    assert reads > 1
