"""Shared fixtures: one tol-tiny model per session, and small generated collections.

The collection generator is local to these tests so that they do not depend on the demo
package (embed must not import demo, and tests of embed should not need it either).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Three kingdoms' worth of homonyms and an empty rank, as SPEC §2-§3 describe.
SPECIES: tuple[tuple[str, ...], ...] = (
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia", "black-billed magpie"),
    ("Animalia", "Chordata", "Aves", "Suliformes", "Sulidae", "Morus", "bassanus", "northern gannet"),
    ("Plantae", "Tracheophyta", "Magnoliopsida", "Rosales", "Moraceae", "Morus", "alba", "white mulberry"),
    ("Animalia", "Chordata", "Actinopteri", "", "Pomacentridae", "Amphiprion", "ocellaris", "clown anemonefish"),
)
CSV_COLUMNS = ("filepath", "kingdom", "phylum", "class", "order", "family", "genus", "species", "common_name",
               "split", "source", "license")


@dataclass(frozen=True)
class TestCollection:
    catalog: Path
    images: Path
    paths: tuple[str, ...]


def make_test_collection(
    root: Path, per_species: int, size: int = 64, seed: int = 0, species: int = len(SPECIES)
) -> TestCollection:
    """`per_species` JPEGs of each of the first `species` of SPECIES under `root/images`, and `root/catalog.csv`."""
    rng = np.random.default_rng(seed)
    images = root / "images"
    rows = []
    for s, names in enumerate(SPECIES[:species]):
        folder = images / f"{names[5]}_{names[6]}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_species):
            base = np.full((size, size + 8, 3), (60 * s) % 255, dtype=np.uint8)
            pixels = np.clip(base + rng.integers(0, 120, base.shape), 0, 255).astype(np.uint8)
            path = f"{folder.name}/{i:04d}.jpg"
            Image.fromarray(pixels).save(images / path, quality=90)
            rows.append((path, *names, "train" if i % 4 else "val", "generated", "CC0"))
    catalog = root / "catalog.csv"
    with catalog.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
    return TestCollection(catalog, images, tuple(row[0] for row in rows))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread in these tests: tiny tensors gain nothing from more, and on a shared
    machine spinning OpenMP threads make them many times slower. Restored after each test."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny():
    from embed.models import load_model

    return load_model("tol-tiny")


@pytest.fixture(scope="session")
def encoder(tiny):
    from embed.encoder import Encoder

    return Encoder(tiny, text_batch_size=50)


@pytest.fixture(scope="session")
def small_collection(tmp_path_factory) -> TestCollection:
    """4 species x 5 images; read-only for tests (copy before damaging files)."""
    return make_test_collection(tmp_path_factory.mktemp("small"), per_species=5)
