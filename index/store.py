"""The vector store facade: one interface, two Qdrant back ends, chosen from a location string.

    open_store("./var/qdrant")           -> EdgeStore: qdrant-edge-py in-process, one shard per collection
    open_store("./var/qdrant", read_only=True) -> an EdgeStore reader beside that one writer
    open_store(":memory:")               -> ClientStore(QdrantClient(":memory:")), for tests
    open_store("https://host:6333", key) -> ClientStore to a Qdrant server or cluster

`index.vector_store.VectorStore` writes the interface down once, with what both engines share
(checks, upserts, paging, facets); the back ends write its engine primitives, so both store and
answer the same things. Nothing returned from this module or its back ends is a qdrant object.
qdrant_edge and qdrant_client are imported only when a store is opened.
"""
from __future__ import annotations

import re
from pathlib import Path

from index.convert import Hit
from index.filters import SearchFilter
from index.schema import API_KEY_ENV, MEMORY_LOCATION, URL_SCHEMES
from index.vector_store import (
    DEFAULT_BACKOFF_S, DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, FACET_LIMIT, UPSERT_CHUNK, ClusterLayout, CollectionInfo,
    DimensionMismatchError, EdgeSettings, MissingIndexError, MissingVectorError, StoreError, StoreFullError,
    StoreLockedError, StoreUnavailableError, VectorStore,
)
from toolkit.settings import Settings, resolve_setting

__all__ = [
    "DEFAULT_BACKOFF_S", "DEFAULT_RETRIES", "DEFAULT_TIMEOUT_S", "FACET_LIMIT", "UPSERT_CHUNK",
    "ClusterLayout", "CollectionInfo", "DimensionMismatchError", "EdgeSettings", "Hit", "MissingIndexError",
    "MissingVectorError", "SearchFilter", "StoreError", "StoreFullError", "StoreLockedError",
    "StoreUnavailableError", "VectorStore", "canonical_location", "open_store", "resolve_api_key",
    "resolve_store_location",
]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def resolve_store_location(flag: str | None = None) -> str:
    """`--store`, else `$TOL_STORE`, else `./var/qdrant` (SPEC §7); blank values count as unset."""
    return Settings.resolve(store=flag).store


def canonical_location(location: str) -> str:
    """What an open store's `location` is for `location`: a folder as its absolute real path, else unchanged."""
    if _SCHEME.match(location) or location.startswith(":"):
        return location
    return str(Path(location).expanduser().resolve())


def resolve_api_key(flag: str | None = None) -> str | None:
    """The server API key: the argument, else `$TOL_QDRANT_API_KEY`, else None."""
    return resolve_setting(flag, API_KEY_ENV, None)


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
