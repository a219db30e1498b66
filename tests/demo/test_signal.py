"""The pictures carry the tree: with a fixed colour feature, near neighbours share high ranks far
more often than species, and pictures of one species lie closer together than those of other genera."""
import csv

import numpy as np
from PIL import Image

from taxonomy import Rank
from taxonomy.columns import HeaderMap

BINS = 4


def feature(path) -> np.ndarray:
    """An RGB histogram (4 bins a channel) plus channel means, spreads and edge energy."""
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"), np.float32) / 255.0
    cells = np.minimum((rgb * BINS).astype(int), BINS - 1)
    index = (cells[..., 0] * BINS + cells[..., 1]) * BINS + cells[..., 2]
    histogram = np.bincount(index.ravel(), minlength=BINS**3) / index.size
    grey = rgb.mean(axis=2)
    edges = np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean()
    stats = np.concatenate([rgb.mean(axis=(0, 1)), rgb.std(axis=(0, 1)), [edges]])
    return np.concatenate([np.sqrt(histogram), stats])


def _load(collection):
    with collection.catalog.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = HeaderMap.from_headers(list(reader.fieldnames or []))
        rows = list(reader)
    features = np.stack([feature(collection.images / row["filepath"]) for row in rows])
    lineages = [columns.lineage(row) for row in rows]
    distances = np.linalg.norm(features[:, None] - features[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    return lineages, distances


def _nearest_neighbour_accuracy(lineages, distances, rank: Rank) -> float:
    keys = np.array([lineage.key(rank) for lineage in lineages])
    return float(np.mean(keys[distances.argmin(axis=1)] == keys))


def test_nearest_neighbours_agree_far_more_on_kingdom_than_on_species(signal_demo_collection):
    lineages, distances = _load(signal_demo_collection)
    accuracy = {rank: _nearest_neighbour_accuracy(lineages, distances, rank) for rank in Rank}
    assert accuracy[Rank.KINGDOM] >= 0.85
    assert accuracy[Rank.KINGDOM] >= accuracy[Rank.SPECIES] + 0.15
    assert accuracy[Rank.CLASS] > accuracy[Rank.SPECIES]
    assert accuracy[Rank.SPECIES] > 3 / len({lineage.key() for lineage in lineages})  # well above chance


def test_a_species_lies_closer_to_itself_than_to_other_genera(signal_demo_collection):
    lineages, distances = _load(signal_demo_collection)
    species = np.array([lineage.key() for lineage in lineages])
    genus = np.array([lineage.key(Rank.GENUS) for lineage in lineages])
    finite = np.isfinite(distances)
    same_species = (species[:, None] == species[None]) & finite
    other_genus = genus[:, None] != genus[None]
    assert distances[same_species].mean() < 0.8 * distances[other_genus].mean()
