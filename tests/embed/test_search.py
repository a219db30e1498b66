"""The search API and its CLI on a real built index: tol-tiny vectors of a small demo collection.

Every search test runs on both stores: a copy of the embedded store (qdrant-edge in tmp) and
qdrant-client's ":memory:" store holding the same points; and with the catalog on both engines. Expected rankings are computed with
numpy from the stored vectors.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.engine import make_url

from embed.predict import METHODS, Identification, softmax
from embed.search import NotBuiltError, SearchService
from embed.search_cli import add_search_parsers, run_predict, run_search
from index.catalog import Catalog
from index.client_store import ClientStore
from index.collection.images import open_image
from index.orm import Base
from index.schema import IMAGES, TAXA
from index.store import SearchFilter, VectorStore, open_store
from taxonomy import Rank, point_id
from tests.conftest import ENGINES, copy_catalog
from tests.built_index import BuiltIndex, tiny_model

STORES = ("edge", "memory")
TEXT = "a photo of Felis catus with common name domestic cat."


def copy_points(source: VectorStore, target: VectorStore, catalog: Catalog, vector: str) -> None:
    """Put the same image and taxon points, with the same vectors, into `target`."""
    records = catalog.images()
    hits = source.retrieve(IMAGES, [r.id for r in records], vector)
    target.upsert_images(vector, records, np.stack([h.vector for h in hits]))
    taxa = catalog.taxa()
    hits = source.retrieve(TAXA, [point_id(t.key) for t in taxa], vector)
    target.upsert_taxa(vector, taxa, [h.payload["text"] for h in hits], np.stack([h.vector for h in hits]))


@pytest.fixture(scope="module", params=ENGINES)
def search_catalog(request: pytest.FixtureRequest, built_index: BuiltIndex):
    """The built catalog, on SQLite as built and as a copy in PostgreSQL."""
    url = built_index.db
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_server").new_database(request)
        copy_catalog(Path(make_url(built_index.db).database), url, schema=Base.metadata)
    with Catalog(url) as catalog:
        yield catalog


@pytest.fixture(scope="module")
def stores(built_index: BuiltIndex, search_catalog: Catalog, tmp_path_factory: pytest.TempPathFactory):
    edge = open_store(str(built_index.store_copy(tmp_path_factory.mktemp("search") / "qdrant")))
    memory = ClientStore.in_memory()
    copy_points(edge, memory, search_catalog, tiny_model().vector_name)
    yield {"edge": edge, "memory": memory}
    edge.close()
    memory.close()


@pytest.fixture(scope="module")
def services(stores, search_catalog) -> dict[str, SearchService]:
    return {name: SearchService(store, search_catalog, tiny_model()) for name, store in stores.items()}


@pytest.fixture(params=STORES)
def service(request, services) -> SearchService:
    return services[request.param]


def all_vectors(service: SearchService, collection: str, ids: list[str]) -> np.ndarray:
    return np.stack([h.vector for h in service.store.retrieve(collection, ids, service.vector_name)])


def exact_top(service: SearchService, catalog: Catalog, query: np.ndarray, k: int,
              keep=lambda record: True) -> list[str]:
    records = [r for r in catalog.images() if keep(r)]
    scores = all_vectors(service, IMAGES, [r.id for r in records]) @ query
    return [records[i].id for i in np.argsort(-scores, kind="stable")[:k]]


def biggest_kingdom(service: SearchService) -> tuple[str, int]:
    option = service.clade_options(Rank.KINGDOM)[0]
    return option.key, option.n_images


# --- searches, on each store ------------------------------------------------------------------------

def test_text_to_images_ranks_like_exact_numpy_search(service, search_catalog):
    hits = service.text_to_images(TEXT, k=10)
    expected = exact_top(service, search_catalog, service.text_vector(TEXT), 10)
    assert [h.id for h in hits] == expected
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(h.is_image and h.rank == Rank.SPECIES and h.lineage.binomial == h.name for h in hits)
    for hit in hits:
        assert (Path(hit.root) / hit.path).is_file()
        assert open_image(hit.root, hit.path).size[0] > 0


def test_collection_image_by_id_reuses_its_stored_vector(service, search_catalog):
    record = search_catalog.images()[3]
    by_id = service.image_to_images(record.id, k=6)
    uploaded = service.image_to_images(open_image(record.root, record.path), k=7)
    assert record.id not in {h.id for h in by_id}
    assert uploaded[0].id == record.id and uploaded[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.id for h in by_id] == [h.id for h in uploaded[1:]]
    stored = service.stored_vector(record.id)
    assert float(np.linalg.norm(stored)) == pytest.approx(1.0, abs=1e-5)


def test_within_a_clade_returns_only_its_images(service, search_catalog):
    clade, n_images = biggest_kingdom(service)
    hits = service.text_to_images(TEXT, k=100, filter=SearchFilter(within=(clade,)))
    assert len(hits) == n_images
    assert all(clade in h.lineage.keys() for h in hits)
    expected = exact_top(service, search_catalog, service.text_vector(TEXT), 5,
                         keep=lambda r: r.lineage.kingdom == clade)
    assert [h.id for h in hits[:5]] == expected


def test_excluding_a_clade_leaves_it_out(service, search_catalog):
    clade, n_images = biggest_kingdom(service)
    hits = service.text_to_images(TEXT, k=100, filter=SearchFilter(exclude=(clade,)))
    assert len(hits) == len(search_catalog.images()) - n_images
    assert not any(clade in h.lineage.keys() for h in hits)


def test_split_and_source_filters(service, search_catalog):
    val = [r.id for r in search_catalog.images() if r.split == "val"]
    hits = service.text_to_images(TEXT, k=100, filter=SearchFilter(split="val"))
    assert sorted(h.id for h in hits) == sorted(val) and {h.split for h in hits} == {"val"}
    assert service.text_to_images(TEXT, k=5, filter=SearchFilter(source="nowhere")) == []


def test_results_grouped_by_species(service):
    hits = service.text_to_images(TEXT, k=3, per_species=2)
    groups = list(dict.fromkeys(h.group for h in hits))
    assert len(groups) == 3
    for group in groups:
        members = [h for h in hits if h.group == group]
        assert 1 <= len(members) <= 2 and all(h.name == group for h in members)
    assert len({h.id for h in hits}) == len(hits)


def test_text_to_taxa_at_a_rank(service):
    vector = service.text_vector(TEXT)
    hits = service.text_to_taxa(TEXT, k=3, rank="genus")
    assert len(hits) == 3 and all(h.collection == TAXA and h.rank == Rank.GENUS for h in hits)
    genera = service.clade_options(Rank.GENUS)
    scores = all_vectors(service, TAXA, [point_id(o.key) for o in genera]) @ vector
    assert [h.taxon for h in hits] == [genera[i].key for i in np.argsort(-scores)[:3]]
    assert all(h.n_images > 0 for h in hits)


@pytest.mark.parametrize("method", METHODS)
def test_identify_is_consistent_down_the_tree(service, search_catalog, method):
    record = search_catalog.images()[0]
    found = service.identify(record.id, k=3, method=method)
    assert_consistent(found)
    assert found.method == method and found.logit_scale == pytest.approx(1 / 0.07, rel=1e-3)
    for rank in Rank:
        scores = [p.score for p in found.top(rank)]
        assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)


def test_identify_by_species_sum_is_a_softmax_over_every_species(service, search_catalog):
    record = search_catalog.images()[5]
    vector = service.stored_vector(record.id)
    species = service.clade_options(Rank.SPECIES)
    probs = softmax(all_vectors(service, TAXA, [point_id(o.key) for o in species]) @ vector, service.logit_scale)
    found = service.identify(record.id, k=len(species), method="sum")
    got = {p.taxon: p.score for p in found.top(Rank.SPECIES)}
    assert got == pytest.approx({o.key: float(p) for o, p in zip(species, probs)}, abs=1e-5)
    assert sum(p.score for p in found.top(Rank.KINGDOM)) == pytest.approx(1.0)
    kingdom = found.path[0]
    inside = sum(score for key, score in got.items() if key.startswith(kingdom.taxon + "/"))
    assert kingdom.score == pytest.approx(inside, abs=1e-5)


def test_identify_inside_a_clade(service, search_catalog):
    record = search_catalog.images()[2]
    plain = service.identify(record.id, k=3)
    with_split = service.identify(record.id, k=3, filter=SearchFilter(split="val"))  # taxa have no split
    assert [p.taxon for p in with_split.path] == [p.taxon for p in plain.path]
    other = next(o.key for o in service.clade_options(Rank.KINGDOM) if o.key != plain.path[0].taxon)
    inside = service.identify(record.id, k=3, filter=SearchFilter(within=(other,)))
    assert inside.path[0].taxon == other and inside.path[0].score == pytest.approx(1.0)
    assert all(other in p.lineage.keys() for p in inside.path)
    assert_consistent(inside)


def assert_consistent(found: Identification) -> None:
    assert found.path, "an identification names at least a kingdom"
    for parent, child in zip(found.path, found.path[1:]):
        assert child.rank > parent.rank
        assert parent.taxon in child.lineage.keys(), f"{child.taxon} not inside {parent.taxon}"


def test_clade_options_count_images(service, search_catalog):
    kingdoms = service.clade_options(Rank.KINGDOM)
    assert sum(o.n_images for o in kingdoms) == len(search_catalog.images())
    assert [o.n_images for o in kingdoms] == sorted((o.n_images for o in kingdoms), reverse=True)
    clade = kingdoms[0].key
    genera = service.clade_options(Rank.GENUS, within=clade)
    assert genera and all(o.key.startswith(clade + "/") for o in genera)
    assert sum(o.n_images for o in genera) == kingdoms[0].n_images
    assert service.counts().images == len(search_catalog.images())
    assert service.counts().taxa["kingdom"] == len(kingdoms)


# --- both stores, same answers --------------------------------------------------------------------------

QUERIES = {
    "text": lambda s, r: s.text_to_images(TEXT, k=8),
    "image-id": lambda s, r: s.image_to_images(r.id, k=8),
    "upload": lambda s, r: s.image_to_images(open_image(r.root, r.path), k=8),
    "within": lambda s, r: s.text_to_images(TEXT, k=8, filter=SearchFilter(within=(r.lineage.key(Rank.KINGDOM),))),
    "exclude-and-split": lambda s, r: s.text_to_images(
        TEXT, k=8, filter=SearchFilter(exclude=(r.lineage.key(Rank.CLASS),), split="train")),
    "grouped": lambda s, r: s.text_to_images(TEXT, k=4, per_species=2),
    "taxa": lambda s, r: s.text_to_taxa(TEXT, k=6),
    "taxa-rank": lambda s, r: s.text_to_taxa(TEXT, k=3, rank=Rank.FAMILY),
}


@pytest.mark.parametrize("query", sorted(QUERIES))
def test_both_stores_give_the_same_results(services, search_catalog, query):
    record = search_catalog.images()[7]
    edge, memory = (QUERIES[query](services[name], record) for name in STORES)
    assert [h.id for h in edge] == [h.id for h in memory]
    assert [h.score for h in edge] == pytest.approx([h.score for h in memory], abs=1e-5)
    assert [h.row() for h in edge] == [{**h.row(), "score": pytest.approx(h.score, abs=1e-5)} for h in memory]
    assert edge, "the query found something"


@pytest.mark.parametrize("method", METHODS)
def test_both_stores_identify_alike(services, search_catalog, method):
    record = search_catalog.images()[11]
    edge, memory = (services[name].identify(record.id, k=4, method=method) for name in STORES)
    assert [p.taxon for p in edge.path] == [p.taxon for p in memory.path]
    for rank in Rank:
        assert [p.taxon for p in edge.top(rank)] == [p.taxon for p in memory.top(rank)]
        assert [p.score for p in edge.top(rank)] == pytest.approx([p.score for p in memory.top(rank)], abs=1e-5)


def test_a_model_without_vectors_says_how_to_build(stores):
    service = SearchService(stores["edge"], None, "ViT-B-32")
    with pytest.raises(NotBuiltError, match=r"no 'vit-b-32' vectors.*tol-tiny.*python -m embed build --model ViT-B-32"):
        service.text_to_images("anything")
    assert service.counts().is_empty


# --- the CLI ------------------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m embed")
    add_search_parsers(root.add_subparsers(dest="command", required=True))
    return root


def test_cli_arguments():
    args = parser().parse_args(["search", "--text", "magpie", "--in", "taxa", "--rank", "genus",
                                "--within", "Animalia", "--within", "Plantae", "--k", "3", "--format", "json"])
    assert (args.text, args.collection, args.rank, args.within, args.k) == ("magpie", "taxa", "genus",
                                                                           ["Animalia", "Plantae"], 3)
    args = parser().parse_args(["predict", "a.jpg", "b.jpg"])
    assert (args.images, args.rank, args.k, args.method, args.format) == (["a.jpg", "b.jpg"], None, 5,
                                                                         "sum", "table")
    for bad in (["search"], ["search", "--text", "x", "--image", "y.jpg"], ["search", "--text", "x", "--k", "0"],
                ["search", "--text", "x", "--rank", "tribe"], ["predict", "a.jpg", "--format", "xml"]):
        with pytest.raises(SystemExit):
            parser().parse_args(bad)


@pytest.fixture(scope="module")
def cli_store(built_index: BuiltIndex, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_index.store_copy(tmp_path_factory.mktemp("cli") / "qdrant")


def cli(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    args = parser().parse_args(argv)
    runner = run_search if args.command == "search" else run_predict
    return runner(args, out), out.getvalue()


def test_cli_search_json_and_table(built_index, cli_store, monkeypatch):
    monkeypatch.setenv("TOL_MODEL", "tol-tiny")  # the flag is absent: the environment decides
    common = ["--store", str(cli_store), "--db", built_index.db]
    status, out = cli(["search", "--text", TEXT, "--k", "4", "--format", "json",
                       "--within", "Animalia", *common])
    assert status == 0
    rows = json.loads(out)
    assert len(rows) == 4 and all(r["kingdom"] == "Animalia" and Path(r["file"]).is_file() for r in rows)
    status, out = cli(["search", "--text", TEXT, "--in", "taxa", "--rank", "family", "--k", "2", *common])
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["#", "score", "rank", "name", "common_name", "n_images", "taxon"]
    assert len(lines) == 3 and all(" family " in line for line in lines[1:])


def test_cli_predict_writes_pybioclip_csv(built_index, cli_store):
    files = sorted(built_index.images.rglob("*.jpg"))[:2]
    status, out = cli(["predict", *map(str, files), "--k", "3", "--format", "csv", "--model", "tol-tiny",
                       "--store", str(cli_store)])
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert out.splitlines()[0] == ("file_name,kingdom,phylum,class,order,family,genus,species_epithet,species,"
                                   "common_name,score")
    assert [r["file_name"] for r in rows] == [str(files[0])] * 3 + [str(files[1])] * 3
    assert all(r["species"] == f"{r['genus']} {r['species_epithet']}" for r in rows)
    assert all(0.0 < float(r["score"]) <= 1.0 for r in rows)
    status, out = cli(["predict", str(files[0]), "--rank", "family", "--k", "2", "--format", "csv",
                       "--method", "taxa", "--model", "tol-tiny", "--store", str(cli_store)])
    assert status == 0 and out.splitlines()[0] == "file_name,kingdom,phylum,class,order,family,score"


def test_cli_errors_are_clear(built_index, cli_store, tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    status, _ = cli(["search", "--text", "x", "--model", "ViT-B-32", "--store", str(cli_store)])
    assert status == 1 and "python -m embed build --model ViT-B-32" in caplog.text
    caplog.clear()
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("not a picture")
    status, _ = cli(["predict", str(not_an_image), "--model", "tol-tiny", "--store", str(cli_store)])
    assert status == 1 and "not an image file" in caplog.text
    assert not (tmp_path / "var").exists()
