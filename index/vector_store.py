"""The vector store's interface and what both back ends share: argument checks, the upsert of
changed points, paging, facets, and the conversion of engine points to `Hit`s.

Like qdrant-client's `QdrantBase`, `VectorStore` writes the interface down once. Each public
operation is implemented here on top of a few engine primitives (the `_`-methods under "engine
primitives"), which `index.edge_store.EdgeStore` and `index.client_store.ClientStore` write for
their engine. Nothing returned from here is a qdrant object. This module imports no engine, and no
back end: `index.store` opens one.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

import numpy as np

from index.convert import (
    Hit, as_matrix, as_queries, as_query, check_point_id, check_unique, hit_of, image_payload, taxon_payload,
    taxon_point_id,
)
from index.filters import FilterSpec, SearchFilter, filter_spec
from index.records import ImageRecord
from index.schema import (
    CATALOG_SOURCE, COLLECTIONS, IMAGES, REPLICATION_ENV, SHARDS_ENV, TAXA, check_collection, check_dim,
    check_keyword_field, check_vector_name,
)
from index.search_params import SearchPlan, plan_search, planned_search
from taxonomy.taxon import Taxon

DEFAULT_RETRIES = 5
DEFAULT_BACKOFF_S = 0.5  # first wait; doubles on each retry: 0.5 + 1 + 2 + 4 s before giving up
DEFAULT_TIMEOUT_S = 30
FACET_LIMIT = 100_000  # facet values returned at most: every genus of a large collection
UPSERT_CHUNK = 512  # points per engine update: bounds the size of one WAL entry or HTTP request
SCROLL_PAGE = 512  # points per scroll request


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


@dataclass(frozen=True)
class ClusterLayout:
    """How a server spreads a new collection: shards, and copies of each (None: the server's default)."""

    shard_number: int | None = None
    replication_factor: int | None = None

    @classmethod
    def from_env(cls) -> ClusterLayout:
        """`$TOL_QDRANT_SHARDS` and `$TOL_QDRANT_REPLICATION`, positive integers when set."""
        values = []
        for name in (SHARDS_ENV, REPLICATION_ENV):
            raw = os.environ.get(name, "").strip()
            if raw and not (raw.isdigit() and int(raw) > 0):
                raise ValueError(f"${name} must be a positive integer, got {raw!r}")
            values.append(int(raw) if raw else None)
        return cls(*values)


@dataclass(frozen=True)
class CollectionInfo:
    """What the engine reports on a collection, the same on both back ends.

    `payload_indexes` maps each indexed field to its type in lower case (`keyword`); qdrant-client's
    local mode keeps no payload indexes, so there it is empty.
    """

    points: int
    segments: int
    indexed_vectors: int
    payload_indexes: dict[str, str]
    vectors: dict[str, int]  # name -> dimension


@dataclass
class Changes:
    """One chunk of writes, applied by the engine in this order."""

    new: list[tuple[str, dict[str, list[float]], dict[str, Any]]] = field(default_factory=list)  # id, vectors, payload
    vectors: list[tuple[str, dict[str, list[float]]]] = field(default_factory=list)  # set on points that exist
    payloads: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # replace those of points that exist


class VectorStore:
    """The two collections of SPEC §5, `images` and `taxa`, one named vector per model."""

    location: str = ""
    # What the engine raises when a facet's field has no index (checked against the indexes then).
    _facet_errors: tuple[type[BaseException], ...] = (Exception,)

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
        """Insert new points; on existing ones set this vector (others stay) and replace a changed payload."""
        self.ensure_vector(vector, int(matrix.shape[1]), (collection,))
        with self._writing(collection, f"writing {len(ids)} points to"):
            for start in range(0, len(ids), UPSERT_CHUNK):
                chunk = slice(start, start + UPSERT_CHUNK)
                chunk_ids, chunk_payloads = ids[chunk], payloads[chunk]
                stored = {str(p.id): p.payload or {} for p in self._points(collection, chunk_ids, payload=True)}
                changes = Changes()
                for i, p, row in zip(chunk_ids, chunk_payloads, matrix[chunk].tolist()):
                    if i not in stored:
                        changes.new.append((i, {vector: row}, p))
                        continue
                    changes.vectors.append((i, {vector: row}))
                    if stored[i] != p:
                        changes.payloads.append((i, p))
                self._apply(collection, changes)

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
        self._check_writable()
        if not self._exists(collection):
            return
        present = {str(p.id) for p in self._points(collection, ids, payload=False)}
        with self._writing(collection, f"rewriting {len(present)} payloads in"):
            changes = Changes(payloads=[(i, p) for i, p in zip(ids, payloads, strict=True) if i in present])
            self._apply(collection, changes)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Remove these points with all their vectors; ids that are not there are ignored."""
        self._check_writable()
        exists = self._exists(collection)
        ids = [check_point_id(i) for i in ids]
        if not exists or not ids:
            return
        with self._writing(collection, f"deleting {len(ids)} points from"):
            for start in range(0, len(ids), UPSERT_CHUNK):
                self._remove(collection, ids[start:start + UPSERT_CHUNK])

    # --- reads --------------------------------------------------------------------------------

    def ids_with_vector(self, collection: str, vector: str, ids: Sequence[str]) -> set[str]:
        """Which of `ids` already carry `vector`: what a resumed build need not embed again."""
        exists = self._exists(collection)
        ids = [check_point_id(i) for i in ids]
        if not exists or not ids or vector not in self.vector_names(collection):
            return set()
        found: set[str] = set()
        for start in range(0, len(ids), SCROLL_PAGE):
            chunk = ids[start:start + SCROLL_PAGE]
            points, _ = self._page(collection, filter_spec(ids=chunk, has_vector=vector), None, len(chunk),
                                   payload=False)
            found.update(str(p.id) for p in points)
        return found

    def count(self, collection: str, filter: SearchFilter | None = None, vector: str | None = None) -> int:
        """Exact number of points matching `filter` (and carrying `vector` when given)."""
        if not self._exists(collection) or (vector is not None and vector not in self.vector_names(collection)):
            return 0
        return self._count(collection, filter_spec(filter, has_vector=vector))

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
        _check_positive(k, "k")
        _check_positive(group_size, "group_size")
        _check_hnsw_ef(hnsw_ef)
        if group_by is not None:
            check_keyword_field(group_by, "group_by")
        vector = as_query(query, self._dim_of(collection, vector_name))
        request = self._planned(Query(collection, vector_name, k, filter, exact, hnsw_ef, with_vectors))
        if group_by is not None:
            return self._query_groups(request, vector, group_by, group_size)
        out = vector_name if with_vectors else None

        def run(plan: SearchPlan, limit: int, filtered: bool) -> list[Hit]:
            asked = replace(request, k=limit, plan=plan)
            if not filtered:
                asked = replace(asked, filter=None, with_vectors=False, payload=False)
            return [hit_of(p, float(p.score), out if filtered else None) for p in self._query(asked, vector)]

        def narrow(hits: list[Hit], limit: int) -> list[Hit]:
            inside = replace(request, k=limit, ids=tuple(h.id for h in hits), plan=SearchPlan())
            return [hit_of(p, float(p.score), out) for p in self._query(inside, vector)]

        return planned_search(request.plan, k, run, narrow)

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
        _check_positive(k, "k")
        _check_hnsw_ef(hnsw_ef)
        matrix = as_queries(queries, self._dim_of(collection, vector_name))
        if not len(matrix):
            return []
        answers = self._query_batch(self._planned(Query(collection, vector_name, k, filter, exact, hnsw_ef)), matrix)
        return [[hit_of(p, float(p.score)) for p in points] for points in answers]

    def retrieve(self, collection: str, ids: Sequence[str], vector_name: str | None = None) -> list[Hit]:
        """The points of `ids` that exist, in the order asked, with `vector_name`'s vector if given."""
        if vector_name is not None:
            self._dim_of(collection, vector_name)
        exists = self._exists(collection)
        ids = [check_point_id(i) for i in ids]
        if not exists or not ids:
            return []
        points = self._points(collection, ids, payload=True, vector=vector_name)
        by_id = {str(p.id): hit_of(p, None, vector_name) for p in points}
        return [by_id[i] for i in ids if i in by_id]

    def scroll(self, collection: str, filter: SearchFilter | None = None, limit: int | None = None) -> Iterator[Hit]:
        """Every point matching `filter` (at most `limit`), page by page, in id order."""
        if limit is not None:
            _check_positive(limit, "limit")
        if not self._exists(collection):
            return iter(())
        spec = filter_spec(filter)

        def fetch(offset: Any, size: int) -> tuple[list[Hit], Any]:
            points, next_offset = self._page(collection, spec, offset, size, payload=True)
            return [hit_of(p) for p in points], next_offset

        return _paged(fetch, limit, SCROLL_PAGE)

    def facet_counts(
        self, collection: str, field: str, filter: SearchFilter | None = None, limit: int = FACET_LIMIT
    ) -> dict[str, int]:
        """Points per value of an indexed keyword field, most frequent first (ties by value).

        Raises MissingIndexError when the collection lacks the field's index (a build adds it).
        """
        check_keyword_field(field, "facet field")
        _check_positive(limit, "limit")
        if not self._exists(collection):
            return {}
        try:
            counts = self._facet(collection, field, filter_spec(filter), limit)
        except StoreError:
            raise
        except self._facet_errors as e:
            if field in self._payload_indexes(collection):
                raise
            raise MissingIndexError(
                f"{self._describe(collection)} has no keyword index on {field!r} (a build was "
                "interrupted while creating it): run `python -m embed build` again to add it"
            ) from e
        return dict(sorted(counts, key=lambda vc: (-vc[1], vc[0])))

    def info(self, collection: str) -> CollectionInfo | None:
        """What the engine reports: points, segments, indexed vectors, payload indexes, vectors; None if absent."""
        if not self._exists(collection):
            return None
        return self._info(collection)

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

    # --- engine primitives: each back end writes these -----------------------------------------
    # Points passed back are the engine's own (`id`, `payload`, `vector`, and `score` when scored);
    # `hit_of` turns them into Hits.

    def _exists(self, collection: str) -> bool:
        """Whether the collection exists (raises on an unknown name or a closed store)."""
        raise NotImplementedError()

    def _check_writable(self) -> None:
        """Raise StoreError when this store may not write (closed, or opened to read)."""

    def _writing(self, collection: str, what: str) -> AbstractContextManager[None]:
        """Around the engine updates of one write call; `what` ends with a preposition for the collection."""
        return nullcontext()

    def _describe(self, collection: str) -> str:
        """The collection, named for an error message."""
        return f"collection {collection!r} at {self.location}"

    def _points(self, collection: str, ids: list[str], *, payload: bool, vector: str | None = None) -> list[Any]:
        """The existing points of `ids`, with their payload and `vector` as asked."""
        raise NotImplementedError()

    def _apply(self, collection: str, changes: Changes) -> None:
        """Apply one chunk of writes; any of its lists may be empty."""
        raise NotImplementedError()

    def _remove(self, collection: str, ids: list[str]) -> None:
        raise NotImplementedError()

    def _page(
        self, collection: str, spec: FilterSpec | None, offset: Any, size: int, *, payload: bool
    ) -> tuple[list[Any], Any]:
        """One page of points in id order, and the offset of the next (None after the last)."""
        raise NotImplementedError()

    def _count(self, collection: str, spec: FilterSpec | None) -> int:
        raise NotImplementedError()

    def _estimate(self, collection: str, spec: FilterSpec) -> tuple[int, int]:
        """The engine's quick estimate of the points matching `spec`, and of all points."""
        raise NotImplementedError()

    def _planned(self, request: Query) -> Query:
        """`request` with its plan (`index.search_params`), made from the engine's estimate of the filter's size."""
        spec = None if request.exact else request.spec
        if spec is None:
            plan = plan_search(filtered=False, cardinality=None, total=None, k=request.k, hnsw_ef=request.hnsw_ef,
                               exact=request.exact)
        else:
            size, total = self._estimate(request.collection, spec)
            plan = plan_search(filtered=True, cardinality=size, total=total, k=request.k, hnsw_ef=request.hnsw_ef)
        return replace(request, plan=plan)

    def _query(self, request: Query, vector: np.ndarray) -> list[Any]:
        """The scored points nearest to `vector`, best first."""
        raise NotImplementedError()

    def _query_groups(self, request: Query, vector: np.ndarray, group_by: str, group_size: int) -> list[Hit]:
        """`request.k` groups by `group_by`, each with its `group_size` best hits, as Qdrant groups them."""
        raise NotImplementedError()

    def _query_batch(self, request: Query, matrix: np.ndarray) -> list[list[Any]]:
        raise NotImplementedError()

    def _facet(self, collection: str, field: str, spec: FilterSpec | None, limit: int) -> list[tuple[str, int]]:
        """(value, count) of the field's values; what the engine raises when the field has no index."""
        raise NotImplementedError()

    def _payload_indexes(self, collection: str) -> set[str]:
        raise NotImplementedError()

    def _info(self, collection: str) -> CollectionInfo:
        raise NotImplementedError()

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


@dataclass(frozen=True)
class Query:
    """A nearest-neighbour request as the back ends receive it, its arguments checked."""

    collection: str
    vector_name: str
    k: int
    filter: SearchFilter | None = None
    exact: bool = False
    hnsw_ef: int | None = None
    with_vectors: bool = False
    plan: SearchPlan = SearchPlan()  # how the engine searches: VectorStore._planned
    ids: tuple[str, ...] | None = None  # only these points
    payload: bool = True

    @property
    def spec(self) -> FilterSpec | None:
        return filter_spec(self.filter, ids=self.ids)


def _check_positive(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")


def _check_hnsw_ef(hnsw_ef: int | None) -> None:
    if hnsw_ef is not None:
        _check_positive(hnsw_ef, "hnsw_ef")


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
