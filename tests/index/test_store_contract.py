"""The same contract on both stores: the embedded edge shards (tmp_path) and qdrant-client (":memory:").

Like qdrant-client's congruence tests, every test here runs on each store, and one test asks
both the same questions and compares the answers. Vectors are seeded: each species has a
centroid and its images lie near it, so the expected answers are computed with numpy.
Set TOL_TEST_QDRANT_URL (and TOL_QDRANT_API_KEY) to also run them on a real server; its
`images` and `taxa` collections are deleted first.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from index.client_store import ClientStore
from index.constants import GENERATIONS_DIR, STORE_LOCK_FILE
from index.collection.entries import image_point_id
from index.records import ImageRecord
from index.schema import IMAGE_FIELDS, IMAGES, KEYWORD_INDEX_FIELDS, TAXA, TAXON_FIELDS
from index.store import (
    DimensionMismatchError, Hit, MissingVectorError, SearchFilter, StoreLockedError, VectorStore, open_store,
)
from taxonomy import Lineage, Rank, point_id
from taxonomy.taxon import taxa_of

SERVER_URL = os.environ.get("TOL_TEST_QDRANT_URL", "")
DIM, DIM2 = 16, 8
PER_SPECIES = 6

SPECIES = [
    Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia"], "black-billed magpie"),
    Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Cyanocitta", "cristata"], "blue jay"),
    Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Suliformes", "Sulidae", "Morus", "bassanus"], "northern gannet"),
    Lineage.from_ranks(["Plantae", "Tracheophyta", "Magnoliopsida", "Rosales", "Moraceae", "Morus", "alba"], "white mulberry"),
    Lineage.from_ranks(["Plantae", "Tracheophyta", "Magnoliopsida", "Fagales", "Fagaceae", "Quercus", "robur"]),
    Lineage.from_ranks(["Animalia", "Chordata", "Actinopteri", "", "Pomacentridae", "Amphiprion", "ocellaris"]),
    Lineage.from_ranks(["Animalia", "Chordata", "Mammalia", "Carnivora", "Canidae", "Canis", "lupus"], "gray wolf"),
]
GENUS_ONLY = Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Corvus"])
UNLABELLED = Lineage()
AVES = "Animalia/Chordata/Aves"
CORVIDAE = "Animalia/Chordata/Aves/Passeriformes/Corvidae"
PLANT_MORUS = "Plantae/Tracheophyta/Magnoliopsida/Rosales/Moraceae/Morus"
BIRD_MORUS = "Animalia/Chordata/Aves/Suliformes/Sulidae/Morus"


def _records() -> list[ImageRecord]:
    lineages = [lin for lin in SPECIES for _ in range(PER_SPECIES)] + [GENUS_ONLY, GENUS_ONLY, UNLABELLED, UNLABELLED]
    records = []
    for n, lineage in enumerate(lineages):
        path = f"{lineage.key() or 'unlabelled'}/{n:03d}.jpg"
        records.append(ImageRecord(
            id=image_point_id(path), root="/data/demo", path=path, sha256=f"{n:064x}", bytes=1000 + n,
            width=64 + n, height=48, lineage=lineage, split="val" if n % 3 == 0 else "train",
            source="inat" if n % 2 else "demo", license="CC-BY" if n % 4 else "",
        ))
    return records


RECORDS = _records()
TAXA_LIST = taxa_of(r.lineage for r in RECORDS)
TEXTS = [t.text("taxon_com") for t in TAXA_LIST]


def _vectors(dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Image and taxon vectors: images near their deepest taxon's centroid, taxa at their centroid."""
    rng = np.random.default_rng(seed)
    centroids = {t.key: rng.normal(size=dim) for t in TAXA_LIST}
    images = np.stack([
        (centroids[r.lineage.key()] if r.lineage.key() else 0) + 0.35 * rng.normal(size=dim) for r in RECORDS
    ]).astype(np.float32)
    taxa = np.stack([centroids[t.key] for t in TAXA_LIST]).astype(np.float32)
    return images, taxa


IMAGE_VECTORS, TAXON_VECTORS = _vectors(DIM, seed=1)
IMAGE_VECTORS2, TAXON_VECTORS2 = _vectors(DIM2, seed=2)


def _build(store: VectorStore, model: str = "demo", images: np.ndarray = IMAGE_VECTORS,
           taxa: np.ndarray = TAXON_VECTORS) -> VectorStore:
    store.ensure_vector(model, images.shape[1])
    store.upsert_images(model, RECORDS, images)
    store.upsert_taxa(model, TAXA_LIST, TEXTS, taxa)
    return store


def _expected(query: np.ndarray, vectors: np.ndarray, keep: list[bool] | None = None) -> list[tuple[int, float]]:
    """(row, cosine) of every kept row, best first: what an exact search must return."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = unit @ (query / np.linalg.norm(query))
    rows = [i for i in np.argsort(-scores) if keep is None or keep[i]]
    return [(int(i), float(scores[i])) for i in rows]


def _ids(hits: list[Hit]) -> list[str]:
    return [h.id for h in hits]


def _open_server() -> VectorStore:
    from qdrant_client import QdrantClient

    client = QdrantClient(url=SERVER_URL, api_key=os.environ.get("TOL_QDRANT_API_KEY"))
    for name in (IMAGES, TAXA):
        client.delete_collection(name)
    client.close()
    return open_store(SERVER_URL)


KINDS = ["edge", "client"] + (["server"] if SERVER_URL else [])


def _open(kind: str, folder: Path) -> VectorStore:
    if kind == "edge":
        return open_store(str(folder / "qdrant"))
    return open_store(":memory:") if kind == "client" else _open_server()


@pytest.fixture(params=KINDS)
def store(request, tmp_path):
    """An empty store of each kind, for the tests that write."""
    opened = _open(request.param, tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def built(store):
    return _build(store)


@pytest.fixture(scope="module", params=KINDS)
def shared(request, tmp_path_factory):
    """One built store of each kind for the tests that only read (an edge shard takes a second to make)."""
    opened = _build(_open(request.param, tmp_path_factory.mktemp(request.param)))
    yield opened
    opened.close()


def test_an_empty_store_answers_nothing_and_names_missing_vectors(store):
    assert store.vector_names(IMAGES) == {} and store.count(IMAGES) == 0
    assert list(store.scroll(TAXA)) == [] and store.facet_counts(IMAGES, "kingdom") == {}
    assert store.ids_with_vector(IMAGES, "demo", [RECORDS[0].id]) == set()
    with pytest.raises(MissingVectorError, match=r"'images'.*no vector 'demo'.*none yet"):
        store.search(IMAGES, "demo", IMAGE_VECTORS[0])


def test_search_returns_the_exact_nearest_images_best_first(shared):
    assert shared.vector_names(IMAGES) == {"demo": DIM} and shared.vector_names(TAXA) == {"demo": DIM}
    query = IMAGE_VECTORS[3] + 0.1
    hits = shared.search(IMAGES, "demo", query, k=8)
    expected = _expected(query, IMAGE_VECTORS)[:8]
    assert _ids(hits) == [RECORDS[i].id for i, _ in expected]
    assert [h.score for h in hits] == pytest.approx([s for _, s in expected], abs=1e-5)
    assert hits[0].payload["path"] == RECORDS[expected[0][0]].path and hits[0].vector is None
    with pytest.raises(MissingVectorError, match=r"no vector 'bioclip'.*demo \(16-d\)"):
        shared.search(IMAGES, "bioclip", query)
    with pytest.raises(ValueError, match="expected a vector of 16 values"):
        shared.search(IMAGES, "demo", query[:5])


def test_search_knobs_and_refusals(shared):
    query = IMAGE_VECTORS[7]
    plain = _ids(shared.search(IMAGES, "demo", query, k=6))
    assert _ids(shared.search(IMAGES, "demo", query, k=6, exact=True)) == plain
    assert _ids(shared.search(IMAGES, "demo", query, k=6, hnsw_ef=256)) == plain
    assert [_ids(h) for h in shared.search_batch(IMAGES, "demo", query[None], k=6, exact=True)] == [plain]
    for kwargs, message in (({"k": 0}, "k must be a positive integer"), ({"hnsw_ef": 0}, "hnsw_ef must be"),
                            ({"group_by": "species", "group_size": 0}, "group_size must be"),
                            ({"group_by": "path"}, "group_by 'path' is not an indexed keyword field")):
        with pytest.raises(ValueError, match=message):
            shared.search(IMAGES, "demo", query, **kwargs)


def test_search_returns_stored_vectors_when_asked(shared):
    hit = shared.search(IMAGES, "demo", IMAGE_VECTORS[0], k=1, with_vectors=True)[0]
    unit = IMAGE_VECTORS[0] / np.linalg.norm(IMAGE_VECTORS[0])
    assert hit.id == RECORDS[0].id and np.allclose(hit.vector, unit, atol=1e-6)
    grouped = shared.search(IMAGES, "demo", IMAGE_VECTORS[0], k=2, group_by="species", with_vectors=True)
    assert grouped[0].id == RECORDS[0].id and np.allclose(grouped[0].vector, unit, atol=1e-6)
    assert grouped[0].payload["path"] == RECORDS[0].path and grouped[1].vector.shape == (DIM,)


def test_filters_within_exclude_rank_split_source(shared):
    query = IMAGE_VECTORS[0]
    lineages = [set(r.lineage.keys()) for r in RECORDS]
    cases = {
        SearchFilter(within=(AVES,)): [AVES in keys for keys in lineages],
        SearchFilter(within=(CORVIDAE, PLANT_MORUS)): [bool(keys & {CORVIDAE, PLANT_MORUS}) for keys in lineages],
        SearchFilter(exclude=(CORVIDAE,)): [CORVIDAE not in keys for keys in lineages],
        SearchFilter(within=(AVES,), exclude=(CORVIDAE,)): [AVES in k and CORVIDAE not in k for k in lineages],
        SearchFilter(rank=Rank.GENUS): [r.lineage.deepest_rank == Rank.GENUS for r in RECORDS],
        SearchFilter(split="val", source="inat"): [r.split == "val" and r.source == "inat" for r in RECORDS],
    }
    for search_filter, keep in cases.items():
        expected = _expected(query, IMAGE_VECTORS, keep)
        assert 0 < len(expected) < len(RECORDS)
        assert shared.count(IMAGES, search_filter) == len(expected), search_filter
        hits = shared.search(IMAGES, "demo", query, k=5, filter=search_filter)
        assert _ids(hits) == [RECORDS[i].id for i, _ in expected[:5]], search_filter
    species = shared.search(TAXA, "demo", TAXON_VECTORS[0], k=50, filter=SearchFilter(rank="species"))
    assert len(species) == len(SPECIES) and {h.payload["rank"] for h in species} == {"species"}


def test_homonym_genera_never_mix_under_a_clade_filter(shared):
    plant_rows = [i for i, r in enumerate(RECORDS) if PLANT_MORUS in r.lineage.keys()]
    bird_rows = [i for i, r in enumerate(RECORDS) if BIRD_MORUS in r.lineage.keys()]
    query = IMAGE_VECTORS[bird_rows[0]]  # a gannet: the nearest images are gannets
    hits = shared.search(IMAGES, "demo", query, k=50, filter=SearchFilter(within=(PLANT_MORUS,)))
    assert sorted(_ids(hits)) == sorted(RECORDS[i].id for i in plant_rows)
    assert {h.payload["kingdom"] for h in hits} == {"Plantae"}
    assert shared.facet_counts(IMAGES, "genus")["Morus"] == 2 * PER_SPECIES  # names mix ...
    assert shared.facet_counts(IMAGES, "genus", SearchFilter(within=(BIRD_MORUS,))) == {"Morus": PER_SPECIES}
    genera = shared.search(TAXA, "demo", query, k=50, filter=SearchFilter(rank=Rank.GENUS, within=("Animalia",)))
    morus = [h for h in genera if h.payload["name"] == "Morus"]  # ... keys do not
    assert [h.payload["taxon"] for h in morus] == [BIRD_MORUS] and morus[0].id == point_id(BIRD_MORUS)


def test_group_by_species_gives_one_group_per_species(shared):
    query = IMAGE_VECTORS[0] + IMAGE_VECTORS[PER_SPECIES]  # between magpies and jays
    hits = shared.search(IMAGES, "demo", query, k=3, group_by="species", group_size=2)
    # Qdrant's groups: the first k species to appear in score order, each with its 2 best images.
    groups: dict[str, list[int]] = {}
    for row, _ in _expected(query, IMAGE_VECTORS):
        binomial = RECORDS[row].lineage.binomial
        if binomial and (binomial in groups or len(groups) < 3) and len(groups.setdefault(binomial, [])) < 2:
            groups[binomial].append(row)
    assert _ids(hits) == [RECORDS[i].id for rows in groups.values() for i in rows]
    assert [h.group for h in hits] == [g for g, rows in groups.items() for _ in rows]
    assert [h.payload["species"] for h in hits] == [h.group for h in hits]
    single = shared.search(IMAGES, "demo", query, k=len(SPECIES) + 5, group_by="species")
    assert len(single) == len(SPECIES) == len({h.group for h in single})  # images without a species: no group


def _groups_of(query: np.ndarray, vectors: np.ndarray, payloads: list[dict], field: str, k: int, size: int):
    """Qdrant's grouping computed with numpy: first k values in score order, each with its best hits."""
    groups: dict[str, list[int]] = {}
    for row, _ in _expected(query, vectors):
        value = payloads[row].get(field)
        for v in value if isinstance(value, list) else [value] if value else []:
            if (v in groups or len(groups) < k) and len(groups.setdefault(v, [])) < size:
                groups[v].append(row)
    return groups


def test_group_by_looks_past_a_crowded_first_page(store):
    # 200 magpies and 30 unlabelled images crowd the query; 5 more species lie further out.
    rng = np.random.default_rng(3)
    query = rng.normal(size=DIM).astype(np.float32)
    lineages = [SPECIES[0]] * 200 + [UNLABELLED] * 30 + [lin for lin in SPECIES[1:6] for _ in range(20)]
    spread = [0.3] * 200 + [0.1] * 30 + [2.0] * 100
    vectors = np.stack([query + s * rng.normal(size=DIM) for s in spread]).astype(np.float32)
    records = [ImageRecord(id=image_point_id(f"crowd/{n}.jpg"), root="/r", path=f"crowd/{n}.jpg", sha256="0" * 64,
                           bytes=1, width=1, height=1, lineage=lin) for n, lin in enumerate(lineages)]
    store.upsert_images("demo", records, vectors)
    payloads = [{"species": r.lineage.binomial, "lineage": r.lineage.keys()} for r in records]
    for field, k, size in (("species", 4, 2), ("species", 6, 1), ("lineage", 3, 3)):
        expected = _groups_of(query, vectors, payloads, field, k, size)
        hits = store.search(IMAGES, "demo", query, k=k, group_by=field, group_size=size)
        assert [(h.group, h.id) for h in hits] == [(g, records[i].id) for g, rows in expected.items() for i in rows]


def test_search_batch_answers_each_query_like_search(shared):
    queries = np.stack([IMAGE_VECTORS[0], IMAGE_VECTORS[20], TAXON_VECTORS[3]])
    within = SearchFilter(within=("Animalia",))
    batch = shared.search_batch(IMAGES, "demo", queries, k=4, filter=within)
    assert len(batch) == 3
    for query, hits in zip(queries, batch):
        single = shared.search(IMAGES, "demo", query, k=4, filter=within)
        assert _ids(hits) == _ids(single) and [h.score for h in hits] == pytest.approx([h.score for h in single])
    nearest_taxa = shared.search_batch(TAXA, "demo", IMAGE_VECTORS[:2], k=1, filter=SearchFilter(rank="species"))
    assert [hits[0].payload["taxon"] for hits in nearest_taxa] == [SPECIES[0].key()] * 2


def test_two_models_live_side_by_side(built):
    _build(built, "tol-tiny", IMAGE_VECTORS2, TAXON_VECTORS2)
    assert built.vector_names(IMAGES) == {"demo": DIM, "tol-tiny": DIM2}
    assert built.count(IMAGES, vector="demo") == built.count(IMAGES, vector="tol-tiny") == len(RECORDS)
    for model, vectors in (("demo", IMAGE_VECTORS), ("tol-tiny", IMAGE_VECTORS2)):
        hits = built.search(IMAGES, model, vectors[10], k=5)
        assert _ids(hits) == [RECORDS[i].id for i, _ in _expected(vectors[10], vectors)[:5]]
        stored = built.retrieve(IMAGES, [RECORDS[10].id], vector_name=model)[0].vector
        assert np.allclose(stored, vectors[10] / np.linalg.norm(vectors[10]), atol=1e-6)


def test_a_second_model_on_some_points_keeps_the_first_everywhere(built):
    built.upsert_images("tol-tiny", RECORDS[:5], IMAGE_VECTORS2[:5])
    ids = [r.id for r in RECORDS[:8]]
    assert built.ids_with_vector(IMAGES, "tol-tiny", ids) == set(ids[:5])
    assert built.ids_with_vector(IMAGES, "demo", ids) == set(ids)
    assert built.count(IMAGES, vector="tol-tiny") == 5 and built.count(IMAGES, vector="demo") == len(RECORDS)
    hit = built.retrieve(IMAGES, [ids[0]], vector_name="demo")[0]
    assert np.allclose(hit.vector, IMAGE_VECTORS[0] / np.linalg.norm(IMAGE_VECTORS[0]), atol=1e-6)


def test_dimension_mismatch_is_refused_and_writes_nothing(store):
    store.ensure_vector("demo", DIM, collections=(TAXA,))
    with pytest.raises(DimensionMismatchError, match=r"'taxa'.*'demo'.*dimension 16, not 8") as error:
        store.ensure_vector("demo", DIM2)
    assert (error.value.collection, error.value.existing, error.value.requested) == (TAXA, DIM, DIM2)
    assert store.vector_names(IMAGES) == {} and store.vector_names(TAXA) == {"demo": DIM}
    _build(store)
    with pytest.raises(DimensionMismatchError, match="'images'"):
        store.upsert_images("demo", RECORDS[:3], IMAGE_VECTORS2[:3])
    assert store.count(IMAGES) == len(RECORDS) and store.vector_names(IMAGES) == {"demo": DIM}
    assert np.allclose(store.retrieve(IMAGES, [RECORDS[0].id], "demo")[0].vector,
                       IMAGE_VECTORS[0] / np.linalg.norm(IMAGE_VECTORS[0]), atol=1e-6)


def test_upsert_is_idempotent_and_replaces_a_changed_payload(built):
    _build(built)
    assert built.count(IMAGES) == len(RECORDS) and built.count(TAXA) == len(TAXA_LIST)
    moved = [ImageRecord(**{**vars(RECORDS[0]), "split": "test"})]
    built.upsert_images("tol-tiny", moved, IMAGE_VECTORS2[:1])
    hit = built.retrieve(IMAGES, [RECORDS[0].id])[0]
    assert hit.payload["split"] == "test" and built.count(IMAGES) == len(RECORDS)
    assert built.ids_with_vector(IMAGES, "demo", [RECORDS[0].id]) == {RECORDS[0].id}
    with pytest.raises(ValueError, match="repeat point ids"):
        built.upsert_images("demo", RECORDS[:1] * 2, IMAGE_VECTORS[:2])
    with pytest.raises(ValueError, match=r"expected a \(3, dim\) array"):
        built.upsert_images("demo", RECORDS[:3], IMAGE_VECTORS[:2])


def test_retrieve_scroll_and_facets(shared):
    ids = [RECORDS[4].id, point_id("nowhere"), RECORDS[1].id]
    assert _ids(shared.retrieve(IMAGES, ids)) == [RECORDS[4].id, RECORDS[1].id]
    scrolled = list(shared.scroll(IMAGES))
    assert sorted(_ids(scrolled)) == sorted(r.id for r in RECORDS) and all(h.score is None for h in scrolled)
    assert len(list(shared.scroll(IMAGES, limit=7))) == 7
    families = {t.key for t in TAXA_LIST if t.rank == Rank.FAMILY}
    assert len(list(shared.scroll(TAXA, SearchFilter(rank=Rank.FAMILY)))) == len(families)
    kingdoms = Counter(r.lineage.kingdom for r in RECORDS if r.lineage.kingdom)
    assert shared.facet_counts(IMAGES, "kingdom") == dict(kingdoms.most_common())
    classes = shared.facet_counts(IMAGES, "class", SearchFilter(within=("Animalia",)))
    assert classes == {"Aves": 3 * PER_SPECIES + 2, "Actinopteri": PER_SPECIES, "Mammalia": PER_SPECIES}
    assert shared.facet_counts(TAXA, "rank")["genus"] == len(SPECIES) + 1
    with pytest.raises(ValueError, match="not an indexed keyword field"):
        shared.facet_counts(IMAGES, "path")
    with pytest.raises(ValueError, match="unknown collection 'image'"):
        shared.scroll("image")  # checked when called, not when first iterated


def test_info_reports_points_vectors_and_indexes(shared, request):
    info = shared.info(IMAGES)
    assert (info.points, info.vectors) == (len(RECORDS), {"demo": DIM})
    # qdrant-client's local mode keeps no payload indexes; the edge shards and a server list them all.
    indexes = {} if "client" in request.node.callspec.id else {f: "keyword" for f in KEYWORD_INDEX_FIELDS}
    assert info.payload_indexes == indexes


def test_payloads_follow_the_spec(shared):
    magpie = shared.retrieve(IMAGES, [RECORDS[0].id])[0].payload
    assert magpie == {
        "kingdom": "Animalia", "phylum": "Chordata", "class": "Aves", "order": "Passeriformes",
        "family": "Corvidae", "genus": "Pica", "species": "Pica hudsonia", "common_name": "black-billed magpie",
        "taxon": SPECIES[0].key(), "lineage": SPECIES[0].keys(), "rank": "species", "path": RECORDS[0].path,
        "sha256": RECORDS[0].sha256, "source": "demo", "split": "val", "width": 64, "height": 48,
    }
    unlabelled = shared.retrieve(IMAGES, [RECORDS[-1].id])[0].payload
    assert set(unlabelled) == {"lineage", "path", "sha256", "source", "split", "license", "width", "height"}
    assert unlabelled["lineage"] == []
    family = shared.retrieve(TAXA, [point_id(CORVIDAE)])[0].payload
    assert family == {
        "rank": "family", "name": "Corvidae", "taxon": CORVIDAE, "parent": "Animalia/Chordata/Aves/Passeriformes",
        "lineage": ["Animalia", "Animalia/Chordata", AVES, "Animalia/Chordata/Aves/Passeriformes", CORVIDAE],
        "kingdom": "Animalia", "phylum": "Chordata", "class": "Aves", "order": "Passeriformes", "family": "Corvidae",
        "depth": 4, "n_images": 2 * PER_SPECIES + 2, "text": "a photo of Animalia Chordata Aves Passeriformes Corvidae.",
        "sources": ["catalog"],
    }
    assert set(family) <= set(TAXON_FIELDS) and set(magpie) <= set(IMAGE_FIELDS)


def test_both_stores_give_the_same_answers(tmp_path):
    with open_store(str(tmp_path / "edge")) as edge, open_store(":memory:") as client:
        stores = [_build(edge), _build(client)]
        rng = np.random.default_rng(7)
        queries = list(rng.normal(size=(4, DIM)).astype(np.float32)) + [IMAGE_VECTORS[9], TAXON_VECTORS[2]]
        filters = [None, SearchFilter(within=("Animalia",), exclude=(CORVIDAE,)), SearchFilter(split="train")]
        for query in queries:
            for search_filter in filters:
                answers = [s.search(IMAGES, "demo", query, k=10, filter=search_filter) for s in stores]
                assert _ids(answers[0]) == _ids(answers[1])
                assert [h.score for h in answers[0]] == pytest.approx([h.score for h in answers[1]], abs=1e-5)
                assert [h.payload for h in answers[0]] == [h.payload for h in answers[1]]
                for field in ("genus", "lineage"):
                    groups = [s.search(IMAGES, "demo", query, k=3, filter=search_filter, group_by=field, group_size=2)
                              for s in stores]
                    assert [(h.id, h.group) for h in groups[0]] == [(h.id, h.group) for h in groups[1]]
            taxa = [s.search(TAXA, "demo", query, k=5, filter=SearchFilter(rank=Rank.ORDER)) for s in stores]
            assert _ids(taxa[0]) == _ids(taxa[1])
        assert stores[0].facet_counts(TAXA, "lineage") == stores[1].facet_counts(TAXA, "lineage")
        batches = [s.search_batch(TAXA, "demo", np.stack(queries), k=3) for s in stores]
        assert [_ids(b) for b in batches[0]] == [_ids(b) for b in batches[1]]


def test_the_edge_store_reopens_from_disk(tmp_path):
    root = tmp_path / "qdrant"
    with open_store(str(root)) as store:
        _build(store)
        before = _ids(store.search(IMAGES, "demo", IMAGE_VECTORS[5], k=5))
        store.optimize()
    assert sorted(p.name for p in root.iterdir()) == [GENERATIONS_DIR, STORE_LOCK_FILE, IMAGES, TAXA]
    with open_store(str(root)) as store:
        assert store.vector_names(TAXA) == {"demo": DIM} and store.count(IMAGES) == len(RECORDS)
        assert _ids(store.search(IMAGES, "demo", IMAGE_VECTORS[5], k=5)) == before
        _build(store, "tol-tiny", IMAGE_VECTORS2, TAXON_VECTORS2)
    with open_store(str(root)) as store:
        assert store.vector_names(IMAGES) == {"demo": DIM, "tol-tiny": DIM2}


def test_an_open_edge_store_refuses_a_second_open(tmp_path):
    root = tmp_path / "qdrant"
    with open_store(str(root)) as store:
        store.ensure_vector("demo", DIM, collections=(TAXA,))  # creates and holds the taxa shard
        with pytest.raises(StoreLockedError, match=f"{root}.*already open in this process"):
            open_store(str(root))
        code = ("import sys; from index.store import open_store, StoreLockedError\n"
                "try:\n    open_store(sys.argv[1])\nexcept StoreLockedError as e:\n    print(e); sys.exit(3)\n")
        done = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[2])
        assert done.returncode == 3, done.stderr
        assert str(root) in done.stdout and "another process" in done.stdout
    with open_store(str(root)) as store:  # closing released the folder
        assert store.vector_names(TAXA) == {"demo": DIM}


def test_the_edge_shards_match_the_spec_through_the_plain_engine_api(tmp_path):
    import qdrant_edge as qe

    root = tmp_path / "qdrant"
    with open_store(str(root)) as store:
        _build(store)
        _build(store, "tol-tiny", IMAGE_VECTORS2, TAXON_VECTORS2)
    for collection, fields, some_id in ((IMAGES, IMAGE_FIELDS, RECORDS[0].id), (TAXA, TAXON_FIELDS, point_id(CORVIDAE))):
        config = json.loads((root / collection / "edge_config.json").read_text())
        assert {n: (v["size"], v["distance"]) for n, v in config["vectors"].items()} == {
            "demo": (DIM, "Cosine"), "tol-tiny": (DIM2, "Cosine")}
        shard = qe.EdgeShard.load(str(root / collection))
        try:
            info = shard.info()
            # info() exposes segments, points, indexed vectors and the payload index schema; no vectors.
            assert set(info.payload_schema) == set(KEYWORD_INDEX_FIELDS)
            assert {v.data_type for v in info.payload_schema.values()} == {qe.PayloadSchemaType.Keyword}
            assert info.payload_schema["lineage"].points > 0
            point = shard.retrieve([some_id], with_payload=True, with_vector=True)[0]
            assert set(point.vector) == {"demo", "tol-tiny"} and len(point.vector["tol-tiny"]) == DIM2
            assert set(point.payload) <= set(fields) and {"taxon", "lineage", "rank"} <= set(point.payload)
        finally:
            shard.close()


def test_the_client_collections_match_the_spec_through_the_plain_client_api():
    from qdrant_client import QdrantClient

    client = QdrantClient(":memory:")
    store = ClientStore(client)
    _build(store)
    _build(store, "tol-tiny", IMAGE_VECTORS2, TAXON_VECTORS2)
    for collection, fields in ((IMAGES, IMAGE_FIELDS), (TAXA, TAXON_FIELDS)):
        vectors = client.get_collection(collection).config.params.vectors
        assert {n: (v.size, v.distance.value) for n, v in vectors.items()} == {
            "demo": (DIM, "Cosine"), "tol-tiny": (DIM2, "Cosine")}
        point = client.scroll(collection, limit=1, with_vectors=True)[0][0]
        assert set(point.vector) == {"demo", "tol-tiny"} and set(point.payload) <= set(fields)
    # Local mode keeps no payload indexes (payload_schema is always {}); a server lists them.
    assert client.get_collection(IMAGES).payload_schema == {}
    store.close()


@pytest.mark.skipif(not SERVER_URL, reason="needs a Qdrant server: set TOL_TEST_QDRANT_URL")
def test_a_server_lists_every_keyword_index():
    from qdrant_client import QdrantClient

    with _open_server() as store:
        _build(store)
    client = QdrantClient(url=SERVER_URL, api_key=os.environ.get("TOL_QDRANT_API_KEY"))
    for collection in (IMAGES, TAXA):
        schema = client.get_collection(collection).payload_schema
        assert {k: v.data_type.value for k, v in schema.items()} == {f: "keyword" for f in KEYWORD_INDEX_FIELDS}
    client.close()


@pytest.mark.skipif(not SERVER_URL, reason="needs a Qdrant server: set TOL_TEST_QDRANT_URL")
def test_a_server_collection_missing_indexes_gets_them_back():
    from qdrant_client import QdrantClient, models

    client = QdrantClient(url=SERVER_URL, api_key=os.environ.get("TOL_QDRANT_API_KEY"))
    for collection in (IMAGES, TAXA):
        client.delete_collection(collection)
    # What a build killed between creating the collection and its indexes leaves.
    client.create_collection(IMAGES, vectors_config={"demo": models.VectorParams(size=DIM, distance=models.Distance.COSINE)})
    client.create_payload_index(IMAGES, "kingdom", field_schema=models.PayloadSchemaType.KEYWORD)
    with open_store(SERVER_URL) as store:
        store.ensure_vector("demo", DIM)
    for collection in (IMAGES, TAXA):
        assert set(client.get_collection(collection).payload_schema) == set(KEYWORD_INDEX_FIELDS)
    client.close()
