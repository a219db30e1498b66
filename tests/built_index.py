"""One small built index per test session (the `built_index` fixture of tests/conftest.py), shared by
tests/embed/test_search.py, test_predict_cli.py and tests/ui.

A demo collection (generated organisms on real NCBI taxa) is embedded with `tol-tiny` (random
weights, seeded) into an embedded store and an SQLite catalog, once. The store folder is then
closed and kept pristine: an embedded store folder can be held by one `EdgeStore` at a time, so
each user (a test module, the in-process Streamlit app, the browser test's server) opens a copy.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from index.edge_replica import copy_tree

logger = logging.getLogger(__name__)

MODEL = "tol-tiny"
SPECIES = 8
PER_SPECIES = 5
SIZE = 128
SEED = 0


@dataclass(frozen=True)
class BuiltIndex:
    """Where the shared index lives. `store` is closed: open a `store_copy`, not the folder itself."""

    root: Path
    catalog_csv: Path
    images: Path
    db: str  # SQLAlchemy URL of the catalog
    store: Path
    model: str = MODEL

    def store_copy(self, dest: Path) -> Path:
        """A copy of the built store folder at `dest` (which must not exist), to open on its own."""
        copy_tree(self.store, dest)
        return dest

    def env(self, store: Path) -> dict[str, str]:
        """The environment the UI and the CLI read (SPEC §7)."""
        return {"TOL_STORE": str(store), "TOL_DB": self.db, "TOL_MODEL": self.model}


_model = None


def tiny_model():
    """`tol-tiny` (seeded random weights), loaded once per process: the build and the tests share it."""
    global _model
    if _model is None:
        from embed.models import load_model

        _model = load_model(MODEL)
    return _model


def build_index(root: Path) -> BuiltIndex:
    """Generate the demo collection under `root` and build it (about 10 s on 2 cores)."""
    from demo.collection import make_collection
    from embed.build import BuildOptions, run_build

    paths = make_collection(root / "collection", SPECIES, PER_SPECIES, SIZE, SEED)
    db = f"sqlite:///{root / 'catalog.db'}"
    store = root / "qdrant"
    options = BuildOptions(model=MODEL, store=str(store), db=db, catalog=str(paths.catalog),
                           images=str(paths.images), workers=0, batch_size=32)
    summary = run_build(options, loaded=tiny_model())
    assert summary.images_failed == 0, summary.failures
    logger.info("built test index: %d images, %d taxa", summary.images_embedded, summary.taxa_total)
    return BuiltIndex(root, paths.catalog, paths.images, db, store)
