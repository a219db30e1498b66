"""The metric functions against hand computations, and on a real tiny model."""
from __future__ import annotations

import numpy as np
import pytest

from taxonomy import Lineage, Rank
from training.evaluate import (
    LIFE,
    MISTAKE_LEVELS,
    centre_normalise,
    few_shot_accuracy,
    mistake_depths,
    nearest_centroid,
    parse_ranks,
    parse_shots,
    top_k_accuracy,
    true_class_positions,
    zero_shot,
    zero_shot_at_rank,
)

CORAX = Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Corvus", "corax"], "raven")
ALBUS = Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Corvus", "albus"], "pied crow")
PICA = Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "pica"], "magpie")
LYNX = Lineage.from_ranks(["Animalia", "Chordata", "Mammalia", "Carnivora", "Felidae", "Lynx", "rufus"], "bobcat")
DANAUS = Lineage.from_ranks(["Animalia", "Arthropoda", "Insecta", "Lepidoptera", "Nymphalidae", "Danaus", "plexippus"])
MORUS = Lineage.from_ranks(["Plantae", "Tracheophyta", "Magnoliopsida", "Rosales", "Moraceae", "Morus", "alba"])


def test_true_class_positions_by_hand():
    scores = np.array([[0.9, 0.1, 0.5],
                       [0.2, 0.2, 0.1],   # a tie with a lower index: argmax would pick class 0
                       [0.1, 0.3, 0.2],
                       [0.5, 0.4, 0.3]])
    truth = np.array([0, 1, 0, -1])  # the last one's true class is not a candidate
    assert true_class_positions(scores, truth).tolist()[:3] == [0, 1, 2]
    assert true_class_positions(scores, truth)[3] > 1000
    assert top_k_accuracy(scores, truth, (1, 2, 3)) == {1: 0.25, 2: 0.5, 3: 0.75}


def test_top1_agrees_with_argmax_on_random_scores():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(200, 7)).astype(float)  # many ties
    truth = rng.integers(0, 7, size=200)
    assert top_k_accuracy(scores, truth, (1,))[1] == pytest.approx(np.mean(scores.argmax(axis=1) == truth))
    assert top_k_accuracy(scores, truth, (7,))[7] == 1.0


def test_true_class_positions_rejects_bad_shapes():
    with pytest.raises(ValueError, match="expected scores"):
        true_class_positions(np.zeros((3, 2)), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="classes"):
        true_class_positions(np.zeros((1, 2)), np.array([2]))


def _unit(*xs: float) -> np.ndarray:
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_zero_shot_at_species_and_genus_by_hand():
    # Three species; each image embedding is built to sit nearest a known class.
    species = [CORAX, ALBUS, PICA]
    species_vectors = np.stack([_unit(1, 0, 0), _unit(0, 1, 0), _unit(0, 0, 1)])
    genera = [CORAX.truncate(Rank.GENUS), PICA.truncate(Rank.GENUS)]  # Corvus, Pica (sorted by key)
    genus_vectors = np.stack([_unit(1, 1, 0), _unit(0, 0, 1)])
    images = np.stack([_unit(1, 0.1, 0),     # corax -> corax (right), genus Corvus (right)
                       _unit(1, 0.5, 0),     # albus -> corax (wrong, 2nd), genus Corvus (right)
                       _unit(0.2, 0, 1),     # pica  -> pica  (right), genus Pica (right)
                       _unit(0.3, 1, 0.9)])  # pica  -> albus (wrong, 2nd), genus Corvus (wrong: 0.667 vs 0.653)
    truth = [CORAX, ALBUS, PICA, PICA]
    at_species = zero_shot_at_rank(images, truth, species, species_vectors, Rank.SPECIES)
    assert at_species.accuracy.top1 == 0.5 and at_species.accuracy.top5 == 1.0
    assert at_species.accuracy.classes == 3 and at_species.accuracy.images == 4
    assert at_species.predicted.tolist() == [0, 0, 2, 1]
    at_genus = zero_shot_at_rank(images, truth, genera, genus_vectors, Rank.GENUS)
    assert at_genus.accuracy.top1 == 0.75 and at_genus.accuracy.chance == 0.5

    result = zero_shot(images, truth, {Rank.SPECIES: (species, species_vectors), Rank.GENUS: (genera, genus_vectors)},
                       "taxonomic")
    assert [acc.rank for acc in result.ranks] == ["genus", "species"]
    # Both species mistakes stay inside the family: albus taken for corax is a genus-level near miss,
    # pica taken for albus meets the truth at Corvidae.
    assert {m.level: m.count for m in result.mistakes if m.count} == {"genus": 1, "family": 1}


def test_zero_shot_leaves_out_unranked_images_and_counts_unknown_truth_as_wrong():
    genus_only = CORAX.truncate(Rank.GENUS)
    vectors = np.stack([_unit(1, 0), _unit(0, 1)])
    images = np.stack([_unit(1, 0), _unit(0, 1), _unit(1, 0)])
    truth = [CORAX, genus_only, MORUS]  # the genus-only image has no species; Morus is not a class
    result = zero_shot_at_rank(images, truth, [CORAX, ALBUS], vectors, Rank.SPECIES)
    assert result.accuracy.images == 2
    assert result.accuracy.top1 == 0.5 and result.accuracy.top5 == 0.5
    assert result.predicted[1] == -1
    assert zero_shot_at_rank(images, truth, [], np.zeros((0, 2)), Rank.SPECIES) is None


def test_mistake_depths_by_hand():
    truth = [CORAX, CORAX, CORAX, CORAX, CORAX, DANAUS]
    predicted = [CORAX, ALBUS, PICA, LYNX, MORUS, LYNX]
    depths = {m.level: (m.count, m.fraction) for m in mistake_depths(truth, predicted)}
    assert [m.level for m in mistake_depths(truth, predicted)] == list(MISTAKE_LEVELS)
    # corax is right and not counted; albus: same genus; pica: same family; lynx: birds and mammals meet
    # at the phylum Chordata; morus: another kingdom; danaus vs lynx: the kingdom Animalia.
    assert depths == {"genus": (1, 0.2), "family": (1, 0.2), "order": (0, 0.0), "class": (0, 0.0),
                      "phylum": (1, 0.2), "kingdom": (1, 0.2), LIFE: (1, 0.2)}


def test_mistake_depths_skip_empty_ranks():
    # No order on either side (as NCBI gives Amphiprion): they meet at the class, the empty order is skipped.
    a = Lineage.from_ranks(["Animalia", "Chordata", "Actinopteri", "", "Pomacentridae", "Amphiprion", "ocellaris"])
    b = Lineage.from_ranks(["Animalia", "Chordata", "Actinopteri", "", "Gobiidae", "Gobius", "niger"])
    assert {m.level: m.count for m in mistake_depths([a], [b]) if m.count} == {"class": 1}
    assert sum(m.count for m in mistake_depths([a, b], [a, b])) == 0


def test_centre_normalise_by_hand():
    out = centre_normalise(np.array([[1.0, 0.0], [0.8, 0.6]]), np.array([0.9, 0.3]))
    expected = np.array([[0.1, -0.3], [-0.1, 0.3]]) / np.sqrt(0.1)
    np.testing.assert_allclose(out, expected)


def test_nearest_centroid_by_hand():
    # Support: class 0 at (1, 0), class 1 at (0, 1); mean (0.5, 0.5); centroids (+-0.707, -+0.707).
    support = np.array([[1.0, 0.0], [0.0, 1.0]])
    labels = np.array([0, 1])
    queries = np.array([[0.9, 0.2], [0.6, 0.55], [0.2, 0.9]])
    # (0.6, 0.55) centres to (0.1, 0.05) -> (0.894, 0.447): 1.37 from class 0's centroid, 2.63 from class 1's.
    assert nearest_centroid(support, labels, queries).tolist() == [0, 0, 1]


def test_few_shot_with_a_support_set_by_hand():
    support = np.array([[1.0, 0.0], [0.0, 1.0]])
    queries = np.array([[0.9, 0.2], [0.6, 0.55], [0.2, 0.9]])
    result = few_shot_accuracy(queries, ["a", "b", "b"], shots=1, folds=3, support=support, support_labels=["a", "b"])
    # One support image per class: every fold is the same draw, so the spread is zero.
    assert result.mean == pytest.approx(2 / 3) and result.std == 0.0
    assert (result.classes, result.queries, result.folds, result.shots) == (2, 3, 3, 1)


def test_few_shot_from_the_evaluated_images_separates_clusters_and_leaves_out_small_classes():
    rng = np.random.default_rng(1)
    centres = np.eye(4)
    labels = [name for name in "abc" for _ in range(6)] + ["d"] * 3
    vectors = np.stack([centres["abcd".index(n)] + 0.05 * rng.standard_normal(4) for n in labels])
    five = few_shot_accuracy(vectors, labels, shots=5, folds=5, seed=0)
    assert five.mean == 1.0 and five.std == 0.0
    assert five.classes == 3  # "d" has 3 images, too few for 5 shots and a query
    assert five.queries == 3  # one query left per class
    one = few_shot_accuracy(vectors, labels, shots=1, folds=5, seed=0)
    assert one.classes == 4 and one.queries == 3 * 5 + 2


def test_few_shot_folds_are_seeded_and_spread_is_measured():
    rng = np.random.default_rng(2)
    labels = [name for name in "abcde" for _ in range(8)]
    vectors = rng.standard_normal((len(labels), 6))  # no structure: accuracy varies from fold to fold
    first = few_shot_accuracy(vectors, labels, shots=1, folds=5, seed=7)
    again = few_shot_accuracy(vectors, labels, shots=1, folds=5, seed=7)
    other = few_shot_accuracy(vectors, labels, shots=1, folds=5, seed=8)
    assert first == again
    assert first.std > 0
    assert first.mean != other.mean


def test_few_shot_needs_two_classes_and_valid_arguments():
    assert few_shot_accuracy(np.eye(3), ["a", "a", "b"], shots=1) is None  # "b" has no query left
    with pytest.raises(ValueError, match="at least 1 shot"):
        few_shot_accuracy(np.eye(3), ["a", "a", "b"], shots=0)
    with pytest.raises(ValueError, match="labels"):
        few_shot_accuracy(np.eye(3), ["a", "b"], shots=1)


def test_parse_ranks():
    assert parse_ranks("species, genus,genus") == (Rank.GENUS, Rank.SPECIES)
    assert parse_ranks("all") == tuple(Rank)
    with pytest.raises(ValueError, match="unknown rank 'tribe'"):
        parse_ranks("tribe")


def test_parse_shots():
    assert parse_shots("5,0,1,1") == (0, 1, 5)
    with pytest.raises(ValueError, match="0,1,5"):
        parse_shots("one")
    with pytest.raises(ValueError, match=">= 0"):
        parse_shots("-1")


@pytest.fixture(scope="module")
def tiny_encoder():
    from embed.encoder import Encoder
    from embed.models import load_model

    return Encoder(load_model("tol-tiny"))


def test_zero_shot_on_a_real_model_is_the_nearest_class_text_and_finds_exact_class_texts(tiny_encoder):
    """Top-1 at each rank is the nearest class embedding counted by hand, and an image embedded
    exactly as its species' class text is found at species rank."""
    from training.evaluate import class_embeddings, evaluate_embeddings

    truth = [CORAX, ALBUS, CORAX, ALBUS]  # 8 classes over the seven ranks: few texts to encode
    cache: dict = {}
    classes = class_embeddings(tiny_encoder, truth, "common", cache)
    assert len(cache) == 8
    rng = np.random.default_rng(3)
    images = rng.standard_normal((len(truth), tiny_encoder.dim)).astype(np.float32)
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    zs = zero_shot(images, truth, classes, "common")
    expected = {}
    for rank, (names, vectors) in classes.items():
        nearest = [names[i].key(rank) for i in (images @ vectors.T).argmax(axis=1)]
        expected[rank.label] = np.mean([key == lineage.key(rank) for key, lineage in zip(nearest, truth)])
    assert {acc.rank: acc.top1 for acc in zs.ranks} == pytest.approx(expected)
    assert zs.at("kingdom").top1 == 1.0 and zs.at("species").classes == 2

    names, vectors = classes[Rank.SPECIES]
    assert [lineage.common_name for lineage in names] == ["pied crow", "raven"]  # sorted by key: albus, corax
    exact = zero_shot(vectors, names, classes, "common")
    assert exact.at("species").top1 == 1.0
    assert sum(m.count for m in exact.mistakes) == 0

    # Above species every text type names a taxon by its taxonomic string: a second type only adds its species.
    scientific = class_embeddings(tiny_encoder, truth, "scientific", cache)
    assert len(cache) == 10
    np.testing.assert_array_equal(scientific[Rank.GENUS][1], classes[Rank.GENUS][1])
    assert not np.allclose(scientific[Rank.SPECIES][1], classes[Rank.SPECIES][1])
    only = class_embeddings(tiny_encoder, truth, "scientific", cache, ranks=[Rank.SPECIES, Rank.GENUS])
    assert list(only) == [Rank.GENUS, Rank.SPECIES] and len(cache) == 10
    assert [acc.rank for acc in zero_shot(images, truth, only, "scientific").ranks] == ["genus", "species"]

    few = evaluate_embeddings(tiny_encoder, "tiny", images, truth, shots=(1,))  # few-shot only: no text encoded
    assert few.zero_shot == ()
    assert few.few_shot_for(1).classes == 2 and few.few_shot_for(1).queries == 2
