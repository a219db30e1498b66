"""The store's parts on their own: location resolution, open_store's choices and refusals,
payload conversion, filters, grouping, and an unreachable server."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from index.client_store import ClientStore
from index.convert import as_matrix, check_point_id, image_payload, taxon_payload, with_sources
from index.edge_store import EdgeStore
from index.filters import FilterSpec, SearchFilter, filter_spec, group_hits
from index.collection.entries import image_point_id
from index.records import ImageRecord
from index.schema import IMAGES, check_collection, check_vector_name
from index.store import (
    EdgeSettings, Hit, StoreUnavailableError, open_store, resolve_api_key, resolve_store_location,
)
from taxonomy import Lineage, Rank
from taxonomy.taxon import Taxon

REPO = Path(__file__).resolve().parents[2]
CLOWNFISH = Lineage.from_ranks(["Animalia", "Chordata", "Actinopteri", "", "Pomacentridae", "Amphiprion", "ocellaris"])


def _record(lineage: Lineage, path: str = "a/b.jpg", **extra: str) -> ImageRecord:
    return ImageRecord(id=image_point_id(path), root="/r", path=path, sha256="0" * 64, bytes=10,
                       width=3, height=2, lineage=lineage, **extra)


def test_store_location_flag_wins_over_env_over_default(monkeypatch):
    monkeypatch.delenv("TOL_STORE", raising=False)
    assert resolve_store_location(None) == "./var/qdrant"
    monkeypatch.setenv("TOL_STORE", "  ")
    assert resolve_store_location(None) == "./var/qdrant"
    monkeypatch.setenv("TOL_STORE", "/srv/qdrant")
    assert resolve_store_location(None) == "/srv/qdrant"
    assert resolve_store_location("http://qdrant:6333") == "http://qdrant:6333"
    monkeypatch.setenv("TOL_QDRANT_API_KEY", "from-env")
    assert resolve_api_key(None) == "from-env" and resolve_api_key("flag") == "flag"


def test_open_store_picks_the_engine_from_the_location(tmp_path, monkeypatch):
    with open_store(str(tmp_path / "store")) as edge:
        assert isinstance(edge, EdgeStore) and edge.location == str(tmp_path / "store")
    assert not (tmp_path / "store").exists()  # nothing is created until a vector is
    with open_store(":memory:") as memory:
        assert isinstance(memory, ClientStore)
    monkeypatch.setenv("TOL_STORE", str(tmp_path / "from-env"))
    monkeypatch.setenv("TOL_QDRANT_API_KEY", "ignored-for-folders")
    with open_store() as edge:
        assert edge.location == str(tmp_path / "from-env")


@pytest.mark.parametrize("location, kwargs, message", [
    ("grpc://host:6334", {}, r"unsupported store URL 'grpc://host:6334': expected http:// or https://"),
    (":disk:", {}, r"unknown store ':disk:': expected ':memory:'"),
    (":memory:", {"api_key": "k"}, r"API key applies to a server URL"),
    ("some/folder", {"api_key": "k"}, r"API key applies to a server URL"),
    (":memory:", {"edge_settings": EdgeSettings(hnsw_m=8)}, "edge_settings apply to an embedded store folder"),
    ("http://localhost:1", {"edge_settings": EdgeSettings()}, "edge_settings apply to an embedded store folder"),
])
def test_open_store_rejects_what_does_not_fit(location, kwargs, message):
    with pytest.raises(ValueError, match=message):
        open_store(location, **kwargs)


def test_a_file_is_not_a_store_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file; expected a folder"):
        open_store(str(tmp_path / "file"))


def test_an_unreachable_server_fails_clearly_after_bounded_retries():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    with pytest.raises(StoreUnavailableError, match=rf"{url} is unreachable after 3 attempts"):
        open_store(url, retries=3, backoff_s=0.05, timeout_s=2)
    assert 0.15 <= time.perf_counter() - started < 10  # waited 0.05 + 0.1 s between the attempts


def test_edge_settings_reach_the_shard_config_and_survive_a_reload(tmp_path):
    root = tmp_path / "store"
    with open_store(str(root), edge_settings=EdgeSettings(hnsw_m=8, indexing_threshold_kb=100)) as store:
        store.ensure_vector("demo", 4, collections=(IMAGES,))
    with open_store(str(root), edge_settings=EdgeSettings(hnsw_ef_construct=50)):
        pass
    config = json.loads((root / IMAGES / "edge_config.json").read_text())
    assert (config["hnsw_config"]["m"], config["hnsw_config"]["ef_construct"]) == (8, 50)
    assert config["optimizers"]["indexing_threshold"] == 100


def test_image_payloads_leave_unknown_ranks_out():
    payload = image_payload(_record(CLOWNFISH, split="train", license="CC0"))
    assert "order" not in payload and payload["species"] == "Amphiprion ocellaris"
    assert payload["taxon"] == "Animalia/Chordata/Actinopteri//Pomacentridae/Amphiprion/ocellaris"
    assert payload["lineage"][-2:] == ["Animalia/Chordata/Actinopteri//Pomacentridae/Amphiprion", payload["taxon"]]
    assert (payload["split"], payload["license"], "source" in payload) == ("train", "CC0", False)
    genus_only = image_payload(_record(Lineage.from_ranks(["Plantae", "", "", "", "", "Morus"])))
    assert (genus_only["rank"], genus_only["genus"], "species" in genus_only) == ("genus", "Morus", False)
    assert genus_only["lineage"] == ["Plantae", "Plantae/////Morus"]


def test_taxon_payloads_stop_at_their_rank():
    genus = taxon_payload(Taxon(CLOWNFISH, Rank.GENUS, 4), "a photo of Animalia Chordata Actinopteri Pomacentridae Amphiprion.")
    assert (genus["name"], genus["parent"], genus["depth"], genus["n_images"]) == (
        "Amphiprion", "Animalia/Chordata/Actinopteri//Pomacentridae", 5, 4)
    assert "species" not in genus and "order" not in genus
    kingdom = taxon_payload(Taxon(CLOWNFISH, Rank.KINGDOM), "a photo of Animalia.")
    assert "parent" not in kingdom and kingdom["lineage"] == ["Animalia"]
    with pytest.raises(ValueError, match="no name at its rank 'order'"):
        taxon_payload(Taxon(CLOWNFISH, Rank.ORDER), "text")
    with pytest.raises(ValueError, match="no embedded text"):
        taxon_payload(Taxon(CLOWNFISH, Rank.SPECIES), " ")


def test_hits_read_their_payload_back_as_typed_fields():
    magpie = Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia"],
                                "black-billed magpie")
    record = _record(magpie, split="val", source="inat", license="CC0")
    image = Hit(record.id, 0.5, image_payload(record))
    assert (image.lineage, image.rank, image.taxon, image.common_name) == (magpie, Rank.SPECIES, magpie.key(),
                                                                         "black-billed magpie")
    assert (image.path, image.sha256, image.split, image.source, image.license) == (
        record.path, record.sha256, "val", "inat", "CC0")
    assert (image.width, image.height, image.name, image.n_images, image.sources) == (3, 2, "", 0, None)
    unlabelled = Hit(record.id, None, image_payload(_record(Lineage())))
    assert (unlabelled.lineage, unlabelled.rank, unlabelled.taxon, unlabelled.split) == (Lineage(), None, "", "")
    for taxon in (Taxon(magpie, Rank.SPECIES, 3), Taxon(magpie.truncate(Rank.FAMILY), Rank.FAMILY, 7),
                  Taxon(CLOWNFISH.truncate(Rank.GENUS), Rank.GENUS, 4)):
        hit = Hit("t", None, taxon_payload(taxon, "a photo.", ("catalog", "ncbi")))
        assert hit.as_taxon() == taxon and (hit.name, hit.text, hit.sources) == (taxon.name, "a photo.",
                                                                                 ("catalog", "ncbi"))
        released = with_sources(hit, ["ncbi"], n_images=0)
        assert released == {**hit.payload, "sources": ["ncbi"], "n_images": 0}
        assert list(released) == list(hit.payload)  # the stored payload's field order is kept


def test_the_back_ends_do_not_import_the_facade():
    import ast

    for name in ("vector_store", "edge_store", "client_store", "convert", "filters"):
        tree = ast.parse((REPO / "index" / f"{name}.py").read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert "index.store" not in imported, name


@pytest.mark.parametrize("vectors, message", [
    (np.ones((2, 3)), r"expected a \(3, dim\) array"),
    (np.ones(3), r"expected a \(3, dim\) array"),
    (np.array([[1.0, 0.0], [np.nan, 1.0], [1.0, 1.0]]), "row 1 holds NaN"),
    (np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), "row 2 is all zeros"),
])
def test_vectors_are_checked_before_writing(vectors, message):
    with pytest.raises(ValueError, match=message):
        as_matrix(vectors, 3, "vectors")


def test_names_and_ids_are_checked():
    assert check_vector_name("bioclip-2") == "bioclip-2" and check_vector_name("tol_tiny.v1") == "tol_tiny.v1"
    for bad in ("", "a/b", "../x", "-x", "x" * 65):
        with pytest.raises(ValueError, match="invalid vector name"):
            check_vector_name(bad)
    with pytest.raises(ValueError, match="expected one of images, taxa"):
        check_collection("species")
    with pytest.raises(ValueError, match="invalid point id 'image/a.jpg'"):
        check_point_id("image/a.jpg")


def test_search_filters_normalise_and_translate():
    search_filter = SearchFilter(within="Animalia", exclude=["Animalia/Chordata/Aves"], rank="species", split="val")
    assert search_filter.within == ("Animalia",) and search_filter.rank is Rank.SPECIES
    assert filter_spec(search_filter, has_vector="demo") == FilterSpec(
        must=(("lineage", ("Animalia",)), ("rank", ("species",)), ("split", ("val",))),
        must_not=(("lineage", ("Animalia/Chordata/Aves",)),), has_vector="demo")
    assert filter_spec(SearchFilter()) is None and SearchFilter().is_empty
    with pytest.raises(ValueError, match="unknown rank 'subspecies'"):
        SearchFilter(rank="subspecies")
    with pytest.raises(ValueError, match="SearchFilter.within: expected taxon keys"):
        SearchFilter(within=("",))
    with pytest.raises(ValueError, match="SearchFilter.split: expected a non-empty string"):
        SearchFilter(split="")


def test_group_hits_follows_qdrant_groups():
    def hit(n: int, **payload: object) -> Hit:
        return Hit(str(n), 1.0 - n / 10, dict(payload))

    hits = [hit(0, g="a"), hit(1, g="b"), hit(2), hit(3, g="a"), hit(4, g="a"), hit(5, g="c"), hit(6, g=["b", "d"])]
    assert [(v, [h.id for h in hs]) for v, hs in group_hits(hits, "g", k=2, group_size=2)] == [
        ("a", ["0", "3"]), ("b", ["1", "6"])]
    assert [v for v, _ in group_hits(hits, "g", k=9, group_size=1)] == ["a", "b", "c", "d"]


def test_importing_the_facade_loads_no_engine():
    code = "import sys, index.store, index.filters, index.convert; print(sorted(m for m in sys.modules if m.startswith('qdrant')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.strip() == "[]"


def test_cluster_layout_comes_from_the_environment(monkeypatch):
    from index.client_store import ClientStore
    from index.store import ClusterLayout

    monkeypatch.setenv("TOL_QDRANT_SHARDS", "6")
    monkeypatch.setenv("TOL_QDRANT_REPLICATION", "2")
    assert ClusterLayout.from_env() == ClusterLayout(6, 2)
    monkeypatch.setenv("TOL_QDRANT_REPLICATION", "two")
    with pytest.raises(ValueError, match=r"\$TOL_QDRANT_REPLICATION must be a positive integer, got 'two'"):
        ClusterLayout.from_env()
    monkeypatch.delenv("TOL_QDRANT_SHARDS")
    monkeypatch.delenv("TOL_QDRANT_REPLICATION")
    assert ClusterLayout.from_env() == ClusterLayout(None, None)
    store = ClientStore.in_memory()
    store.layout = ClusterLayout(3, 1)
    store.ensure_vector("demo", 4)  # the layout reaches create_collection; local mode accepts and ignores it
    assert store.vector_names("images") == {"demo": 4}
    store.close()
