"""One way to open what searching needs: the store (read-only), the catalog when it exists, the search service.

`python -m embed search|predict` (`search_service`), the UI (`open_search_service`, kept open by
`st.cache_resource` and closed by `close_search_service`) and `python -m embed status` (`open_store_for_status`)
all open the store here, from one `toolkit.settings.Settings`.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from embed.constants import DEFAULT_DEVICE
from toolkit.settings import Settings

if TYPE_CHECKING:
    from embed.search import SearchService
    from index.store import VectorStore


def open_search_service(settings: Settings, api_key: str | None = None,
                        device: str = DEFAULT_DEVICE) -> SearchService:
    """The search service over `settings`' store (read-only), catalog (None when its file is missing) and
    model; the model loads on the first query that needs it. `close_search_service` closes what this opened.

    Raises:
        ValueError: a device this machine has not (checked before the store is opened or the model loads).
        index.store.StoreError: the store cannot be opened (a locked folder, an unreachable server).
    """
    from embed.device import check_device
    from embed.search import SearchService, open_catalog_if_exists
    from index.store import open_store

    check_device(device)
    store = open_store(settings.store, api_key, read_only=True)
    try:
        return SearchService(store, open_catalog_if_exists(settings.db), settings.model, device=device)
    except BaseException:
        store.close()
        raise


def close_search_service(service: SearchService) -> None:
    """Close the catalog and the store of a service from `open_search_service` (a reader's replica goes)."""
    try:
        if service.catalog is not None:
            service.catalog.close()
    finally:
        service.store.close()


@contextmanager
def search_service(settings: Settings, api_key: str | None = None,
                   device: str = DEFAULT_DEVICE) -> Iterator[SearchService]:
    """`open_search_service` for the length of a `with` block."""
    service = open_search_service(settings, api_key, device)
    try:
        yield service
    finally:
        close_search_service(service)


def open_store_for_status(settings: Settings, api_key: str | None = None) -> tuple[VectorStore | None, str, str]:
    """The store read-only, or None and why not; and its canonical location. A folder that does not
    exist is not created: it is reported as no store yet."""
    from index.schema import MEMORY_LOCATION
    from index.store import StoreError, canonical_location, open_store

    location = canonical_location(settings.store)
    is_folder = "://" not in location and location != MEMORY_LOCATION
    if is_folder and not Path(location).expanduser().exists():
        return None, "no store there yet (run `python -m embed build`)", location
    try:
        return open_store(location, api_key, read_only=True), "", location
    except StoreError as e:
        return None, str(e), location
