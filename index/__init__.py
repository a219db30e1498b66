"""The SQL catalog of a collection's images and taxa, and the records shared with the store and build.

Exports load on first use (module `__getattr__`), so `import index` and `python -m index --help`
stay cheap. Never imports torch, open_clip or streamlit.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "Catalog": "index.catalog",
    "CatalogError": "index.errors",
    "CatalogLocationError": "index.config",
    "resolve_db_url": "index.config",
    "open_image": "index.images",
    "inspect_image": "index.images",
    "decode_image": "index.images",
    "image_header": "index.images",
    "ImageError": "index.images",
    "ImageInfo": "index.images",
    "Collection": "index.readers",
    "read_collection": "index.readers",
    "BuildRun": "index.records",
    "CatalogEntry": "index.records",
    "CatalogStats": "index.records",
    "ImageRecord": "index.records",
    "IngestSummary": "index.records",
    "Problem": "index.records",
    "image_point_id": "index.records",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'index' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
