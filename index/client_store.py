"""The server store: qdrant-client to a Qdrant server or cluster, or `QdrantClient(":memory:")` for tests.

Collections `images` and `taxa` with one named vector per model; a new model's vector is added
to an existing collection with `create_vector_name` (a server API since Qdrant 1.18; the
compose file runs 1.19). Keyword payload indexes are created with
the collection, before any point, and every `ensure_vector` adds those a collection lacks (a build
killed while creating them). (qdrant-client's local mode accepts them but does not keep
them: its `get_collection().payload_schema` is always empty; a server reports them.)
"""
from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from index.convert import check_point_id
from index.filters import FilterSpec, SearchFilter, filter_spec, spec_fields, spec_matches
from index.schema import (
    COLLECTIONS, HNSW_LINK_FIELDS, KEYWORD_INDEX_FIELDS, MEMORY_LOCATION, check_collection, check_keyword_field,
)
from index.search_params import SearchPlan, plan_search, planned_search
from index.store import (
    DEFAULT_BACKOFF_S, DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, FACET_LIMIT, UPSERT_CHUNK, ClusterLayout, Hit,
    MissingIndexError, StoreError, StoreUnavailableError, VectorStore, _check_positive, _paged,
)

logger = logging.getLogger(__name__)

SCROLL_PAGE = 512
T = TypeVar("T")


def _client_filter(spec: FilterSpec | None) -> models.Filter | None:
    if spec is None:
        return None

    def condition(field: str, values: tuple[str, ...]) -> models.FieldCondition:
        match: Any = models.MatchValue(value=values[0]) if len(values) == 1 else models.MatchAny(any=list(values))
        return models.FieldCondition(key=field, match=match)

    must: list[Any] = [condition(f, v) for f, v in spec.must]
    if spec.ids is not None:
        must.append(models.HasIdCondition(has_id=list(spec.ids)))
    if spec.has_vector is not None:
        must.append(models.HasVectorCondition(has_vector=spec.has_vector))
    must_not: list[Any] = [condition(f, v) for f, v in spec.must_not]
    if spec.has_field is not None:
        must_not.append(models.IsEmptyCondition(is_empty=models.PayloadField(key=spec.has_field)))
    return models.Filter(must=must or None, must_not=must_not or None)


def _client_params(plan: SearchPlan) -> models.SearchParams:
    acorn = models.AcornSearchParams(enable=True, max_selectivity=1.0) if plan.acorn else None  # the plan chose it
    return models.SearchParams(hnsw_ef=plan.hnsw_ef, exact=plan.exact, acorn=acorn)


def _hit(point: Any, score: float | None, vector_name: str | None = None, group: str | None = None) -> Hit:
    vector = None
    if vector_name is not None and isinstance(point.vector, dict) and vector_name in point.vector:
        vector = np.asarray(point.vector[vector_name], dtype=np.float32)
    return Hit(str(point.id), score, dict(point.payload or {}), vector, group)


class ClientStore(VectorStore):
    """Both collections through one `QdrantClient` (SPEC §6)."""

    def __init__(
        self, client: QdrantClient, location: str = MEMORY_LOCATION, layout: ClusterLayout | None = None
    ) -> None:
        self._client = client
        self.location = location
        self.layout = layout or ClusterLayout()
        self._dims: dict[str, dict[str, int] | None] = {c: None for c in COLLECTIONS}
        self._indexed: set[str] = set()  # collections whose keyword indexes were checked by this object
        self._closed = False

    @classmethod
    def in_memory(cls) -> ClientStore:
        return cls(QdrantClient(location=MEMORY_LOCATION), MEMORY_LOCATION)

    @classmethod
    def connect(
        cls,
        url: str,
        api_key: str | None = None,
        *,
        retries: int = DEFAULT_RETRIES,
        backoff_s: float = DEFAULT_BACKOFF_S,
        timeout_s: int = DEFAULT_TIMEOUT_S,
        layout: ClusterLayout | None = None,
    ) -> ClientStore:
        """Connect to the server at `url`, probing it up to `retries` times with exponential back-off.

        Raises StoreUnavailableError naming the URL when it never answers, StoreError when it
        refuses the API key.
        """
        _check_positive(retries, "retries")
        if backoff_s < 0:
            raise ValueError(f"backoff_s must be >= 0, got {backoff_s!r}")
        client = QdrantClient(url=url, api_key=api_key, timeout=timeout_s, check_compatibility=False)
        last: Exception | None = None
        for attempt in range(retries):
            try:
                client.get_collections()
                return cls(client, url, layout)
            except UnexpectedResponse as e:
                client.close()
                if e.status_code in (401, 403):
                    raise StoreError(
                        f"the Qdrant server at {url} refused the API key (HTTP {e.status_code}); "
                        "pass --api-key or set TOL_QDRANT_API_KEY"
                    ) from e
                raise StoreError(f"the Qdrant server at {url} answered HTTP {e.status_code}: {e}") from e
            except (ResponseHandlingException, OSError) as e:
                last = e
                if attempt + 1 < retries:
                    wait = backoff_s * 2**attempt
                    logger.warning("Qdrant server at %s unreachable (%s); retry %d/%d in %.2fs",
                                   url, e, attempt + 1, retries - 1, wait)
                    time.sleep(wait)
        client.close()
        raise StoreUnavailableError(
            f"the Qdrant server at {url} is unreachable after {retries} attempts: {last}. "
            "Start it (docker compose up qdrant) or check --store / TOL_STORE"
        ) from last

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._closed:
            raise StoreError(f"the store {self.location} is closed")
        try:
            return fn(*args, **kwargs)
        except ResponseHandlingException as e:
            raise StoreUnavailableError(f"the Qdrant server at {self.location} stopped answering: {e}") from e

    def _params(
        self, collection: str, filter: SearchFilter | None, k: int, exact: bool, hnsw_ef: int | None
    ) -> models.SearchParams | None:
        plan = self._plan(collection, filter, k, exact, hnsw_ef)
        return None if plan == SearchPlan() or self.location == MEMORY_LOCATION else _client_params(plan)

    def _plan(self, collection: str, filter: SearchFilter | None, k: int, exact: bool, hnsw_ef: int | None) -> SearchPlan:
        """`index.search_params.plan_search` from the server's estimate of the filter's size."""
        # Local mode always scans every vector (and warns when given search params): exact anyway.
        if self.location == MEMORY_LOCATION:
            return SearchPlan(exact=exact, hnsw_ef=hnsw_ef)
        query_filter = None if exact else _client_filter(filter_spec(filter))
        size = total = None
        if query_filter is not None:
            size, total = (int(self._call(self._client.count, collection, count_filter=f, exact=False).count)
                           for f in (query_filter, None))
        return plan_search(filtered=query_filter is not None, cardinality=size, total=total, k=k, hnsw_ef=hnsw_ef,
                           exact=exact)

    # --- schema -------------------------------------------------------------------------------

    def _refresh(self, collection: str) -> dict[str, int]:
        dims: dict[str, int] = {}
        if self._call(self._client.collection_exists, collection):
            vectors = self._call(self._client.get_collection, collection).config.params.vectors
            if not isinstance(vectors, dict):
                raise StoreError(
                    f"collection {collection!r} at {self.location} has an unnamed vector; this project "
                    "stores one named vector per model (SPEC §5)"
                )
            dims = {name: int(params.size) for name, params in vectors.items()}
        self._dims[collection] = dims
        return dims

    def vector_names(self, collection: str) -> dict[str, int]:
        check_collection(collection)
        dims = self._dims[collection]
        return dict(dims if dims is not None else self._refresh(collection))

    def _dim_of(self, collection: str, vector_name: str) -> int:
        # Another writer may have added the vector since it was cached.
        if vector_name not in self.vector_names(collection):
            self._refresh(collection)
        return super()._dim_of(collection, vector_name)

    def ensure_vector(self, name: str, dim: int, collections: Sequence[str] = COLLECTIONS) -> None:
        for collection in collections:
            self._refresh(check_collection(collection))
        for collection in self._check_new_dims(name, dim, collections):
            params = models.VectorParams(size=dim, distance=models.Distance.COSINE)
            if not self._call(self._client.collection_exists, collection):
                self._call(self._client.create_collection, collection, vectors_config={name: params},
                           shard_number=self.layout.shard_number,
                           replication_factor=self.layout.replication_factor)
                logger.info("created collection %r at %s with vector %r (%d-d)", collection, self.location, name, dim)
            else:
                config = models.DenseVectorNameConfig(
                    dense=models.DenseVectorConfig(size=dim, distance=models.Distance.COSINE)
                )
                self._call(self._client.create_vector_name, collection, name, config)
                logger.info("added vector %r (%d-d) to %r at %s", name, dim, collection, self.location)
            self._refresh(collection)
        for collection in collections:
            if self.vector_names(collection):
                self._ensure_indexes(collection)

    def _ensure_indexes(self, collection: str) -> None:
        """Create the keyword indexes of SPEC §5 the collection lacks (all of them on a new one)."""
        if collection in self._indexed:
            return
        present = set(self._call(self._client.get_collection, collection).payload_schema)
        missing = [f for f in KEYWORD_INDEX_FIELDS if f not in present]
        with warnings.catch_warnings():
            # Local mode warns that it keeps no payload indexes; a server does, and is what they are for.
            warnings.filterwarnings("ignore", message="Payload indexes have no effect in the local Qdrant")
            for field in missing:
                self._call(
                    self._client.create_payload_index, collection, field,
                    field_schema=models.KeywordIndexParams(type="keyword", enable_hnsw=field in HNSW_LINK_FIELDS),
                )
        if missing and present:
            logger.warning("added the keyword indexes %s missing from %r at %s (a build was interrupted while "
                           "creating them)", ", ".join(missing), collection, self.location)
        self._indexed.add(collection)

    # --- writes -------------------------------------------------------------------------------

    def _upsert(
        self, collection: str, vector: str, ids: list[str], payloads: list[dict[str, Any]], matrix: np.ndarray
    ) -> None:
        self.ensure_vector(vector, int(matrix.shape[1]), (collection,))
        for start in range(0, len(ids), UPSERT_CHUNK):
            chunk = slice(start, start + UPSERT_CHUNK)
            self._upsert_chunk(collection, vector, ids[chunk], payloads[chunk], matrix[chunk])

    def _upsert_chunk(
        self, collection: str, vector: str, ids: list[str], payloads: list[dict[str, Any]], matrix: np.ndarray
    ) -> None:
        stored = {
            str(p.id): p.payload or {}
            for p in self._call(self._client.retrieve, collection, ids, with_payload=True, with_vectors=False)
        }
        rows = matrix.tolist()
        operations: list[Any] = []
        new = [models.PointStruct(id=i, vector={vector: r}, payload=p)
               for i, p, r in zip(ids, payloads, rows) if i not in stored]
        if new:
            operations.append(models.UpsertOperation(upsert=models.PointsList(points=new)))
        old = [models.PointVectors(id=i, vector={vector: r}) for i, r in zip(ids, rows) if i in stored]
        if old:
            operations.append(models.UpdateVectorsOperation(update_vectors=models.UpdateVectors(points=old)))
        operations.extend(
            models.OverwritePayloadOperation(overwrite_payload=models.SetPayload(payload=p, points=[i]))
            for i, p in zip(ids, payloads)
            if i in stored and stored[i] != p
        )
        if operations:
            self._call(self._client.batch_update_points, collection, operations, wait=True)

    def overwrite_payloads(self, collection: str, ids: list[str], payloads: list[dict[str, Any]]) -> None:
        if not self.vector_names(collection):
            return
        present = {str(p.id) for p in self._call(self._client.retrieve, collection, ids, with_payload=False,
                                                  with_vectors=False)}
        operations = [models.OverwritePayloadOperation(overwrite_payload=models.SetPayload(payload=p, points=[i]))
                      for i, p in zip(ids, payloads, strict=True) if i in present]
        if operations:
            self._call(self._client.batch_update_points, collection, operations, wait=True)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        ids = [check_point_id(i) for i in ids]
        if not ids or not self.vector_names(collection):
            return
        for start in range(0, len(ids), UPSERT_CHUNK):
            selector = models.PointIdsList(points=ids[start:start + UPSERT_CHUNK])
            self._call(self._client.delete, collection, points_selector=selector, wait=True)

    # --- reads --------------------------------------------------------------------------------

    def ids_with_vector(self, collection: str, vector: str, ids: Sequence[str]) -> set[str]:
        ids = [check_point_id(i) for i in ids]
        if not ids or vector not in self.vector_names(collection):
            return set()
        found: set[str] = set()
        for start in range(0, len(ids), SCROLL_PAGE):
            chunk = ids[start : start + SCROLL_PAGE]
            points, _ = self._call(
                self._client.scroll, collection, limit=len(chunk), with_payload=False, with_vectors=False,
                scroll_filter=_client_filter(filter_spec(ids=chunk, has_vector=vector)),
            )
            found.update(str(p.id) for p in points)
        return found

    def count(self, collection: str, filter: SearchFilter | None = None, vector: str | None = None) -> int:
        names = self.vector_names(collection)
        if not names or (vector is not None and vector not in names):
            return 0
        spec = filter_spec(filter, has_vector=vector)
        return int(self._call(self._client.count, collection, count_filter=_client_filter(spec), exact=True).count)

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
        vector = self._search_args(collection, vector_name, query, k, group_by, group_size, hnsw_ef).tolist()
        common: dict[str, Any] = dict(
            query=vector, using=vector_name, query_filter=_client_filter(filter_spec(filter)),
            search_params=self._params(collection, filter, k, exact, hnsw_ef), limit=k, with_payload=True,
            with_vectors=[vector_name] if with_vectors else False,
        )
        out = vector_name if with_vectors else None
        if group_by is None:
            spec = filter_spec(filter)

            def run(plan: SearchPlan, limit: int, filtered: bool) -> list[Hit]:
                params = None if self.location == MEMORY_LOCATION else _client_params(plan)
                narrow = {} if filtered else {"query_filter": None, "with_payload": spec_fields(spec), "with_vectors": False}
                points = self._call(self._client.query_points, collection, **{
                    **common, "limit": limit, "search_params": params, **narrow}).points
                return [_hit(p, float(p.score), out) for p in points]

            def complete(hits: list[Hit]) -> list[Hit]:  # the kept hits of an unfiltered search, read whole
                full = {h.id: h for h in self.retrieve(collection, [h.id for h in hits], out)}
                return [Hit(h.id, h.score, full[h.id].payload, full[h.id].vector) for h in hits if h.id in full]

            plan = self._plan(collection, filter, k, exact, hnsw_ef)
            return planned_search(plan, k, run, lambda h: spec_matches(spec, h.payload), complete)
        result = self._call(
            self._client.query_points_groups, collection, group_by=group_by, group_size=group_size, **common
        )
        return [_hit(p, float(p.score), out, str(group.id)) for group in result.groups for p in group.hits]

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
        matrix = self._batch_args(collection, vector_name, queries, k, hnsw_ef)
        if not len(matrix):
            return []
        query_filter = _client_filter(filter_spec(filter))
        params = self._params(collection, filter, k, exact, hnsw_ef)
        requests = [
            models.QueryRequest(query=q.tolist(), using=vector_name, filter=query_filter, params=params,
                                limit=k, with_payload=True)
            for q in matrix
        ]
        answers = self._call(self._client.query_batch_points, collection, requests)
        return [[_hit(p, float(p.score)) for p in answer.points] for answer in answers]

    def retrieve(self, collection: str, ids: Sequence[str], vector_name: str | None = None) -> list[Hit]:
        if vector_name is not None:
            self._dim_of(collection, vector_name)
        ids = [check_point_id(i) for i in ids]
        if not ids or not self.vector_names(collection):
            return []
        points = self._call(
            self._client.retrieve, collection, ids, with_payload=True,
            with_vectors=[vector_name] if vector_name else False,
        )
        by_id = {str(p.id): _hit(p, None, vector_name) for p in points}
        return [by_id[i] for i in ids if i in by_id]

    def scroll(self, collection: str, filter: SearchFilter | None = None, limit: int | None = None) -> Iterator[Hit]:
        if limit is not None:
            _check_positive(limit, "limit")
        if not self.vector_names(collection):
            return iter(())
        scroll_filter = _client_filter(filter_spec(filter))

        def fetch(offset: Any, size: int) -> tuple[list[Hit], Any]:
            points, next_offset = self._call(
                self._client.scroll, collection, scroll_filter=scroll_filter, limit=size, offset=offset,
                with_payload=True, with_vectors=False,
            )
            return [_hit(p, None) for p in points], next_offset

        return _paged(fetch, limit, SCROLL_PAGE)

    def facet_counts(
        self, collection: str, field: str, filter: SearchFilter | None = None, limit: int = FACET_LIMIT
    ) -> dict[str, int]:
        check_keyword_field(field, "facet field")
        _check_positive(limit, "limit")
        if not self.vector_names(collection):
            return {}
        try:
            response = self._call(
                self._client.facet, collection, field, facet_filter=_client_filter(filter_spec(filter)),
                limit=limit, exact=True,
            )
        except UnexpectedResponse as e:
            if field in self._call(self._client.get_collection, collection).payload_schema:
                raise
            raise MissingIndexError(
                f"collection {collection!r} at {self.location} has no keyword index on {field!r} (a build was "
                "interrupted while creating it): run `python -m embed build` again to add it"
            ) from e
        counts = [(str(hit.value), int(hit.count)) for hit in response.hits]
        return dict(sorted(counts, key=lambda vc: (-vc[1], vc[0])))

    def info(self, collection: str) -> dict[str, Any]:
        if not self.vector_names(collection):
            return {}
        info = self._call(self._client.get_collection, collection)
        return {
            "segments": info.segments_count,
            "points": info.points_count,
            "indexed_vectors": info.indexed_vectors_count,
            "payload_indexes": {k: str(v.data_type.value) for k, v in sorted(info.payload_schema.items())},
            "vectors": self.vector_names(collection),
        }

    # --- lifecycle ----------------------------------------------------------------------------

    def optimize(self) -> None:
        # A server builds its HNSW graphs in the background; local mode scans and has none to build.
        logger.debug("optimize(): nothing to do for %s; the server indexes on its own", self.location)

    def flush(self) -> None:
        if self._closed:
            raise StoreError(f"the store {self.location} is closed")  # writes use wait=True: nothing pending

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client.close()

