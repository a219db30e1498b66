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
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from index.convert import Hit, hit_of
from index.filters import FilterSpec, FilterTerms, translate
from index.schema import COLLECTIONS, HNSW_LINK_FIELDS, KEYWORD_INDEX_FIELDS, MEMORY_LOCATION, check_collection
from index.search_params import SearchPlan
from index.vector_store import (
    DEFAULT_BACKOFF_S, DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, Changes, ClusterLayout, CollectionInfo, Query, StoreError,
    StoreUnavailableError, VectorStore, _check_positive,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

_TERMS = FilterTerms(
    field=lambda name, match: models.FieldCondition(key=name, match=match),
    match_value=lambda value: models.MatchValue(value=value),
    match_any=lambda values: models.MatchAny(any=values),
    has_ids=lambda ids: models.HasIdCondition(has_id=list(ids)),
    has_vector=lambda name: models.HasVectorCondition(has_vector=name),
    is_empty=lambda name: models.IsEmptyCondition(is_empty=models.PayloadField(key=name)),
    combine=lambda must, must_not: models.Filter(must=must, must_not=must_not),
)


def _client_filter(spec: FilterSpec | None) -> models.Filter | None:
    return translate(spec, _TERMS)


def _client_params(plan: SearchPlan) -> models.SearchParams:
    acorn = models.AcornSearchParams(enable=True, max_selectivity=1.0) if plan.acorn else None  # the plan chose it
    return models.SearchParams(hnsw_ef=plan.hnsw_ef, exact=plan.exact, acorn=acorn)


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

    def _params(self, plan: SearchPlan) -> models.SearchParams | None:
        # Local mode always scans every vector (and warns when given search params): exact anyway.
        if self.location == MEMORY_LOCATION or plan == SearchPlan():
            return None
        return _client_params(plan)

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
                schema = models.KeywordIndexParams(type="keyword", enable_hnsw=field in HNSW_LINK_FIELDS)
                self._call(self._client.create_payload_index, collection, field, field_schema=schema)
        if missing and present:
            logger.warning("added the keyword indexes %s missing from %r at %s (a build was interrupted while "
                           "creating them)", ", ".join(missing), collection, self.location)
        self._indexed.add(collection)

    # --- engine primitives --------------------------------------------------------------------

    _facet_errors = (UnexpectedResponse,)

    def _exists(self, collection: str) -> bool:
        return bool(self.vector_names(collection))

    def _points(self, collection: str, ids: list[str], *, payload: bool, vector: str | None = None) -> list[Any]:
        return self._call(self._client.retrieve, collection, ids, with_payload=payload,
                          with_vectors=[vector] if vector else False)

    def _apply(self, collection: str, changes: Changes) -> None:
        operations: list[Any] = []
        if changes.new:
            points = [models.PointStruct(id=i, vector=v, payload=p) for i, v, p in changes.new]
            operations.append(models.UpsertOperation(upsert=models.PointsList(points=points)))
        if changes.vectors:
            vectors = [models.PointVectors(id=i, vector=v) for i, v in changes.vectors]
            operations.append(models.UpdateVectorsOperation(update_vectors=models.UpdateVectors(points=vectors)))
        operations.extend(models.OverwritePayloadOperation(overwrite_payload=models.SetPayload(payload=p, points=[i]))
                          for i, p in changes.payloads)
        if operations:
            self._call(self._client.batch_update_points, collection, operations, wait=True)

    def _remove(self, collection: str, ids: list[str]) -> None:
        self._call(self._client.delete, collection, points_selector=models.PointIdsList(points=ids), wait=True)

    def _page(
        self, collection: str, spec: FilterSpec | None, offset: Any, size: int, *, payload: bool
    ) -> tuple[list[Any], Any]:
        return self._call(self._client.scroll, collection, scroll_filter=_client_filter(spec), limit=size,
                          offset=offset, with_payload=payload, with_vectors=False)

    def _count(self, collection: str, spec: FilterSpec | None) -> int:
        return int(self._call(self._client.count, collection, count_filter=_client_filter(spec), exact=True).count)

    def _estimate(self, collection: str, spec: FilterSpec) -> tuple[int, int]:
        size, total = (int(self._call(self._client.count, collection, count_filter=f, exact=False).count)
                       for f in (_client_filter(spec), None))
        return size, total

    def _query_args(self, request: Query, vector: np.ndarray) -> dict[str, Any]:
        return dict(
            query=vector.tolist(), using=request.vector_name, query_filter=_client_filter(request.spec),
            search_params=self._params(request.plan), limit=request.k, with_payload=request.payload,
            with_vectors=[request.vector_name] if request.with_vectors else False,
        )

    def _query(self, request: Query, vector: np.ndarray) -> list[Any]:
        return self._call(self._client.query_points, request.collection, **self._query_args(request, vector)).points

    def _query_groups(self, request: Query, vector: np.ndarray, group_by: str, group_size: int) -> list[Hit]:
        result = self._call(self._client.query_points_groups, request.collection, group_by=group_by,
                            group_size=group_size, **self._query_args(request, vector))
        out = request.vector_name if request.with_vectors else None
        return [hit_of(p, float(p.score), out, str(group.id)) for group in result.groups for p in group.hits]

    def _query_batch(self, request: Query, matrix: np.ndarray) -> list[list[Any]]:
        query_filter = _client_filter(request.spec)
        params = self._params(request.plan)
        requests = [
            models.QueryRequest(query=q.tolist(), using=request.vector_name, filter=query_filter, params=params,
                                limit=request.k, with_payload=True)
            for q in matrix
        ]
        return [answer.points for answer in self._call(self._client.query_batch_points, request.collection, requests)]

    def _facet(self, collection: str, field: str, spec: FilterSpec | None, limit: int) -> list[tuple[str, int]]:
        response = self._call(self._client.facet, collection, field, facet_filter=_client_filter(spec),
                              limit=limit, exact=True)
        return [(str(hit.value), int(hit.count)) for hit in response.hits]

    def _payload_indexes(self, collection: str) -> set[str]:
        return set(self._call(self._client.get_collection, collection).payload_schema)

    def _info(self, collection: str) -> CollectionInfo:
        info = self._call(self._client.get_collection, collection)
        return CollectionInfo(
            points=int(info.points_count or 0),
            segments=int(info.segments_count or 0),
            indexed_vectors=int(info.indexed_vectors_count or 0),
            payload_indexes={k: str(v.data_type.value) for k, v in sorted(info.payload_schema.items())},
            vectors=self.vector_names(collection),
        )

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

