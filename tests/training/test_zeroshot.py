"""Zero-shot through the evaluation module (training.evaluate) on a micro CLIP: classes, exact texts, wrong images."""
from pathlib import Path

import numpy as np
import pytest

from embed.encoder import Encoder
from embed.models import load_model
from taxonomy import Lineage, Rank
from training.evaluate import class_embeddings, majority_levels, rank_classes, zero_shot
from training.main import model_spec

from tests.collections import TRAINING_SPECIES

SPECIES = [Lineage.from_ranks(list(row[:7]), row[7]) for row in TRAINING_SPECIES]


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    """A real open_clip CLIP, smaller than tol-tiny: these tests encode thousands of template strings."""
    return Encoder(load_model(model_spec(str(Path(__file__).with_name("micro-clip.json")))))


def top1(encoder: Encoder, images: np.ndarray, truth: list[Lineage], candidates: list[Lineage]) -> dict[str, float]:
    """Top-1 per rank label, as training's per-epoch zero-shot reports it."""
    result = zero_shot(images, truth, class_embeddings(encoder, candidates, "taxon_com"), "taxon_com")
    return {accuracy.rank: accuracy.top1 for accuracy in result.ranks}


def test_classes_at_each_rank_are_the_distinct_ancestors():
    assert [c.key(Rank.KINGDOM) for c in rank_classes(SPECIES, Rank.KINGDOM)] == ["Animalia", "Plantae"]
    genera = rank_classes(SPECIES, Rank.GENUS)
    assert len(genera) == 6 and all(not g.species and not g.common_name for g in genera)
    assert len(rank_classes(SPECIES, Rank.PHYLUM)) == 3  # chance 1/3
    assert majority_levels(SPECIES)[Rank.KINGDOM] == pytest.approx(4 / 6)


def test_images_at_their_own_class_embedding_score_one(encoder):
    """An image embedding equal to its species' template average is right at species rank."""
    images = encoder.encode_taxa(SPECIES, "taxon_com")
    at_species = top1(encoder, images, SPECIES, SPECIES)
    assert set(at_species) == {rank.label for rank in Rank}
    assert at_species["species"] == 1.0
    genera = rank_classes(SPECIES, Rank.GENUS)
    at_genus = top1(encoder, encoder.encode_taxa(genera, "taxon_com"), genera, SPECIES)
    assert at_genus["genus"] == 1.0 and "species" not in at_genus  # genera have no species name


def test_wrong_embeddings_score_lower(encoder):
    images = encoder.encode_taxa(SPECIES, "taxon_com")
    shifted = np.roll(images, 1, axis=0)  # every image gets another species' embedding
    assert top1(encoder, shifted, SPECIES, SPECIES)["species"] == 0.0


def test_mismatched_lengths_are_an_error(encoder):
    assert encoder.dim == 32
    with pytest.raises(ValueError, match="2 image embeddings but 6 lineages"):
        top1(encoder, np.zeros((2, encoder.dim), np.float32), SPECIES, SPECIES)
