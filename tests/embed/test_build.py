"""The build into each store, checked through the plain qdrant-edge-py and qdrant-client APIs (SPEC §5)."""
from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe
from PIL import Image
from qdrant_client import QdrantClient, models

from tests.collections import SPECIES, TestCollection, make_collection
from tests.embed.shards import edge_points
from tests.index.conftest import EPS, fake_ghostscript, make_strip
from embed.build import BuildOptions, run_build
from index.catalog import Catalog
from index.client_store import ClientStore
from index.store import DimensionMismatchError

RANKS = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
KEYWORD_FIELDS = {*RANKS, "taxon", "lineage", "rank", "split", "source"}
VECTOR = "tol-tiny"


# --- what SPEC §5 says the points must hold, written out independently of index/convert.py ----------

def _rows(catalog: Path) -> list[dict[str, str]]:
    with catalog.open(newline="") as f:
        return list(csv.DictReader(f))


def _named(names: list[str], depth: int) -> list[int]:
    return [r for r in range(depth + 1) if names[r]]


def _key(names: list[str], depth: int) -> str:
    return "/".join(names[: depth + 1])


def _rank_fields(names: list[str], depth: int) -> dict[str, str]:
    fields = {RANKS[r]: names[r] for r in _named(names, min(depth, 5))}
    if depth == 6:
        fields["species"] = f"{names[5]} {names[6]}"
    return fields


def expected_image_payload(row: dict[str, str], images: Path) -> dict:
    names = [row[r] for r in RANKS]
    file = images / row["filepath"]
    with Image.open(file) as im:
        width, height = im.size
    return {
        **_rank_fields(names, 6),
        "common_name": row["common_name"],
        "taxon": _key(names, 6),
        "lineage": [_key(names, r) for r in _named(names, 6)],
        "rank": "species",
        "path": row["filepath"],
        "sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
        "source": row["source"],
        "split": row["split"],
        "license": row["license"],
        "width": width,
        "height": height,
    }


def expected_taxa(rows: list[dict[str, str]]) -> dict[str, dict]:
    """taxon key -> payload, for every named rank of every row."""
    out: dict[str, dict] = {}
    counts: Counter[str] = Counter()
    for row in rows:
        names = [row[r] for r in RANKS]
        for depth in _named(names, 6):
            key = _key(names, depth)
            counts[key] += 1
            ancestors = [_key(names, r) for r in _named(names, depth)]
            if depth == 6:
                taxonomic = " ".join(n for n in names if n)
                text = f"a photo of {taxonomic} with common name {row['common_name']}."
            else:
                text = f"a photo of {' '.join(n for n in names[: depth + 1] if n)}."
            payload = {
                "rank": RANKS[depth],
                "name": f"{names[5]} {names[6]}" if depth == 6 else names[depth],
                "taxon": key,
                "lineage": ancestors,
                **_rank_fields(names, depth),
                "depth": depth,
                "text": text,
                "sources": ["catalog"],
            }
            if len(ancestors) > 1:
                payload["parent"] = ancestors[-2]
            if depth == 6:
                payload["common_name"] = row["common_name"]
            out[key] = payload
    for key, payload in out.items():
        payload["n_images"] = counts[key]
    return out


def check_points(image_points: list[tuple[str, dict, dict]], taxa_points: list[tuple[str, dict, dict]],
                 collection, tiny, encoder) -> None:
    """(id, payload, vectors) of every point against SPEC §5 and against the encoder."""
    rows = _rows(collection.catalog)
    assert len(image_points) == len(rows)
    by_path = {payload["path"]: (payload, vectors) for _, payload, vectors in image_points}
    assert len({pid for pid, _, _ in image_points}) == len(rows)
    for row in rows:
        payload, vectors = by_path[row["filepath"]]
        assert payload == expected_image_payload(row, collection.images), row["filepath"]
        assert set(vectors) == {VECTOR}
        assert len(vectors[VECTOR]) == tiny.dim
    # The stored vectors are what the encoder makes of each file, opened here with plain PIL.
    some = rows[:4]
    pil = [Image.open(collection.images / row["filepath"]).convert("RGB") for row in some]
    want = encoder.encode_images(pil)
    got = np.array([by_path[row["filepath"]][1][VECTOR] for row in some])
    np.testing.assert_allclose(got, want, atol=1e-4)

    taxa = expected_taxa(rows)
    by_key = {payload["taxon"]: (payload, vectors) for _, payload, vectors in taxa_points}
    assert set(by_key) == set(taxa)
    for key, payload in taxa.items():
        assert by_key[key][0] == payload, key
    from taxonomy import parse_key
    from taxonomy.taxon import Taxon

    # A species, a genus (the plant Morus, a homonym) and a kingdom: their vectors are the template averages.
    keys = [key for key in sorted(taxa, key=lambda k: (-k.count("/"), k)) if "Plantae" in key][:1]
    keys += [key for key in taxa if key.endswith("/Moraceae/Morus")] + [key for key in taxa if "/" not in key][:1]
    lineages = []
    for key in keys:
        lineage = parse_key(key)
        lineages.append(Taxon(lineage.with_common_name(taxa[key].get("common_name", "")), lineage.deepest_rank))
    want = encoder.encode_taxa(lineages, "taxon_com")
    got = np.array([by_key[key][1][VECTOR] for key in keys])
    np.testing.assert_allclose(got, want, atol=1e-4)


def _client_points(client: QdrantClient, collection: str) -> list[tuple[str, dict, dict]]:
    points, offset = [], None
    while True:
        page, offset = client.scroll(collection, limit=100, offset=offset, with_payload=True, with_vectors=True)
        points += [(str(p.id), dict(p.payload), dict(p.vector)) for p in page]
        if offset is None:
            return points


# --- the tests ----------------------------------------------------------------------------------------

def test_build_into_edge_store(tmp_path, db_url, small_collection, tiny, encoder):
    store = tmp_path / "qdrant"
    options = BuildOptions(model="tol-tiny", store=str(store), db=db_url,
                           catalog=str(small_collection.catalog), images=str(small_collection.images),
                           batch_size=8, workers=2)
    messages: list[str] = []
    summary = run_build(options, progress=lambda frac, msg: messages.append(msg), loaded=tiny)
    n = len(small_collection.paths)
    assert (summary.images_embedded, summary.images_skipped, summary.images_failed) == (n, 0, 0)
    assert summary.taxa_embedded == summary.taxa_total == len(expected_taxa(_rows(small_collection.catalog)))
    assert f"images: {n}/{n} img" in messages

    for collection in ("images", "taxa"):
        config = json.loads((store / collection / "edge_config.json").read_text())
        assert config["vectors"] == {VECTOR: {"size": tiny.dim, "distance": "Cosine"}}
        shard = qe.EdgeShard.load(str(store / collection))
        try:
            info = shard.info()
            schema = {name: str(index.data_type) for name, index in info.payload_schema.items()}
            assert KEYWORD_FIELDS <= set(schema), KEYWORD_FIELDS - set(schema)
            assert all(schema[f].endswith("Keyword") for f in KEYWORD_FIELDS)
            assert shard.count(qe.CountRequest(exact=True)) == info.points_count
        finally:
            shard.close()
    check_points(edge_points(store / "images"), edge_points(store / "taxa"), small_collection, tiny, encoder)

    # A second build finds nothing to do, and encodes nothing.
    again = run_build(BuildOptions(model="tol-tiny", store=str(store), db=db_url, workers=0), loaded=tiny)
    assert (again.images_total, again.images_embedded, again.taxa_embedded) == (0, 0, 0)
    with Catalog(db_url) as catalog:
        runs = catalog.runs(VECTOR)
        assert [(r.status, r.done, r.skipped, r.failed) for r in runs] == [("done", 0, 0, 0), ("done", n, 0, 0)]
        assert catalog.embedded_count(VECTOR) == n


@pytest.fixture(scope="module")
def client_build(tmp_path_factory, small_collection, tiny):
    """One in-process build into QdrantClient(":memory:"): the client, the catalog URL, the summary."""
    client = QdrantClient(":memory:")
    db = str(tmp_path_factory.mktemp("client") / "catalog.db")
    options = BuildOptions(model="tol-tiny", db=db, catalog=str(small_collection.catalog),
                           images=str(small_collection.images), batch_size=8, workers=0)
    return client, db, run_build(options, loaded=tiny, store=ClientStore(client))


def test_build_into_client_store_in_process(client_build, small_collection, tiny, encoder):
    client, _, summary = client_build
    assert summary.images_embedded == len(small_collection.paths) and summary.store == ":memory:"
    for collection in ("images", "taxa"):
        info = client.get_collection(collection)
        vectors = info.config.params.vectors
        assert set(vectors) == {VECTOR}
        assert vectors[VECTOR].size == tiny.dim and vectors[VECTOR].distance == models.Distance.COSINE
        # Local-mode qdrant-client keeps no payload indexes (it warns so), so `payload_schema` is
        # empty here; the edge test and a real server check the keyword indexes.
    assert client.count("images", exact=True).count == len(small_collection.paths)
    check_points(_client_points(client, "images"), _client_points(client, "taxa"), small_collection, tiny, encoder)


def test_written_but_unmarked_images_are_not_encoded_again(tmp_path, db_url, tiny):
    """What a kill between the store write and the catalog mark leaves: the rerun marks, never encodes."""
    from index.collection.readers import read_collection

    collection = make_collection(tmp_path / "col", per_species=8, species=1)
    store = ClientStore(QdrantClient(":memory:"))
    db = db_url
    with Catalog(db) as catalog:
        catalog.ingest(read_collection(collection.catalog, collection.images))
        records = catalog.images_to_embed(VECTOR, store.location)[:3]
    store.ensure_vector(VECTOR, tiny.dim)
    marker = np.zeros((3, tiny.dim), dtype=np.float32)
    marker[:, 0] = 1.0  # no image encodes to this
    store.upsert_images(VECTOR, records, marker)
    summary = run_build(BuildOptions(model="tol-tiny", db=db, workers=0), loaded=tiny, store=store)
    n = len(collection.paths)
    assert (summary.images_skipped, summary.images_embedded) == (3, n - 3)
    kept = store.retrieve("images", [r.id for r in records], vector_name=VECTOR)
    np.testing.assert_allclose(np.array([hit.vector for hit in kept]), marker)
    assert store.count("images") == n
    with Catalog(db) as catalog:
        assert catalog.embedded_count(VECTOR) == n
        assert catalog.runs(VECTOR)[0].skipped == 3


def _one_species_in_memory(tmp_path: Path, db_url: str) -> tuple[TestCollection, ClientStore, BuildOptions]:
    """Four pictures of one species, an in-memory store, and the build options of both."""
    collection = make_collection(tmp_path / "col", per_species=4, species=1)
    options = BuildOptions(model="tol-tiny", db=db_url, catalog=str(collection.catalog),
                           images=str(collection.images), workers=0)
    return collection, ClientStore(QdrantClient(":memory:")), options


def _change_first_picture(collection: TestCollection) -> str:
    """Replace the collection's first picture with another one (same name); returns its path."""
    changed = collection.paths[0]
    Image.new("RGB", (72, 64), (250, 10, 10)).save(collection.images / changed)
    return changed


def test_changed_file_is_encoded_again(tmp_path, db_url, tiny):
    """A file replaced after it was embedded: its old vector is not taken for the new content."""
    collection, store, options = _one_species_in_memory(tmp_path, db_url)
    run_build(options, loaded=tiny, store=store)
    changed = _change_first_picture(collection)
    again = run_build(options, loaded=tiny, store=store)  # the ingest sees the new sha256
    assert (again.images_total, again.images_skipped, again.images_embedded) == (1, 0, 1)
    (hit,) = [h for h in store.scroll("images") if h.payload["path"] == changed]
    assert hit.payload["sha256"] == hashlib.sha256((collection.images / changed).read_bytes()).hexdigest()


def test_changed_file_is_encoded_again_for_every_model(tmp_path, db_url, tiny):
    """Two models on one point: after model A re-embeds a changed file, model B's old vector is not current."""
    from dataclasses import replace

    collection, store, options = _one_species_in_memory(tmp_path, db_url)
    other = replace(tiny, vector_name="tiny-b")
    run_build(options, loaded=tiny, store=store)
    run_build(options, loaded=other, store=store)
    changed = _change_first_picture(collection)
    first = run_build(options, loaded=tiny, store=store)
    second = run_build(options, loaded=other, store=store)
    assert (first.images_embedded, second.images_embedded, second.images_skipped) == (1, 1, 0)
    (hit,) = [h for h in store.scroll("images") if h.payload["path"] == changed]
    (a,) = store.retrieve("images", [hit.id], vector_name=VECTOR)
    (b,) = store.retrieve("images", [hit.id], vector_name="tiny-b")
    np.testing.assert_allclose(a.vector, b.vector, atol=1e-5)  # the same weights saw the same new file


def test_bad_images_are_skipped_and_listed(tmp_path, db_url, tiny):
    from index.collection.readers import read_collection

    collection = make_collection(tmp_path / "col", per_species=6, species=1)
    db = db_url
    with Catalog(db) as catalog:
        catalog.ingest(read_collection(collection.catalog, collection.images))
    # Damaged after the ingest checked them: one truncated, one deleted.
    truncated, deleted = collection.paths[1], collection.paths[4]
    data = (collection.images / truncated).read_bytes()
    (collection.images / truncated).write_bytes(data[: len(data) // 3])
    (collection.images / deleted).unlink()
    store = ClientStore(QdrantClient(":memory:"))
    summary = run_build(BuildOptions(model="tol-tiny", db=db, batch_size=4, workers=2), loaded=tiny, store=store)
    n = len(collection.paths)
    assert (summary.images_embedded, summary.images_failed) == (n - 2, 2)
    assert {p.path for p in summary.failures} == {truncated, deleted}
    reasons = {p.path: p.reason for p in summary.failures}
    assert "truncated" in reasons[truncated] and "not found" in reasons[deleted]
    assert store.count("images") == n - 2
    with Catalog(db) as catalog:
        run = catalog.runs(VECTOR)[0]
        assert (run.status, run.done, run.failed) == ("done", n - 2, 2)
        assert {p.path for p in run.failures} == {truncated, deleted}
        assert catalog.embedded_count(VECTOR) == n - 2
    from embed.commands import format_summary

    text = format_summary(summary)
    assert f"{n - 2} embedded" in text and "2 failed" in text and truncated in text and deleted in text


def test_hostile_files_and_rows_are_reported_and_the_rest_built(tmp_path, db_url, tiny, monkeypatch):
    """Through the build's own ingest: each bad file or row is named with its row, Ghostscript never
    runs, and a float TIFF is embedded as the grey it is, not as black."""
    from index.collection.entries import image_point_id

    ran = fake_ghostscript(tmp_path / "bin", monkeypatch)
    collection = make_collection(tmp_path / "col", per_species=4, species=1)
    images = collection.images
    (images / "photo.jpg").write_bytes(EPS)
    make_strip(images / "strip.png", (40_000, 2))
    Image.fromarray(np.full((64, 72), 0.5, dtype=np.float32)).save(images / "float.tif")
    Image.new("L", (72, 64), 127).save(images / "grey.png")
    Image.new("L", (72, 64), 0).save(images / "black.png")
    names = list(SPECIES[0][:7])
    extra = [("photo.jpg", *names), ("strip.png", *names), ("nul\0.jpg", *names),
             ("huge.jpg", *names[:6], "x" * (csv.field_size_limit() + 1)), ("slash.jpg", *names[:5], "Pi/ca", names[6]),
             ("float.tif", *names), ("grey.png", *names), ("black.png", *names)]
    with collection.catalog.open("a", newline="") as f:
        csv.writer(f).writerows((*row, SPECIES[0][7], "train", "generated", "CC0") for row in extra)
    first = len(collection.paths) + 2  # the catalog's line of extra[0]
    store = ClientStore(QdrantClient(":memory:"))
    options = BuildOptions(model="tol-tiny", db=db_url, catalog=str(collection.catalog), images=str(images),
                           workers=0)
    summary = run_build(options, loaded=tiny, store=store)
    assert sorted((p.row, p.path, p.reason.split(" (")[0]) for p in summary.ingested.problems) == [
        (first, "photo.jpg", "EPS is not an accepted image format"),
        (first + 1, "strip.png", "aspect ratio 20000:1"),
        (first + 2, "nul\\0.jpg", "NUL byte in column 'filepath'"),
        (first + 3, "", "unreadable row: field larger than field limit"),
        (first + 4, "slash.jpg", "'/' in the genus name 'Pi/ca'"),
    ]
    assert not ran.exists()
    assert (summary.images_embedded, summary.images_failed) == (len(collection.paths) + 3, 0)
    assert store.count("images") == len(collection.paths) + 3

    def vector(path: str) -> np.ndarray:
        (point,) = store.retrieve("images", [image_point_id(path)], vector_name=VECTOR)
        return np.asarray(point.vector)

    np.testing.assert_allclose(vector("float.tif"), vector("grey.png"), atol=1e-5)
    assert not np.allclose(vector("float.tif"), vector("black.png"), atol=1e-3)


def test_hostile_files_swapped_in_after_the_ingest_fail_alone(tmp_path, db_url, tiny, monkeypatch):
    from index.collection.readers import read_collection

    ran = fake_ghostscript(tmp_path / "bin", monkeypatch)
    collection = make_collection(tmp_path / "col", per_species=4, species=1)
    db = db_url
    with Catalog(db) as catalog:
        catalog.ingest(read_collection(collection.catalog, collection.images))
    eps, strip = collection.paths[1], collection.paths[2]
    (collection.images / eps).write_bytes(EPS)
    make_strip(collection.images / strip, (4000, 2))  # a PNG under the JPEG's name
    store = ClientStore(QdrantClient(":memory:"))
    summary = run_build(BuildOptions(model="tol-tiny", db=db, workers=0), loaded=tiny, store=store)
    n = len(collection.paths)
    assert (summary.images_embedded, summary.images_failed) == (n - 2, 2)
    reasons = {p.path: p.reason for p in summary.failures}
    assert reasons[eps].startswith("EPS is not an accepted image format")
    assert reasons[strip].startswith("aspect ratio 2000:1 (4000x2 pixels) is over the limit")
    assert not ran.exists() and store.count("images") == n - 2


def test_dimension_mismatch_writes_nothing(tmp_path, db_url, small_collection, tiny):
    store = ClientStore(QdrantClient(":memory:"))
    store.ensure_vector(VECTOR, tiny.dim // 2)
    db = db_url
    options = BuildOptions(model="tol-tiny", db=db, catalog=str(small_collection.catalog),
                           images=str(small_collection.images), workers=0)
    with pytest.raises(DimensionMismatchError) as info:
        run_build(options, loaded=tiny, store=store)
    assert "tol-tiny" in str(info.value) and str(tiny.dim) in str(info.value)
    assert store.count("images") == 0 and store.count("taxa") == 0
    with Catalog(db) as catalog:
        assert catalog.embedded_count(VECTOR) == 0
        assert catalog.runs() == []


def test_bad_spec_fails_before_touching_anything(tmp_path):
    db = tmp_path / "catalog.db"
    with pytest.raises(ValueError, match="hf-hub:"):
        run_build(BuildOptions(model="no-such-model", store=str(tmp_path / "q"), db=str(db)))
    assert not db.exists() and not (tmp_path / "q").exists()


def test_options_are_checked():
    with pytest.raises(ValueError, match="taxon_com"):
        BuildOptions(text_type="latin")
    with pytest.raises(ValueError, match="batch size"):
        BuildOptions(batch_size=0)
    with pytest.raises(ValueError, match="images root"):
        BuildOptions(catalog="x.csv")


def test_status_reports_each_model(client_build, small_collection):
    from embed.status import collect_status, format_status

    client, db, _ = client_build
    with Catalog(db) as catalog:
        report = collect_status(catalog, ClientStore(client))
    n = len(small_collection.paths)
    (status,) = report.models
    assert (status.model, status.images, status.embedded, status.failed, status.store_images) == (VECTOR, n, n, 0, n)
    assert status.store_taxa == report.taxa_per_rank
    assert report.taxa_per_rank["genus"] == 4 and report.taxa_per_rank["order"] == 3
    assert status.last_run is not None and status.last_run.done == n and status.last_run.rate > 0
    text = format_status(report)
    assert f"{n}/{n} embedded" in text and "genus=4" in text and "images/s" in text
