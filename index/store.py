"""The vector store facade: one interface, two Qdrant back ends, chosen from a location string.

    open_store("./var/qdrant")           -> EdgeStore: qdrant-edge-py in-process, one shard per collection
    open_store("./var/qdrant", read_only=True) -> an EdgeStore reader beside that one writer
    open_store(":memory:")               -> ClientStore(QdrantClient(":memory:")), for tests
    open_store("https://host:6333", key) -> ClientStore to a Qdrant server or cluster

Like qdrant-client's `QdrantBase`, `VectorStore` writes the interface down once; the back ends
subclass it. The record-to-payload conversion and the argument checks are shared here, so both
engines store and answer the same things. Nothing returned from this module or its back ends
is a qdrant object. qdrant_edge and qdrant_client are imported only when a store is opened.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from index.convert import as_matrix, as_queries, as_query, check_unique, image_payload, taxon_payload, taxon_point_id
from index.filters import SearchFilter
from index.records import ImageRecord
from index.config import resolve_setting
from index.schema import (
    API_KEY_ENV, CATALOG_SOURCE, COLLECTIONS, DEFAULT_STORE, IMAGES, MEMORY_LOCATION, REPLICATION_ENV, SHARDS_ENV, STORE_ENV, TAXA,
    URL_SCHEMES,
    check_collection, check_dim, check_keyword_field, check_vector_name,
)
from taxonomy.taxon import Taxon

logger = logging.getLogger(__name__)

__all__ = [
    "DimensionMismatchError", "EdgeSettings", "Hit", "MissingIndexError", "MissingVectorError", "SearchFilter",
    "StoreError", "StoreFullError", "StoreLockedError", "StoreUnavailableError", "VectorStore", "canonical_location",
    "open_store", "resolve_api_key",
    "resolve_store_location",
]

DEFAULT_RETRIES = 5
DEFAULT_BACKOFF_S = 0.5  # first wait; doubles on each retry: 0.5 + 1 + 2 + 4 s before giving up
DEFAULT_TIMEOUT_S = 30
FACET_LIMIT = 100_000  # facet values returned at most: every genus of a large collection
UPSERT_CHUNK = 512  # points per engine update: bounds the size of one WAL entry or HTTP request

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class StoreError(RuntimeError):
    """A vector store could not do what was asked."""


class DimensionMismatchError(StoreError, ValueError):
    """A collection already holds this model's vector with another dimension."""

    def __init__(self, collection: str, vector: str, existing: int, requested: int) -> None:
        self.collection, self.vector, self.existing, self.requested = collection, vector, existing, requested
        super().__init__(
            f"collection {collection!r} already has vector {vector!r} of dimension {existing}, "
            f"not {requested}; nothing was written. Use another vector name for this model, "
            "or rebuild the store without the old one"
        )


class MissingVectorError(StoreError, ValueError):
    """A search or read names a vector the collection does not have."""


class StoreUnavailableError(StoreError, ConnectionError):
    """The Qdrant server could not be reached."""


class StoreLockedError(StoreError):
    """An embedded store folder is already open, in this process or another."""


class StoreFullError(StoreError):
    """The disk of an embedded store has too little free space to write safely, or ran out."""


class MissingIndexError(StoreError):
    """A collection lacks a keyword payload index of SPEC §5 (a build was killed while creating it)."""


@dataclass(frozen=True)
class Hit:
    """One point: from a search (`score` set), or from retrieve/scroll (`score` None).

    `vector` is the stored, unit-normalised vector when it was asked for. `group` is the value
    of the `group_by` field that put the hit in its group.
    """

    id: str
    score: float | None
    payload: dict[str, Any]
    vector: np.ndarray | None = None
    group: str | None = None


@dataclass(frozen=True)
class EdgeSettings:
    """Engine knobs of the embedded shards, applied when a shard is created or loaded.

    None keeps what the shard has (Qdrant's defaults for a new one: m=16, ef_construct=100,
    full_scan_threshold 10,000 KB, indexing_threshold 10,000 KB, i.e. about 5,000 512-d
    float32 vectors per segment before `optimize()` builds an HNSW graph for it).
    """

    hnsw_m: int | None = None
    hnsw_ef_construct: int | None = None
    full_scan_threshold_kb: int | None = None
    indexing_threshold_kb: int | None = None
    max_search_threads: int | None = None
    # Payload-aware links per `lineage`/`rank` value (Qdrant's payload_m; None: m); 0 turns them off.
    payload_m: int | None = None
    # "int8": scalar-quantized copies of the vectors in RAM, the float32 originals on disk, read only
    # to rescore `oversampling` * k candidates (None: 4.0). Set when a shard is created.
    quantization: str | None = None
    oversampling: float | None = None

    def __post_init__(self) -> None:
        if self.quantization not in (None, "int8"):
            raise ValueError(f"EdgeSettings.quantization: expected None or 'int8', got {self.quantization!r}")


class VectorStore:
    """The two collections of SPEC §5, `images` and `taxa`, one named vector per model."""

    location: str = ""

    # --- schema -------------------------------------------------------------------------------

    def ensure_vector(self, name: str, dim: int, collections: Sequence[str] = COLLECTIONS) -> None:
        """Create the collections and this model's named vector where missing (cosine distance).

        Keyword payload indexes are created with a collection, before any point is written, and
        every call adds those a collection lacks (a build killed while creating them): every
        build calls this before writing.
        Raises DimensionMismatchError, writing nothing, when a collection has `name` with another dim.
        """
        raise NotImplementedError()

    def vector_names(self, collection: str) -> dict[str, int]:
        """The named vectors of a collection, name -> dimension; {} when it does not exist yet."""
        raise NotImplementedError()

    # --- writes -------------------------------------------------------------------------------

    def upsert_images(self, vector: str, records: Sequence[ImageRecord], vectors: np.ndarray) -> None:
        """Write image points (id = record.id) with this model's vector; other models' vectors stay."""
        records = list(records)
        matrix = as_matrix(vectors, len(records), f"vectors for {len(records)} images")
        ids = [r.id for r in records]
        check_unique(ids, "images")
        self._upsert(IMAGES, vector, ids, [image_payload(r) for r in records], matrix)

    def upsert_taxa(
        self, vector: str, taxa: Sequence[Taxon], texts: Sequence[str], vectors: np.ndarray,
        sources: Sequence[Sequence[str]] | None = None,
    ) -> None:
        """Write taxon points (id = point_id(taxon.key)); `texts[i]` is what was embedded for `taxa[i]`.

        `sources[i]` are the sets that brought `taxa[i]` (SPEC §5 `sources`); None: the catalog alone.
        """
        taxa, texts = list(taxa), list(texts)
        if len(texts) != len(taxa):
            raise ValueError(f"upsert_taxa: {len(taxa)} taxa but {len(texts)} texts; expected one text per taxon")
        sources = list(sources) if sources is not None else [(CATALOG_SOURCE,)] * len(taxa)
        if len(sources) != len(taxa):
            raise ValueError(f"upsert_taxa: {len(taxa)} taxa but {len(sources)} source lists; expected one per taxon")
        matrix = as_matrix(vectors, len(taxa), f"vectors for {len(taxa)} taxa")
        ids = [taxon_point_id(t) for t in taxa]
        check_unique(ids, "taxa")
        payloads = [taxon_payload(t, x, s) for t, x, s in zip(taxa, texts, sources)]
        self._upsert(TAXA, vector, ids, payloads, matrix)

    def _upsert(
        self, collection: str, vector: str, ids: list[str], payloads: list[dict[str, Any]], matrix: np.ndarray
    ) -> None:
        """Insert new points; on existing ones set this vector and replace a changed payload."""
        raise NotImplementedError()

    def set_image_payloads(self, records: Sequence[ImageRecord]) -> None:
        """Rewrite the payloads of existing image points from their records (relabelled images); vectors stay."""
        records = list(records)
        ids = [r.id for r in records]
        check_unique(ids, "images")
        for start in range(0, len(records), UPSERT_CHUNK):
            chunk = records[start:start + UPSERT_CHUNK]
            self.overwrite_payloads(IMAGES, [r.id for r in chunk], [image_payload(r) for r in chunk])

    def set_taxon_payloads(self, taxa: Sequence[Taxon], texts: Sequence[str], sources: Sequence[Sequence[str]]) -> None:
        """Rewrite the payloads of existing taxon points (image counts, sources); vectors stay."""
        taxa = list(taxa)
        payloads = [taxon_payload(t, x, s) for t, x, s in zip(taxa, texts, sources, strict=True)]
        ids = [taxon_point_id(t) for t in taxa]
        check_unique(ids, "taxa")
        for start in range(0, len(ids), UPSERT_CHUNK):
            self.overwrite_payloads(TAXA, ids[start:start + UPSERT_CHUNK], payloads[start:start + UPSERT_CHUNK])

    def overwrite_payloads(self, collection: str, ids: list[str], payloads: list[dict[str, Any]]) -> None:
        """Replace the payload of each existing point `ids[i]` by `payloads[i]`; missing points are skipped."""
        raise NotImplementedError()

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Remove these points with all their vectors; ids that are not there are ignored."""
        raise NotImplementedError()

    # --- reads --------------------------------------------------------------------------------

    def ids_with_vector(self, collection: str, vector: str, ids: Sequence[str]) -> set[str]:
        """Which of `ids` already carry `vector`: what a resumed build need not embed again."""
        raise NotImplementedError()

    def count(self, collection: str, filter: SearchFilter | None = None, vector: str | None = None) -> int:
        """Exact number of points matching `filter` (and carrying `vector` when given)."""
        raise NotImplementedError()

    def search(
        self,
        collection: str,
        vector_name: str,
        query: np.ndarray,
        k: int = 10,
        filter: SearchFilter | None = None,
        group_by: str | None = None,
        group_size: int = 1,
        *,
        exact: bool = False,
        hnsw_ef: int | None = None,
        with_vectors: bool = False,
    ) -> list[Hit]:
        """The `k` nearest points by cosine similarity, best first.

        With `group_by` (an indexed keyword field, e.g. `species`), `k` counts groups: the `k`
        best groups, each with its `group_size` best hits, flattened group by group.
        `exact` scans every vector; `hnsw_ef` widens the HNSW beam (both trade speed for recall).
        """
        raise NotImplementedError()

    def search_batch(
        self,
        collection: str,
        vector_name: str,
        queries: np.ndarray,
        k: int = 10,
        filter: SearchFilter | None = None,
        *,
        exact: bool = False,
        hnsw_ef: int | None = None,
    ) -> list[list[Hit]]:
        """`search` for each row of `queries`, planned as one batch by the engine."""
        raise NotImplementedError()

    def retrieve(self, collection: str, ids: Sequence[str], vector_name: str | None = None) -> list[Hit]:
        """The points of `ids` that exist, in the order asked, with `vector_name`'s vector if given."""
        raise NotImplementedError()

    def scroll(self, collection: str, filter: SearchFilter | None = None, limit: int | None = None) -> Iterator[Hit]:
        """Every point matching `filter` (at most `limit`), page by page, in id order."""
        raise NotImplementedError()

    def facet_counts(
        self, collection: str, field: str, filter: SearchFilter | None = None, limit: int = FACET_LIMIT
    ) -> dict[str, int]:
        """Points per value of an indexed keyword field, most frequent first (ties by value).

        Raises MissingIndexError when the collection lacks the field's index (a build adds it).
        """
        raise NotImplementedError()

    def info(self, collection: str) -> dict[str, Any]:
        """What the engine reports: points, segments, indexed vectors, payload indexes, vectors; {} if absent."""
        raise NotImplementedError()

    # --- lifecycle ----------------------------------------------------------------------------

    def optimize(self) -> None:
        """Build the search indexes (HNSW) now rather than on the engine's schedule."""
        raise NotImplementedError()

    def flush(self) -> None:
        """Make every write so far durable."""
        raise NotImplementedError()

    def close(self) -> None:
        """Flush and release the engine; a closed store cannot be used again."""
        raise NotImplementedError()

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    # --- checks shared by the back ends -------------------------------------------------------

    def _dim_of(self, collection: str, vector_name: str) -> int:
        """The dimension of an existing vector; MissingVectorError names the ones there are."""
        check_collection(collection)
        names = self.vector_names(collection)
        if vector_name not in names:
            have = ", ".join(f"{n} ({d}-d)" for n, d in sorted(names.items())) or "none yet (nothing was built)"
            raise MissingVectorError(
                f"collection {collection!r} of store {self.location!r} has no vector {vector_name!r}; it has: {have}"
            )
        return names[vector_name]

    def _check_new_dims(self, name: str, dim: int, collections: Sequence[str]) -> list[str]:
        """Check a vector can be added to `collections`; the ones that still lack it."""
        check_vector_name(name)
        check_dim(dim)
        missing: list[str] = []
        for collection in collections:
            existing = self.vector_names(check_collection(collection)).get(name)
            if existing is not None and existing != dim:
                raise DimensionMismatchError(collection, name, existing, dim)
            if existing is None:
                missing.append(collection)
        return missing

    def _search_args(
        self, collection: str, vector_name: str, query: np.ndarray, k: int, group_by: str | None, group_size: int,
        hnsw_ef: int | None,
    ) -> np.ndarray:
        _check_positive(k, "k")
        _check_positive(group_size, "group_size")
        if hnsw_ef is not None:
            _check_positive(hnsw_ef, "hnsw_ef")
        if group_by is not None:
            check_keyword_field(group_by, "group_by")
        return as_query(query, self._dim_of(collection, vector_name))

    def _batch_args(
        self, collection: str, vector_name: str, queries: np.ndarray, k: int, hnsw_ef: int | None
    ) -> np.ndarray:
        _check_positive(k, "k")
        if hnsw_ef is not None:
            _check_positive(hnsw_ef, "hnsw_ef")
        return as_queries(queries, self._dim_of(collection, vector_name))


def _check_positive(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")


def _paged(fetch: Callable[[Any, int], tuple[list[Hit], Any]], limit: int | None, page: int) -> Iterator[Hit]:
    """Hits from `fetch(offset, size) -> (hits, next offset or None)`, page by page, at most `limit`."""
    offset: Any = None
    left = limit
    while left is None or left > 0:
        hits, offset = fetch(offset, page if left is None else min(page, left))
        yield from hits
        if left is not None:
            left -= len(hits)
        if offset is None:
            return


def resolve_store_location(flag: str | None = None) -> str:
    """`--store`, else `$TOL_STORE`, else `./var/qdrant` (SPEC §7); blank values count as unset."""
    return resolve_setting(flag, STORE_ENV, DEFAULT_STORE)


def canonical_location(location: str) -> str:
    """What an open store's `location` is for `location`: a folder as its absolute real path, else unchanged."""
    if _SCHEME.match(location) or location.startswith(":"):
        return location
    return str(Path(location).expanduser().resolve())


def resolve_api_key(flag: str | None = None) -> str | None:
    """The server API key: the argument, else `$TOL_QDRANT_API_KEY`, else None."""
    return resolve_setting(flag, API_KEY_ENV, None)


@dataclass(frozen=True)
class ClusterLayout:
    """How a server spreads a new collection: shards, and copies of each (None: the server's default)."""

    shard_number: int | None = None
    replication_factor: int | None = None

    @classmethod
    def from_env(cls) -> "ClusterLayout":
        """`$TOL_QDRANT_SHARDS` and `$TOL_QDRANT_REPLICATION`, positive integers when set."""
        values = []
        for name in (SHARDS_ENV, REPLICATION_ENV):
            raw = os.environ.get(name, "").strip()
            if raw and not (raw.isdigit() and int(raw) > 0):
                raise ValueError(f"${name} must be a positive integer, got {raw!r}")
            values.append(int(raw) if raw else None)
        return cls(*values)


def open_store(
    location: str | None = None,
    api_key: str | None = None,
    *,
    retries: int = DEFAULT_RETRIES,
    backoff_s: float = DEFAULT_BACKOFF_S,
    timeout_s: int = DEFAULT_TIMEOUT_S,
    edge_settings: EdgeSettings | None = None,
    read_only: bool = False,
) -> VectorStore:
    """Open the store at `location` (a folder, `":memory:"` or an http(s) URL; None: the default).

    Args:
        location: resolved with `resolve_store_location`; `~` is expanded in folders.
        api_key: for a server URL only; None takes `$TOL_QDRANT_API_KEY` (ignored for other stores).
        retries, backoff_s, timeout_s: how a server is probed before StoreUnavailableError.
        edge_settings: engine knobs of the embedded shards; a folder location only.
        read_only: open to read beside a writer (the UI, search, predict, status). A folder is then
            read from a replica of the writer's last published generation, takes no lock, and
            refuses writes with StoreError; a server already serves many readers and writers, so
            there it changes nothing.

    Raises:
        ValueError: an empty or unknown location, or arguments that do not fit it.
        StoreUnavailableError: the server did not answer after `retries` attempts.
        StoreLockedError: writing, the folder is already open for writing, in this process or another
            (its pid named).
    """
    location = resolve_store_location(location)
    match = _SCHEME.match(location)
    if match:
        scheme = match.group(1).lower()
        if scheme not in URL_SCHEMES:
            raise ValueError(
                f"unsupported store URL {location!r}: expected http:// or https://, {MEMORY_LOCATION!r}, or a folder"
            )
        if edge_settings is not None:
            raise ValueError(f"edge_settings apply to an embedded store folder, not to the server {location!r}")
        from index.client_store import ClientStore

        return ClientStore.connect(
            location, resolve_api_key(api_key), retries=retries, backoff_s=backoff_s, timeout_s=timeout_s,
            layout=ClusterLayout.from_env(),
        )
    if api_key is not None:
        raise ValueError(f"an API key applies to a server URL (http:// or https://), not to {location!r}")
    if location == MEMORY_LOCATION:
        if edge_settings is not None:
            raise ValueError(f"edge_settings apply to an embedded store folder, not to {MEMORY_LOCATION!r}")
        from index.client_store import ClientStore

        return ClientStore.in_memory()
    if location.startswith(":"):
        raise ValueError(f"unknown store {location!r}: expected {MEMORY_LOCATION!r}, an http(s) URL, or a folder")
    from index.edge_store import EdgeStore

    return EdgeStore(Path(location).expanduser(), settings=edge_settings, read_only=read_only)
