"""Small demo collections (the demo package's own generator, under test here), built once per session in seconds."""
from __future__ import annotations

import pytest

from demo.collection import CollectionPaths, make_collection

TINY = dict(species=12, per_species=4, size=64, seed=0)
SIGNAL = dict(species=24, per_species=6, size=64, seed=1)


@pytest.fixture(scope="session")
def tiny_demo_collection(tmp_path_factory) -> CollectionPaths:
    """12 species x 4 pictures at 64 px, seed 0."""
    return make_collection(tmp_path_factory.mktemp("tiny"), **TINY)


@pytest.fixture(scope="session")
def signal_demo_collection(tmp_path_factory) -> CollectionPaths:
    """24 species x 6 pictures at 64 px, seed 1: enough pictures per taxon to measure distances."""
    return make_collection(tmp_path_factory.mktemp("signal"), **SIGNAL)
