"""The app's services, built once per process with `st.cache_resource`, and its configuration.

Configuration comes from the environment as for every tool (SPEC §7): `TOL_STORE`, `TOL_DB`,
`TOL_MODEL` (the demo sets them), else the defaults. The search service opens the store and the
catalog once; the model inside it loads on the first query that needs one. Thumbnails are cached
bytes, read only through `index.images.open_image` with the root the catalog gives.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import streamlit as st

from embed.constants import DEFAULT_MODEL, ENV_MODEL
from embed.search import SearchService, open_catalog_if_exists
from index.config import resolve_db_url, resolve_setting
from index.store import StoreError, open_store, resolve_store_location
from ui.views import THUMBNAIL_PX, thumbnail_bytes

logger = logging.getLogger(__name__)

THUMBNAIL_CACHE_ENTRIES = 2000


@dataclass(frozen=True)
class UiConfig:
    """Where the app reads from."""

    store: str
    db: str
    model: str

    @classmethod
    def from_env(cls) -> "UiConfig":
        return cls(resolve_store_location(None), resolve_db_url(None), resolve_setting(None, ENV_MODEL, DEFAULT_MODEL))


def _release(service: SearchService) -> None:
    # Called when the cache entry goes (st.cache_resource.clear()): removes this reader's replica of the store.
    if service.catalog is not None:
        service.catalog.close()
    service.store.close()


@st.cache_resource(show_spinner="Opening the store…", on_release=_release)
def get_service(store: str, db: str, model: str) -> SearchService:
    """The search service over `store`, `db` and `model`, one per process and configuration."""
    logger.info("opening store %s, catalog %s, model %s", store, db, model)
    opened = open_store(store, read_only=True)
    try:
        return SearchService(opened, open_catalog_if_exists(db), model)
    except BaseException:
        opened.close()
        raise


def service_or_error(config: UiConfig) -> tuple[SearchService | None, str]:
    """The service, or why it could not be opened (a locked folder, an unreachable server)."""
    try:
        return get_service(config.store, config.db, config.model), ""
    except (StoreError, ValueError) as e:
        logger.warning("cannot open the store: %s", e)
        return None, str(e)


@st.cache_data(max_entries=THUMBNAIL_CACHE_ENTRIES, show_spinner=False)
def thumbnail(root: str, path: str, size: int = THUMBNAIL_PX) -> bytes | None:
    """Cached `ui.views.thumbnail_bytes`."""
    return thumbnail_bytes(root, path, size)
