"""Seeded tiny collections for the training tests (see training_fixtures), and one CPU thread per test.

Tests share two cores with other jobs; one torch thread avoids OpenMP threads spinning against each
other there (measured several times faster than two threads on a loaded machine).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from tests.training.training_fixtures import make_tiny_collection


@pytest.fixture(scope="session")
def tiny_collection(tmp_path_factory) -> tuple[Path, Path]:
    """48 train and 12 val images of 6 species, 32 px (PNG and JPEG)."""
    return make_tiny_collection(tmp_path_factory.mktemp("tiny_collection"))


@pytest.fixture(autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
