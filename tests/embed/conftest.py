"""Shared fixtures: one tol-tiny model per session (random weights, seeded)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny():
    import torch

    from embed.models import load_model

    torch.manual_seed(0)
    return load_model("tol-tiny")


@pytest.fixture(scope="session")
def encoder(tiny):
    from embed.encoder import Encoder

    return Encoder(tiny, text_batch_size=50)
