"""The SQL catalog of a collection's images and taxa, and the records shared with the store and build.

Exports load on first use (module `__getattr__`), so `import index` and `python -m index --help`
stay cheap. Never imports torch, open_clip or streamlit.
"""
from __future__ import annotations

from toolkit.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "index.catalog": ("Catalog",),
    "index.errors": ("CatalogError",),
    "index.config": ("CatalogLocationError", "resolve_db_url"),
    "index.collection.images": ("open_image", "inspect_image", "decode_image", "image_header", "ImageError",
                                "ImageInfo"),
    "index.collection.readers": ("Collection", "read_collection"),
    "index.collection.entries": ("CatalogEntry", "Problem", "image_point_id"),
    "index.records": ("BuildRun", "CatalogStats", "ImageRecord", "IngestSummary"),
})
