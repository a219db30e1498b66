"""Reference-taxa inputs (SPEC §2): checklist CSVs, BioCLIP's published embeddings, and their catalog records."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from index.catalog import Catalog
from index.migrations import SCHEMA_VERSION
from index.collection.readers import read_checklist
from index.records import ReferenceSet
from index.tol import read_tol_embeddings


def test_a_checklist_with_rank_columns(tmp_path):
    path = tmp_path / "ohio.csv"
    path.write_text("kingdom,phylum,class,order,family,genus,species,common_name,notes\n"
                    "Animalia,Chordata,Aves,Passeriformes,Corvidae,Pica,hudsonia,black-billed magpie,x\n"
                    "Animalia,Chordata,Aves,Passeriformes,Corvidae,Pica,Pica hudsonia,again,\n"
                    ",,,,,,,,empty\n"
                    "Animalia,Chordata,Aves,Passeriformes,Corvidae,Corvus,,,genus only\n")
    checklist = read_checklist(path)
    assert [lineage.key() for lineage in checklist.lineages] == [
        "Animalia/Chordata/Aves/Passeriformes/Corvidae/Pica/hudsonia", "Animalia/Chordata/Aves/Passeriformes/Corvidae/Corvus"]
    assert checklist.lineages[0].common_name == "black-billed magpie"
    assert [(p.row, p.reason.split(" ")[-2:]) for p in checklist.problems][0] == (3, ["row", "2"])
    assert checklist.problems[1].row == 4 and "no rank" in checklist.problems[1].reason
    assert checklist.unknown_columns == ("notes",)


def test_a_darwin_core_checklist(tmp_path):
    path = tmp_path / "dwc.csv"
    path.write_text("scientificName,kingdom,family,vernacularName\n"
                    "Pica hudsonia,Animalia,Corvidae,Black-billed Magpie\n"
                    "Morus alba,Plantae,Moraceae,white mulberry\n")
    lineages = read_checklist(path).lineages
    assert [(l.kingdom, l.family, l.genus, l.species, l.common_name) for l in lineages] == [
        ("Animalia", "Corvidae", "Pica", "hudsonia", "Black-billed Magpie"),
        ("Plantae", "Moraceae", "Morus", "alba", "white mulberry")]


def test_a_checklist_without_ranks_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("name,count\nfoo,1\n")
    with pytest.raises(ValueError, match=r"bad.csv: no rank column.*found name, count"):
        read_checklist(path)
    with pytest.raises(FileNotFoundError, match="checklist .*missing.csv not found"):
        read_checklist(tmp_path / "missing.csv")


def write_tol(folder, vectors: np.ndarray, entries: list) -> None:
    """BioCLIP's published layout: (dim, N) float array + N entries [[7 ranks], common]."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "txt_emb_species.npy", vectors)
    (folder / "txt_emb_species.json").write_text(json.dumps(entries))


def test_published_embeddings_are_read_as_given(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(16, 4)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=0)
    entries = [[["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia"], "magpie"],
               [["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "pica"], ""],
               [["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "pica"], "again"],
               "not an entry"]
    write_tol(tmp_path / "tol", vectors, entries)
    tol = read_tol_embeddings(tmp_path / "tol")
    assert tol.dim == 16 and tol.columns == [0, 1]
    assert [p.row for p in tol.problems] == [2, 3]
    np.testing.assert_array_equal(tol.rows([1, 0]), vectors[:, [1, 0]].T)


def test_published_embeddings_of_the_wrong_shape_are_refused(tmp_path):
    write_tol(tmp_path / "tol", np.zeros((16, 3), dtype=np.float32), [[["Animalia"], ""]] * 2)
    with pytest.raises(ValueError, match=r"txt_emb_species.json has 2 entries but .*txt_emb_species.npy has 3 columns"):
        read_tol_embeddings(tmp_path / "tol")
    (tmp_path / "tol" / "txt_emb_species.json").unlink()
    with pytest.raises(FileNotFoundError, match="txt_emb_species.json not found"):
        read_tol_embeddings(tmp_path / "tol")


def test_reference_sets_are_recorded_per_store(tmp_path):
    with Catalog(str(tmp_path / "c.db")) as catalog:
        catalog.record_reference_set(ReferenceSet("ncbi", "ncbi", ("Felidae",), "tol-tiny", "tol-tiny", "/a"))
        catalog.record_reference_set(ReferenceSet("ncbi", "ncbi", ("Canidae",), "tol-tiny", "tol-tiny", "/b"))
        catalog.rename_reference_set("/a", "ncbi", "cats")
        assert [(r.name, r.arguments) for r in catalog.reference_sets("/a")] == [("cats", ("Felidae",))]
        catalog.forget_reference_set("/b", "ncbi")
        assert catalog.reference_sets("/b") == []
    version = sqlite3.connect(tmp_path / "c.db").execute("SELECT value FROM catalog_meta").fetchone()
    assert version == (str(SCHEMA_VERSION),) and SCHEMA_VERSION == 3
