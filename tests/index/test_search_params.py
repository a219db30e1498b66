"""Filtered search keeps its recall: the plan of `index.search_params` and both back ends using it.

A 10k-point store whose HNSW graph is forced on small filters (full-scan threshold 1 KB) and whose
`split` field has no payload-aware links: the engine's plain filtered HNSW search then strands in
the graph for a filter keeping 2 % of the points at random. The plan (exact below a cardinality,
ACORN with a widened beam above it) brings recall@10 against exact search back to >= 0.95.
"""
from __future__ import annotations

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

import index.search_params as search_params
from index.client_store import ClientStore, _client_params
from index.collection.entries import image_point_id
from index.records import ImageRecord
from index.search_params import SearchPlan, SearchPolicy, plan_search, planned_search
from index.store import EdgeSettings, SearchFilter, open_store
from index.vector_store import Query
from taxonomy import Lineage

POINTS, DIM, K = 10_000, 32, 10
RARE = "rare"  # the split of ~2 % of the points, drawn at random
LINEAGE = Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia"])


# --- the plan, pure -----------------------------------------------------------------------------------

def test_no_filter_keeps_what_was_asked():
    assert plan_search(filtered=False, cardinality=None, total=None, k=10, hnsw_ef=64) == SearchPlan(hnsw_ef=64)
    assert plan_search(filtered=False, cardinality=None, total=None, k=10) == SearchPlan()
    assert plan_search(filtered=True, cardinality=5, total=10, k=10, exact=True).exact


@pytest.mark.parametrize(("cardinality", "exact", "post_filter"), [
    (0, True, None),                # an empty filter: nothing to walk
    (2_000, True, None),            # 0.2 % of 1M: score the clade's points
    (20_000, True, None),           # at the threshold
    (60_000, False, 334),           # 6 %: unfiltered top 2 * 10 / 0.06, kept when 10 pass the filter
    (500_000, False, 40),           # 50 %
])
def test_plan_follows_the_filter_size(cardinality, exact, post_filter):
    plan = plan_search(filtered=True, cardinality=cardinality, total=1_000_000, k=10, hnsw_ef=128)
    assert (plan.exact, plan.post_filter, plan.cardinality) == (exact, post_filter, cardinality)
    if not exact:  # the filtered fallback: ACORN and a wide beam
        assert plan.fallback() == SearchPlan(hnsw_ef=2048, acorn=True, cardinality=cardinality, reason=plan.fallback().reason)


def test_the_unfiltered_first_search_is_bounded():
    plan = plan_search(filtered=True, cardinality=30_000, total=10_000_000, k=10, hnsw_ef=128)  # 0.3 %
    assert plan.post_filter == search_params.DEFAULT_POLICY.post_filter_max == 1_000


def test_the_beam_never_shrinks_below_what_was_asked_or_k():
    policy = SearchPolicy(exact_max_points=0, filtered_ef=64)
    assert plan_search(filtered=True, cardinality=50, total=1000, k=10, hnsw_ef=200, policy=policy).hnsw_ef == 200
    assert plan_search(filtered=True, cardinality=150, total=1000, k=100, hnsw_ef=16, policy=policy).hnsw_ef == 100


def test_planned_search_keeps_the_unfiltered_hits_in_the_filter_or_falls_back():
    plan = SearchPlan(hnsw_ef=2048, acorn=True, post_filter=6)
    calls = []

    def run(p, limit, filtered):
        calls.append((p.hnsw_ef, p.acorn, limit, filtered))
        return ["f1", "f2"] if filtered else ["a", "in1", "b", "in2", "in3", "c"]

    def narrow(hits, limit):
        return [h for h in hits if h.startswith("in")][:limit]

    assert planned_search(plan, 2, run, narrow) == ["in1", "in2"]
    assert calls == [(128, False, 6, False)]
    calls.clear()
    assert planned_search(plan, 4, run, narrow) == ["f1", "f2"]  # 3 < 4 in the filter
    assert calls == [(128, False, 6, False), (2048, True, 4, True)]


def test_client_params_of_a_plan():
    params = _client_params(SearchPlan(hnsw_ef=300, acorn=True))
    assert params.hnsw_ef == 300 and params.acorn == models.AcornSearchParams(enable=True, max_selectivity=1.0)
    assert _client_params(SearchPlan(exact=True)).exact is True


# What the engine does when left alone: filtered HNSW at the asked beam, no ACORN, no exact scan.
PLAIN = SearchPolicy(exact_max_points=0, post_filter_max=0, filtered_ef=0, acorn=False)


# --- a store where the filtered graph fails -----------------------------------------------------------

def _points(seed: int = 0):
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((POINTS, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rare = rng.random(POINTS) < 0.02
    records = [ImageRecord(id=image_point_id(f"p{i}"), root="/r", path=f"p{i}", sha256="0" * 64, bytes=0, width=1,
                           height=1, lineage=LINEAGE, split=RARE if rare[i] else "train") for i in range(POINTS)]
    queries = rng.standard_normal((40, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return vectors, records, rare, queries


def _recall(store, vectors, records, rare, queries, **kwargs) -> float:
    ids = np.array([r.id for r in records])[rare]
    found = []
    for q in queries:
        expected = set(ids[np.argsort(-(vectors[rare] @ q))[:K]])
        hits = store.search("images", "v", q, K, SearchFilter(match=(("split", RARE),)), **kwargs)
        found.append(len(expected & {h.id for h in hits}) / K)
    return float(np.mean(found))


@pytest.fixture(scope="module")
def edge_store(tmp_path_factory):
    vectors, records, rare, queries = _points()
    # HNSW for any filter size (no full scan below 1 KB), a graph per ~1 MB segment.
    settings = EdgeSettings(hnsw_m=8, hnsw_ef_construct=32, full_scan_threshold_kb=1, indexing_threshold_kb=100)
    store = open_store(str(tmp_path_factory.mktemp("recall") / "store"), edge_settings=settings)
    store.upsert_images("v", records, vectors)
    store.optimize()
    yield store, vectors, records, rare, queries
    store.close()


def test_edge_selective_filter_reaches_the_recall_bar(edge_store, monkeypatch):
    store, *data = edge_store
    assert store.info("images").indexed_vectors >= POINTS // 2  # the graph is there
    # What the engine gives when left alone: plain filtered HNSW at the asked beam.
    monkeypatch.setattr(search_params, "DEFAULT_POLICY", PLAIN)
    before = _recall(store, *data, hnsw_ef=16)
    monkeypatch.undo()
    after = _recall(store, *data, hnsw_ef=16)
    assert before < 0.9, f"the fixture should make plain filtered HNSW fail (recall {before:.3f})"
    assert after >= 0.95


def test_edge_acorn_alone_lifts_the_recall(edge_store, monkeypatch):
    store, *data = edge_store
    monkeypatch.setattr(search_params, "DEFAULT_POLICY", PLAIN)
    plain = _recall(store, *data, hnsw_ef=16)
    monkeypatch.setattr(search_params, "DEFAULT_POLICY", SearchPolicy(exact_max_points=0, post_filter_max=0,
                                                                      filtered_ef=128))
    acorn = _recall(store, *data, hnsw_ef=16)
    assert acorn > plain + 0.5, (plain, acorn)  # the exact tier takes the rest at this size


def test_edge_search_batch_uses_the_plan(edge_store):
    store, vectors, records, rare, queries = edge_store
    search_filter = SearchFilter(match=(("split", RARE),))
    batch = store.search_batch("images", "v", queries[:5], K, search_filter, hnsw_ef=16)
    ids = np.array([r.id for r in records])[rare]
    for q, hits in zip(queries[:5], batch):
        assert [h.id for h in hits] == list(ids[np.argsort(-(vectors[rare] @ q))[:K]])


def test_client_store_plans_from_the_server_estimate():
    vectors, records, rare, queries = _points()
    # Local mode scans every vector, so it ignores search params; a store that believes it talks
    # to a server still asks for the filter's size and builds the params it would send.
    store = ClientStore(QdrantClient(location=":memory:"), "http://server.test:6333")
    store.upsert_images("v", records[:2000], vectors[:2000])
    rare_filter = SearchFilter(match=(("split", RARE),))
    def params(search_filter, hnsw_ef):
        return store._params(store._planned(Query("images", "v", K, search_filter, False, hnsw_ef)).plan)

    assert params(rare_filter, 64).exact is True and params(rare_filter, 64).acorn is None  # ~40 points: exact
    assert params(None, 64) == models.SearchParams(hnsw_ef=64, exact=False)
    assert params(None, None) is None
    policy = SearchPolicy(exact_max_points=10)
    original = search_params.DEFAULT_POLICY
    search_params.DEFAULT_POLICY = policy
    try:
        wide = params(rare_filter, 64)
    finally:
        search_params.DEFAULT_POLICY = original
    assert wide.acorn is not None and wide.acorn.enable and wide.hnsw_ef > 64 and not wide.exact


def test_edge_post_filter_tier_reaches_the_recall_bar(edge_store, monkeypatch):
    # Above the exact threshold: the unfiltered top 2 * k / 2 % = 1000, kept where they pass the filter.
    store, *data = edge_store
    monkeypatch.setattr(search_params, "DEFAULT_POLICY", SearchPolicy(exact_max_points=0))
    assert _recall(store, *data, hnsw_ef=16) >= 0.95
    hits = store.search("images", "v", data[3][0], K, SearchFilter(match=(("split", RARE),)), with_vectors=True)
    assert all(h.payload["split"] == RARE and h.payload["path"] and h.vector is not None for h in hits)


def test_client_store_post_filters_with_full_payloads(monkeypatch):
    # A store that believes it talks to a server runs the plan (local mode takes the params and warns).
    vectors, records, rare, queries = _points()
    store = ClientStore(QdrantClient(location=":memory:"), "http://server.test:6333")
    store.upsert_images("v", records[:2000], vectors[:2000])
    monkeypatch.setattr(search_params, "DEFAULT_POLICY", SearchPolicy(exact_max_points=0))
    with pytest.warns(UserWarning):
        hits = store.search("images", "v", queries[0], K, SearchFilter(match=(("split", RARE),)), with_vectors=True)
    inside = np.flatnonzero(rare[:2000])
    expected = [records[i].id for i in inside[np.argsort(-(vectors[inside] @ queries[0]))[:K]]]
    assert [h.id for h in hits] == expected
    assert all(h.payload["split"] == RARE and h.payload["path"] and h.vector is not None for h in hits)


def test_a_quantized_store_is_known_quantized_when_reopened(tmp_path):
    vectors, records, rare, queries = _points()
    with open_store(str(tmp_path / "q"), edge_settings=EdgeSettings(quantization="int8")) as store:
        store.upsert_images("v", records[:500], vectors[:500])
        assert store._quantized
    with open_store(str(tmp_path / "q")) as store:
        assert store._quantized  # searches rescore oversampled candidates
        assert store.search("images", "v", vectors[0], 1)[0].id == records[0].id
    with open_store(str(tmp_path / "q"), read_only=True) as reader:
        assert reader._quantized
    with open_store(str(tmp_path / "plain")) as store:
        store.upsert_images("v", records[:10], vectors[:10])
        assert not store._quantized


def test_an_unknown_quantization_is_refused_by_name():
    with pytest.raises(ValueError, match=r"EdgeSettings.quantization: expected None or 'int8', got 'int4'"):
        EdgeSettings(quantization="int4")
