"""`python -m embed taxa`: reference sets in the real embedded store, with the tol-tiny model (SPEC §2, §5, §7)."""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embed.build import BuildOptions, run_build
from embed.encoder import Encoder
from embed.reference import (
    ReferenceSetError, TaxaOptions, add_checklist, add_ncbi, add_tol, list_sets, remove_set, rename_set,
)
from index.catalog import Catalog
from index.store import open_store
from taxonomy import Lineage, Rank, point_id
from tests.index.test_reference_files import write_tol

REPO = Path(__file__).resolve().parents[2]
FELIS = "Animalia/Chordata/Mammalia/Carnivora/Felidae/Felis"
PICA = "Animalia/Chordata/Aves/Passeriformes/Corvidae/Pica/hudsonia"
FAST = TaxaOptions(model="tol-tiny", templates=1)


@pytest.fixture()
def store(tmp_path):
    with open_store(str(tmp_path / "qdrant")) as store:
        yield store


@pytest.fixture()
def catalog(tmp_path):
    with Catalog(str(tmp_path / "catalog.db")) as catalog:
        yield catalog


def points(store) -> dict[str, dict]:
    return {hit.id: hit.payload for hit in store.scroll("taxa")}


def vectors(store, ids) -> dict[str, np.ndarray]:
    return {hit.id: hit.vector for hit in store.retrieve("taxa", sorted(ids), "tol-tiny")}


def test_an_ncbi_clade_is_embedded_with_its_payloads(store, catalog, tiny):
    summary = add_ncbi(["Felis"], FAST, loaded=tiny, store=store, catalog=catalog)
    stored = points(store)
    assert summary.name == "ncbi" and summary.new == len(stored) == summary.taxa
    assert summary.per_rank["species"] == 5 and summary.per_rank["genus"] == 1 and summary.per_rank["kingdom"] == 1
    catus = stored[point_id(f"{FELIS}/catus")]
    assert catus == {
        "rank": "species", "name": "Felis catus", "taxon": f"{FELIS}/catus", "parent": FELIS,
        "lineage": ["Animalia", "Animalia/Chordata", "Animalia/Chordata/Mammalia",
                    "Animalia/Chordata/Mammalia/Carnivora", "Animalia/Chordata/Mammalia/Carnivora/Felidae", FELIS,
                    f"{FELIS}/catus"],
        "kingdom": "Animalia", "phylum": "Chordata", "class": "Mammalia", "order": "Carnivora", "family": "Felidae",
        "genus": "Felis", "species": "Felis catus", "common_name": "domestic cat", "depth": 6, "n_images": 0,
        "text": "a photo of Animalia Chordata Mammalia Carnivora Felidae Felis catus with common name domestic cat.",
        "sources": ["ncbi"],
    }
    assert stored[point_id(FELIS)]["text"] == "a photo of Animalia Chordata Mammalia Carnivora Felidae Felis."
    expected = Encoder(tiny).encode_taxa([Lineage.from_ranks(f"{FELIS}/catus".split("/"), "domestic cat")],
                                         "taxon_com", templates=1)[0]
    np.testing.assert_allclose(vectors(store, [point_id(f"{FELIS}/catus")])[point_id(f"{FELIS}/catus")],
                               expected, atol=1e-5)


def test_template_averaging_is_the_default(store, catalog, tiny):
    add_ncbi(["Otocolobus"], TaxaOptions(model="tol-tiny", ranks=(Rank.SPECIES,)), loaded=tiny, store=store,
             catalog=catalog)
    key = "Animalia/Chordata/Mammalia/Carnivora/Felidae/Otocolobus/manul"
    lineage = Lineage.from_ranks(key.split("/"), "Pallas's cat")
    encoder = Encoder(tiny)
    stored = vectors(store, [point_id(key)])[point_id(key)]
    np.testing.assert_allclose(stored, encoder.encode_taxa([lineage], "taxon_com")[0], atol=1e-5)
    assert np.abs(stored - encoder.encode_taxa([lineage], "taxon_com", templates=1)[0]).max() > 1e-3
    assert store.count("taxa") == 1  # --ranks species


def test_adding_a_set_twice_changes_nothing(store, catalog, tiny):
    add_ncbi(["Felis"], FAST, loaded=tiny, store=store, catalog=catalog)
    before = points(store)
    before_vectors = vectors(store, before)
    again = add_ncbi(["Felis"], FAST, loaded=tiny, store=store, catalog=catalog)
    assert again.new == again.joined == again.embedded == 0 and again.unchanged == len(before)
    assert points(store) == before
    after_vectors = vectors(store, before)
    assert all(np.array_equal(before_vectors[i], after_vectors[i]) for i in before)


def test_a_checklist_joins_catalog_taxa_and_removal_keeps_them(tmp_path, store, catalog, tiny, small_collection):
    run_build(BuildOptions(model="tol-tiny", catalog=str(small_collection.catalog),
                           images=str(small_collection.images), workers=0),
              loaded=tiny, store=store, catalog=catalog)
    built = points(store)
    path = tmp_path / "birds-of-ohio.csv"
    path.write_text("kingdom,phylum,class,order,family,genus,species,common_name\n"
                    "Animalia,Chordata,Aves,Passeriformes,Corvidae,Pica,hudsonia,magpie\n"
                    "Animalia,Chordata,Aves,Passeriformes,Corvidae,Corvus,corax,common raven\n")
    summary = add_checklist(path, FAST, loaded=tiny, store=store, catalog=catalog)
    assert summary.name == "birds-of-ohio" and summary.new == 2 and summary.joined == 7  # Corvus, corax new
    stored = points(store)
    magpie = stored[point_id(PICA)]
    assert magpie["sources"] == ["birds-of-ohio", "catalog"] and magpie["n_images"] == 5
    assert magpie["common_name"] == "black-billed magpie"  # the catalog's payload is kept
    raven = stored[point_id("Animalia/Chordata/Aves/Passeriformes/Corvidae/Corvus/corax")]
    assert raven["sources"] == ["birds-of-ohio"] and raven["n_images"] == 0
    add_ncbi(["Corvus"], FAST, loaded=tiny, store=store, catalog=catalog)  # raven is in a second set too

    released, removed = remove_set("birds-of-ohio", FAST, store=store, catalog=catalog)
    stored = points(store)
    assert removed == 0 and released == 9
    without_sources = {i: {k: v for k, v in p.items() if k != "sources"} for i, p in stored.items() if i in built}
    assert without_sources == {i: {k: v for k, v in p.items() if k != "sources"} for i, p in built.items()}
    assert all("catalog" in stored[i]["sources"] and "birds-of-ohio" not in stored[i]["sources"] for i in built)
    assert stored[point_id("Animalia/Chordata/Aves/Passeriformes/Corvidae/Corvus/corax")]["sources"] == ["ncbi"]
    remove_set("ncbi", FAST, store=store, catalog=catalog)
    assert points(store) == built  # only the catalog's taxa are left, as the build wrote them
    assert [s.name for s in list_sets(store, catalog)] == ["catalog"]


def test_list_rename_and_errors(store, catalog, tiny):
    add_ncbi(["Felis"], FAST, loaded=tiny, store=store, catalog=catalog)
    add_ncbi(["Lynx"], FAST, loaded=tiny, store=store, catalog=catalog)  # clades accumulate in `ncbi`
    (listing,) = list_sets(store, catalog)
    assert listing.name == "ncbi" and listing.kind == "ncbi" and listing.model == "tol-tiny"
    assert listing.per_rank == {"kingdom": 1, "phylum": 1, "class": 1, "order": 1, "family": 1, "genus": 2,
                                "species": 9}
    assert listing.total == 16 and len(listing.arguments) == 2
    assert rename_set("ncbi", "cats", FAST, store=store, catalog=catalog) == 16
    (listing,) = list_sets(store, catalog)
    assert listing.name == "cats" and listing.kind == "ncbi" and listing.total == 16
    assert all(p["sources"] == ["cats"] for p in points(store).values())
    with pytest.raises(ReferenceSetError, match="no reference set 'ncbi'.*it has: cats"):
        remove_set("ncbi", FAST, store=store, catalog=catalog)
    with pytest.raises(ReferenceSetError, match="reserved"):
        add_ncbi(["Felis"], TaxaOptions(model="tol-tiny", name="catalog"), loaded=tiny, store=store, catalog=catalog)


def _tol_files(folder: Path, dim: int, species: list[tuple[str, ...]], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(dim, len(species))).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=0)
    write_tol(folder, matrix, [[list(names[:7]), names[7]] for names in species])
    return matrix


TOL_SPECIES = [
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia", "Black-billed Magpie"),
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "pica", "Eurasian Magpie"),
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Corvus", "corax", "Common Raven"),
    ("Plantae", "Tracheophyta", "Magnoliopsida", "Rosales", "Moraceae", "Morus", "alba", "White Mulberry"),
]


def test_published_embeddings_are_imported_as_given_with_higher_ranks_derived(tmp_path, store, catalog):
    matrix = _tol_files(tmp_path / "tol", 128, TOL_SPECIES)
    summary = add_tol(tmp_path / "tol", FAST, store=store, catalog=catalog)
    assert summary.name == "tol-10m" and summary.copied == summary.taxa == 4 + 13 and summary.embedded == 0
    assert summary.per_rank == {"kingdom": 2, "phylum": 2, "class": 2, "order": 2, "family": 2, "genus": 3,
                                "species": 4}
    keys = ["/".join(names[:7]) for names in TOL_SPECIES]
    stored = vectors(store, [point_id(k) for k in keys])
    for column, key in enumerate(keys):
        np.testing.assert_allclose(stored[point_id(key)], matrix[:, column], atol=1e-6)
    corvidae = "Animalia/Chordata/Aves/Passeriformes/Corvidae"
    mean = matrix[:, :3].mean(axis=1)
    np.testing.assert_allclose(vectors(store, [point_id(corvidae)])[point_id(corvidae)], mean / np.linalg.norm(mean),
                               atol=1e-6)
    payload = points(store)[point_id(corvidae)]
    assert payload["text"].startswith("mean of 3 species vectors: ") and payload["sources"] == ["tol-10m"]
    assert points(store)[point_id(keys[0])]["common_name"] == "Black-billed Magpie"

    again = add_tol(tmp_path / "tol", FAST, store=store, catalog=catalog)
    assert again.new == again.copied == 0 and again.unchanged == 17

    _tol_files(tmp_path / "tol", 128, TOL_SPECIES[:3])  # the file lost the mulberry: so does the set
    smaller = add_tol(tmp_path / "tol", FAST, store=store, catalog=catalog)
    assert smaller.removed == 7 and store.count("taxa") == 10


def test_published_embeddings_of_another_dimension_are_refused(tmp_path, store, catalog):
    _tol_files(tmp_path / "tol", 128, TOL_SPECIES)
    with pytest.raises(ValueError, match=r"published vectors are 128-d but model hf-hub:imageomics/bioclip makes "
                                         r"512-d vectors \(vector 'bioclip'\)"):
        add_tol(tmp_path / "tol", TaxaOptions(), store=store, catalog=catalog)
    assert store.count("taxa") == 0


def test_higher_ranks_of_published_embeddings_from_the_text_tower(tmp_path, store, catalog, tiny):
    _tol_files(tmp_path / "tol", 128, TOL_SPECIES[:2])
    summary = add_tol(tmp_path / "tol", TaxaOptions(model="tol-tiny", templates=1, higher_ranks="text"),
                      loaded=tiny, store=store, catalog=catalog)
    assert summary.copied == 2 and summary.embedded == 6
    pica = "Animalia/Chordata/Aves/Passeriformes/Corvidae/Pica"
    expected = Encoder(tiny).encode_taxa([Lineage.from_ranks(pica.split("/"))], "taxon_com", templates=1)[0]
    np.testing.assert_allclose(vectors(store, [point_id(pica)])[point_id(pica)], expected, atol=1e-5)


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOL_MODEL": "tol-tiny"}
    return subprocess.run([sys.executable, "-m", "embed", "taxa", *args], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_adds_lists_and_fails_in_one_line(tmp_path):
    where = ["--store", str(tmp_path / "q"), "--db", str(tmp_path / "c.db")]
    added = _cli("--ncbi", "Felis", "--templates", "1", *where)
    assert added.returncode == 0, added.stderr
    assert "set:     ncbi (ncbi) -> vector 'tol-tiny'" in added.stdout and "11 new" in added.stdout
    listed = _cli("--list", *where)
    assert listed.returncode == 0 and listed.stdout.splitlines()[1].split()[:9] == [
        "ncbi", "ncbi", "1", "1", "1", "1", "1", "1", "5"]
    for args, message in [
        (["--ncbi", "Felidea"], "unknown NCBI clade 'Felidea'"),
        (["--checklist", str(tmp_path / "none.csv")], "none.csv not found"),
        (["--remove", "birds"], "no reference set 'birds'"),
        (["--list", "--name", "x"], "--name names a set being added"),
        (["--ncbi", "Felis", "--templates", "0"], "--templates must be from 1 to 81"),
    ]:
        failed = _cli(*args, *where)
        assert failed.returncode != 0 and message in failed.stderr, (args, failed.stderr)
        assert "Traceback" not in failed.stderr
        errors = [line for line in failed.stderr.splitlines() if "error" in line.lower()]
        assert len(errors) == 1, failed.stderr


@pytest.mark.slow
def test_an_unlabelled_folder_is_identified_against_an_ncbi_clade_in_three_commands(tmp_path):
    """The README's three commands: build an unlabelled folder, add a clade, predict the folder."""
    from PIL import Image

    photos = tmp_path / "camera-trap"
    for i in range(3):
        (photos / f"day{i}").mkdir(parents=True)
        Image.new("RGB", (48, 40), (40 * i, 120, 200 - 40 * i)).save(photos / f"day{i}" / f"{i}.jpg")
    where = ["--store", str(tmp_path / "q"), "--db", str(tmp_path / "c.db"), "--model", "tol-tiny"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def embed(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "embed", *args, *where], cwd=REPO, capture_output=True,
                              text=True, env=env, timeout=300)

    built = embed("build", "--images", str(photos))
    assert built.returncode == 0 and "taxa:   0 embedded" in built.stdout, built.stderr
    empty = embed("predict", str(photos))
    assert empty.returncode != 0 and "python -m embed taxa" in empty.stderr and "Traceback" not in empty.stderr
    assert embed("taxa", "--ncbi", "Felis", "--templates", "1").returncode == 0
    predicted = embed("predict", str(photos), "--format", "csv", "--k", "2")
    assert predicted.returncode == 0, predicted.stderr
    rows = list(csv.DictReader(io.StringIO(predicted.stdout)))
    assert sorted({Path(row["file_name"]).name for row in rows}) == ["0.jpg", "1.jpg", "2.jpg"]
    assert len(rows) == 6 and all(row["genus"] == "Felis" and row["family"] == "Felidae" for row in rows)
