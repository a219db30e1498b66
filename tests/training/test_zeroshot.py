from pathlib import Path

import numpy as np
import pytest

from embed.encoder import Encoder
from embed.models import load_model
from taxonomy import Lineage, Rank
from training.main import model_spec
from training.zeroshot import chance_levels, rank_classes, zero_shot_accuracy

from tests.training.training_fixtures import LINEAGES

SPECIES = [Lineage.from_ranks(list(row[:7]), row[7]) for row in LINEAGES]


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    """A real open_clip CLIP, smaller than tol-tiny: these tests encode thousands of template strings."""
    return Encoder(load_model(model_spec(str(Path(__file__).with_name("micro-clip.json")))))


def test_classes_at_each_rank_are_the_distinct_ancestors():
    assert [c.key(Rank.KINGDOM) for c in rank_classes(SPECIES, Rank.KINGDOM)] == ["Animalia", "Plantae"]
    genera = rank_classes(SPECIES, Rank.GENUS)
    assert len(genera) == 6 and all(not g.species and not g.common_name for g in genera)
    assert chance_levels(SPECIES, SPECIES)[Rank.PHYLUM] == pytest.approx(1 / 3)


def test_images_at_their_own_class_embedding_score_one(encoder):
    """An image embedding equal to its species' template average is right at species rank."""
    images = encoder.encode_taxa(SPECIES, "taxon_com")
    top1 = zero_shot_accuracy(encoder, images, SPECIES, SPECIES, "taxon_com")
    assert set(top1) == set(Rank)
    assert top1[Rank.SPECIES] == 1.0
    genera = rank_classes(SPECIES, Rank.GENUS)
    at_genus = zero_shot_accuracy(encoder, encoder.encode_taxa(genera, "taxon_com"), genera, SPECIES, "taxon_com")
    assert at_genus[Rank.GENUS] == 1.0 and Rank.SPECIES not in at_genus  # genera have no species name


def test_wrong_embeddings_score_lower(encoder):
    images = encoder.encode_taxa(SPECIES, "taxon_com")
    shifted = np.roll(images, 1, axis=0)  # every image gets another species' embedding
    assert zero_shot_accuracy(encoder, shifted, SPECIES, SPECIES, "taxon_com")[Rank.SPECIES] == 0.0


def test_mismatched_lengths_are_an_error(encoder):
    assert encoder.dim == 32
    with pytest.raises(ValueError, match="2 image embeddings but 6 lineages"):
        zero_shot_accuracy(encoder, np.zeros((2, encoder.dim), np.float32), SPECIES, SPECIES)
