"""Zero-shot top-1 at every rank, with SPEC §4's template averaging (`Encoder.encode_taxa`).

At rank r the classes are the distinct rank-r taxa of the candidate lineages, each embedded with
its truncated taxonomic string above species; an image counts as right when the nearest class is
its own ancestor at r. Images whose lineage has no name at r are left out of that rank.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from embed.encoder import Encoder
from index.images import open_image
from index.records import CatalogEntry
from taxonomy import DEFAULT_TEST_TEXT_TYPE, Lineage, Rank
from training.constants import ZERO_SHOT_BATCH_SIZE

logger = logging.getLogger(__name__)


def rank_classes(candidates: Sequence[Lineage], rank: Rank) -> list[Lineage]:
    """The distinct taxa at `rank` among the candidates, sorted by key."""
    classes: dict[str, Lineage] = {}
    for lineage in candidates:
        if lineage.get(rank):
            truncated = lineage.truncate(rank)
            key = truncated.key(rank)
            if key not in classes or (not classes[key].common_name and truncated.common_name):
                classes[key] = truncated
    return [classes[key] for key in sorted(classes)]


def zero_shot_accuracy(
    encoder: Encoder,
    image_embeddings: np.ndarray,
    true_lineages: Sequence[Lineage],
    candidate_lineages: Sequence[Lineage],
    text_type: str = DEFAULT_TEST_TEXT_TYPE,
) -> dict[Rank, float]:
    """Top-1 accuracy per rank of L2-normalised image embeddings against the candidates' taxa.

    Returns only ranks with at least one class and one labelled image.
    """
    if len(image_embeddings) != len(true_lineages):
        raise ValueError(f"{len(image_embeddings)} image embeddings but {len(true_lineages)} lineages")
    per_rank = {rank: rank_classes(candidate_lineages, rank) for rank in Rank}
    flat = [lineage for rank in Rank for lineage in per_rank[rank]]
    class_embeddings = encoder.encode_taxa(flat, text_type) if flat else np.zeros((0, encoder.dim), np.float32)
    images = np.asarray(image_embeddings, dtype=np.float32)
    accuracy: dict[Rank, float] = {}
    start = 0
    for rank in Rank:
        classes = per_rank[rank]
        block = class_embeddings[start:start + len(classes)]
        start += len(classes)
        labelled = [i for i, lineage in enumerate(true_lineages) if lineage.get(rank)]
        if not classes or not labelled:
            continue
        predicted = (images[labelled] @ block.T).argmax(axis=1)
        keys = [lineage.key(rank) for lineage in classes]
        hits = sum(keys[p] == true_lineages[i].key(rank) for p, i in zip(predicted, labelled))
        accuracy[rank] = hits / len(labelled)
    return accuracy


def chance_levels(true_lineages: Sequence[Lineage], candidate_lineages: Sequence[Lineage]) -> dict[Rank, float]:
    """Top-1 of a uniform random guess: one over the number of classes at each rank."""
    return {
        rank: 1.0 / len(classes)
        for rank in Rank
        if (classes := rank_classes(candidate_lineages, rank)) and any(lin.get(rank) for lin in true_lineages)
    }


def majority_levels(true_lineages: Sequence[Lineage]) -> dict[Rank, float]:
    """Top-1 of always answering the most frequent true taxon: the bar for unbalanced ranks."""
    levels: dict[Rank, float] = {}
    for rank in Rank:
        keys = [lineage.key(rank) for lineage in true_lineages if lineage.get(rank)]
        if keys:
            levels[rank] = max(keys.count(key) for key in set(keys)) / len(keys)
    return levels


class _EvalImages(Dataset):
    def __init__(self, root: Path, entries: Sequence[CatalogEntry], preprocess) -> None:
        self.root, self.entries, self.preprocess = root, list(entries), preprocess

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.preprocess(open_image(self.root, self.entries[index].path))


def embed_images(encoder: Encoder, root: Path, entries: Sequence[CatalogEntry], workers: int = 0,
                 batch_size: int = ZERO_SHOT_BATCH_SIZE) -> np.ndarray:
    """L2-normalised embeddings of the entries' images, with the model's eval transform."""
    loader = DataLoader(_EvalImages(root, entries, encoder.loaded.preprocess), batch_size=batch_size,
                        num_workers=workers)
    chunks = [encoder.encode_images(pixels) for pixels in loader]
    return np.concatenate(chunks) if chunks else np.zeros((0, encoder.dim), np.float32)


@dataclass(frozen=True)
class ZeroShotResult:
    top1: dict[str, float]  # rank label -> accuracy
    chance: dict[str, float]  # one over the number of classes
    majority: dict[str, float]  # share of the most frequent class among the images
    images: int
    text_type: str

    def as_dict(self) -> dict[str, object]:
        return {"top1": self.top1, "chance": self.chance, "majority": self.majority, "images": self.images,
                "text_type": self.text_type}


def evaluate(encoder: Encoder, root: Path, entries: Sequence[CatalogEntry], candidates: Sequence[Lineage],
             text_type: str = DEFAULT_TEST_TEXT_TYPE, workers: int = 0) -> ZeroShotResult:
    """Zero-shot top-1 per rank of a split's images among the candidates (model switched to eval and back)."""
    model = encoder.loaded.model
    was_training = model.training
    model.eval()
    try:
        embeddings = embed_images(encoder, root, entries, workers)
        truth = [entry.lineage for entry in entries]
        top1 = zero_shot_accuracy(encoder, embeddings, truth, candidates, text_type)
    finally:
        model.train(was_training)
    chance, majority = chance_levels(truth, candidates), majority_levels(truth)
    return ZeroShotResult({r.label: a for r, a in top1.items()}, {r.label: c for r, c in chance.items()},
                          {r.label: m for r, m in majority.items()}, len(entries), text_type)
