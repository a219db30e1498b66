"""The app's services, built once per process with `st.cache_resource`, and its configuration.

Configuration comes from the environment as for every tool (SPEC §7): `TOL_STORE`, `TOL_DB`,
`TOL_MODEL` (the demo sets them), else the defaults (`toolkit.settings.Settings`). The search service
opens the store and the catalog once (`embed.service`); the model inside it loads on the first query
that needs one. Thumbnails are cached bytes, read only through `index.collection.images.open_image` with the root
the catalog gives.
"""
from __future__ import annotations

import logging

import streamlit as st

from embed.search import SearchService
from embed.service import close_search_service, open_search_service
from index.config import resolve_db_url
from index.store import StoreError
from toolkit.settings import Settings
from ui.views import THUMBNAIL_PX, thumbnail_bytes

logger = logging.getLogger(__name__)

THUMBNAIL_CACHE_ENTRIES = 2000


class UiConfig(Settings):
    """Where the app reads from: the settings of the environment, the catalog as its SQLAlchemy URL."""

    @classmethod
    def from_env(cls) -> "UiConfig":
        settings = Settings.resolve()
        return cls(settings.store, resolve_db_url(settings.db), settings.model)


@st.cache_resource(show_spinner="Opening the store…", on_release=close_search_service)
def get_service(store: str, db: str, model: str) -> SearchService:
    """The search service over `store`, `db` and `model`, one per process and configuration.

    Released when the cache entry goes (st.cache_resource.clear()), which removes this reader's replica.
    """
    logger.info("opening store %s, catalog %s, model %s", store, db, model)
    return open_search_service(Settings(store, db, model))


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
