"""Taxon names as queries: read from the store's taxa (or the NCBI taxonomy), searched with the taxon's vector."""
from __future__ import annotations

import argparse
import io
import logging

import numpy as np
import pytest

from embed.build import BuildOptions, run_build
from embed.query_taxon import READ_NCBI, READ_STORE, read_query
from embed.search import SearchService
from embed.search_cli import add_search_parsers, run_search
from index.catalog import Catalog
from index.edge_replica import copy_tree
from index.schema import TAXA
from index.store import SearchFilter, open_store
from taxonomy import Rank, point_id
from tests.collections import make_collection

PICA = "Animalia/Chordata/Aves/Passeriformes/Corvidae/Pica"
MAGPIE = PICA + "/hudsonia"
MORUS_BIRD = "Animalia/Chordata/Aves/Suliformes/Sulidae/Morus"
MORUS_TREE = "Plantae/Tracheophyta/Magnoliopsida/Rosales/Moraceae/Morus"


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny):
    root = tmp_path_factory.mktemp("query-taxon")
    # Magpies, gannets (Morus), mulberries (Morus), clownfish; one more gannet than mulberry images.
    collection = make_collection(root / "col", per_species=4)
    db, store = str(root / "catalog.db"), root / "qdrant"
    run_build(BuildOptions(model="tol-tiny", store=str(store), db=db, workers=0, catalog=str(collection.catalog),
                           images=str(collection.images)), loaded=tiny)
    return db, store


@pytest.fixture(scope="module")
def service(built, tiny):
    db, store_dir = built
    with open_store(str(store_dir)) as store, Catalog(db) as catalog:
        yield SearchService(store, catalog, tiny)


@pytest.mark.parametrize("text, key, rank", [
    ("Pica", PICA, Rank.GENUS), ("pica", PICA, Rank.GENUS), ("Pica hudsonia", MAGPIE, Rank.SPECIES),
    ("pica Hudsonia.", MAGPIE, Rank.SPECIES), ("  Corvidae ", "Animalia/Chordata/Aves/Passeriformes/Corvidae", Rank.FAMILY),
    ("Aves", "Animalia/Chordata/Aves", Rank.CLASS), ("Plantae", "Plantae", Rank.KINGDOM),
])
def test_a_scientific_name_of_any_rank_is_read_from_the_store(service, text, key, rank):
    reading = read_query(service.store, text)
    assert (reading.via, [(t.key, t.rank) for t in reading.taxa]) == (READ_STORE, [(key, rank)])


def test_a_common_name_is_read_through_the_ncbi_taxonomy(service):
    reading = read_query(service.store, "Black-billed Magpie")
    assert (reading.via, [t.key for t in reading.taxa]) == (READ_NCBI, [MAGPIE])
    assert reading.taxa[0].describe() == ("species Pica hudsonia (black-billed magpie), "
                                          "Animalia > Chordata > Aves > Passeriformes > Corvidae > Pica")


def test_a_name_two_taxa_bear_offers_both(service):
    reading = read_query(service.store, "Morus")
    assert reading.is_ambiguous and {t.key for t in reading.taxa} == {MORUS_BIRD, MORUS_TREE}
    assert "names 2 taxa" in reading.describe()


@pytest.mark.parametrize("text", ["zzqx", "a photo of something small", "Pinus", ""])
def test_text_that_names_no_taxon_of_the_store_is_searched_as_typed(service, text):
    reading = read_query(service.store, text)
    assert not reading.names_a_taxon and reading.via == ""


def test_a_taxon_name_searches_with_that_taxons_stored_vector(service):
    found = service.describe("Pica", k=6)
    (stored,) = service.store.retrieve(TAXA, [point_id(PICA)], service.vector_name)
    expected = service.search_images(stored.vector, 6)
    assert found.taxon is not None and found.taxon.key == PICA
    assert [h.id for h in found.hits] == [h.id for h in expected]
    assert not np.allclose(service.text_vector("Pica"), stored.vector)  # not the words
    assert all(h.taxon.startswith(PICA) for h in found.inside())


def test_an_ambiguous_name_searches_the_chosen_taxon(service):
    default = service.describe("Morus", k=4)
    other = next(t.key for t in default.reading.taxa if t.key != default.taxon.key)
    chosen = service.describe("Morus", k=4, taxon=other)
    (stored,) = service.store.retrieve(TAXA, [point_id(other)], service.vector_name)
    assert chosen.taxon.key == other
    assert [h.id for h in chosen.hits] == [h.id for h in service.search_images(stored.vector, 4)]


def test_a_taxon_the_store_lacks_a_vector_for_is_encoded_from_its_text(service):
    reading = read_query(service.store, "Pica")
    vector = service.taxon_vector(reading.taxa[0])
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)


def test_the_weak_threshold_comes_from_the_species_names_of_the_store(service):
    names = [h.payload["name"] for h in service.store.scroll(TAXA, SearchFilter(rank=Rank.SPECIES))]
    best = [hits[0].score for hits in service.store.search_batch(
        "images", service.vector_name, service.encoder.encode_texts(names), 1)]
    assert service.weak_score() == pytest.approx(float(np.percentile(best, 5)))
    found = service.describe("zzqx", k=3)
    assert found.taxon is None and found.weak == (found.hits[0].score < service.weak_score())


def _search(built, argv, caplog, tmp_path):
    db, held = built
    store = tmp_path / "qdrant"  # the module's service holds the store: the CLI opens a copy
    if not store.exists():
        copy_tree(held, store)
    parser = argparse.ArgumentParser()
    add_search_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["search", *argv, "--model", "tol-tiny", "--store", str(store), "--db", db,
                              "--format", "json"])
    out = io.StringIO()
    with caplog.at_level(logging.INFO, logger="embed.search_cli"):
        code = run_search(args, out)
    return code, out.getvalue(), caplog.text


def test_the_cli_says_what_it_understood_and_how_to_narrow(built, caplog, tmp_path):
    code, out, log = _search(built, ["--text", "Morus", "--k", "3"], caplog, tmp_path)
    assert code == 0 and out.count('"id"') == 3
    assert "searching genus Morus" in log and "also names genus Morus" in log and "--taxon " in log
    assert "only images labelled inside it: add --within Animalia/Chordata/Aves/Suliformes/Sulidae/Morus" in log \
        or f"add --within {MORUS_TREE}" in log
    caplog.clear()
    code, _, log = _search(built, ["--text", "Pica", "--as-typed", "--k", "3"], caplog, tmp_path)
    assert code == 0 and "searching" not in log
