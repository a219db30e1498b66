"""Probabilities and consistent predictions from scored taxa (embed.predict): pure numpy, no store, no model."""
from __future__ import annotations

import math

import numpy as np
import pytest

from embed.predict import (
    METHODS, Identification, ScoredTaxon, TaxonPrediction, own_vectors, prediction_tree, pybioclip_columns,
    softmax, sum_species, validate_method,
)
from taxonomy import Lineage, Rank

# Family Corvidae has two genera with 0.3 each; Sulidae one genus with 0.4. Summed, Corvidae wins
# the family rank (0.6) while the best single genus (Morus, 0.4) lies in Sulidae.
PICA = Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia"],
                          "black-billed magpie")
CYANOCITTA = Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Cyanocitta",
                                 "cristata"], "blue jay")
MORUS = Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Suliformes", "Sulidae", "Morus", "bassanus"],
                           "northern gannet")
CLOWNFISH = Lineage.from_ranks(["Animalia", "Chordata", "Actinopteri", "", "Pomacentridae", "Amphiprion",
                                "ocellaris"], "clown anemonefish")
MULBERRY = Lineage.from_ranks(["Plantae", "Tracheophyta", "Magnoliopsida", "Rosales", "Moraceae", "Morus", "alba"])


def species(*pairs: tuple[Lineage, float]) -> list[ScoredTaxon]:
    """Species whose softmax at logit scale 1 gives exactly the probabilities given (cosine = log p)."""
    return [ScoredTaxon(lineage, Rank.SPECIES, math.log(p)) for lineage, p in pairs]


def is_inside(child: TaxonPrediction, parent: TaxonPrediction) -> bool:
    return child.taxon.startswith(parent.taxon + "/") and parent.taxon in child.lineage.keys()


def assert_consistent(found: Identification) -> None:
    ranks = [p.rank for p in found.path]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    for parent, child in zip(found.path, found.path[1:]):
        assert is_inside(child, parent), f"{child.taxon} is not inside {parent.taxon}"


def test_softmax_is_stable_and_sums_to_one():
    probs = softmax([0.31, 0.30, -0.2], 100.0)
    assert probs.sum() == pytest.approx(1.0)
    assert probs[0] > probs[1] > probs[2]
    assert np.isfinite(softmax([1000.0, 999.0], 100.0)).all()
    assert softmax([], 100.0).size == 0


def test_sum_adds_species_probabilities_up_each_lineage():
    found = sum_species(species((PICA, 0.3), (CYANOCITTA, 0.3), (MORUS, 0.4)), logit_scale=1.0, k=5)
    family = {p.name: p.score for p in found.top(Rank.FAMILY)}
    assert family == pytest.approx({"Corvidae": 0.6, "Sulidae": 0.4})
    assert [p.score for p in found.top(Rank.KINGDOM)] == pytest.approx([1.0])
    assert found.top(Rank.SPECIES)[0].common_name == "northern gannet"


def test_sum_path_is_consistent_where_per_rank_argmax_is_not():
    found = sum_species(species((PICA, 0.3), (CYANOCITTA, 0.3), (MORUS, 0.4)), logit_scale=1.0)
    best_genus_alone = found.top(Rank.GENUS)[0]
    assert best_genus_alone.name == "Morus"  # the best genus on its own lies in Sulidae ...
    assert found.at(Rank.FAMILY).name == "Corvidae"  # ... but the best family is Corvidae,
    assert found.at(Rank.GENUS).name in {"Pica", "Cyanocitta"}  # so the path's genus is a corvid
    assert found.at(Rank.GENUS).score == pytest.approx(0.3)
    assert_consistent(found)
    assert [p.rank for p in found.path] == list(Rank)


def test_sum_path_skips_an_empty_rank_but_keeps_the_ranks_below():
    found = sum_species(species((CLOWNFISH, 0.7), (PICA, 0.3)), logit_scale=1.0)
    assert found.at(Rank.ORDER) is None
    assert found.at(Rank.FAMILY).name == "Pomacentridae"
    assert found.at(Rank.SPECIES).name == "Amphiprion ocellaris"
    assert_consistent(found)
    assert [p.name for p in found.top(Rank.ORDER)] == ["Passeriformes"]  # no empty-named order is listed


def test_homonym_genera_stay_apart():
    found = sum_species(species((MORUS, 0.5), (MULBERRY, 0.5)), logit_scale=1.0)
    genera = found.top(Rank.GENUS)
    assert [g.name for g in genera] == ["Morus", "Morus"]
    assert {g.taxon.split("/")[0] for g in genera} == {"Animalia", "Plantae"}
    assert [g.score for g in genera] == pytest.approx([0.5, 0.5])


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def scored(lineage: Lineage, rank: Rank, cosine: float) -> ScoredTaxon:
    return ScoredTaxon(lineage.truncate(rank), rank, cosine)


def rank_vectors_case() -> dict[Rank, list[ScoredTaxon]]:
    """Orders 0.5 / 0.1; genera Pica 0.2, Cyanocitta 0.4 (both Corvidae), Morus 0.9 (alone in Sulidae)."""
    lineages = (PICA, CYANOCITTA, MORUS)
    per_rank = {rank: [scored(lin, rank, 0.3) for lin in lineages] for rank in Rank}
    per_rank[Rank.ORDER] = [scored(PICA, Rank.ORDER, 0.5), scored(MORUS, Rank.ORDER, 0.1)]
    per_rank[Rank.GENUS] = [scored(PICA, Rank.GENUS, 0.2), scored(CYANOCITTA, Rank.GENUS, 0.4),
                            scored(MORUS, Rank.GENUS, 0.9)]
    return per_rank


def test_own_vectors_condition_each_rank_on_its_parent():
    found = own_vectors(rank_vectors_case(), logit_scale=10.0, k=3)
    genus = {p.name: p.score for p in found.top(Rank.GENUS)}
    # P(Cyanocitta) = P(Passeriformes) x softmax(4, 2) among the corvid genera; Morus is Sulidae's only genus.
    assert genus == pytest.approx({"Cyanocitta": sigmoid(4) * sigmoid(2), "Pica": sigmoid(4) * sigmoid(-2),
                                   "Morus": sigmoid(-4)})
    assert [p.name for p in found.top(Rank.GENUS)] == ["Cyanocitta", "Pica", "Morus"]  # Morus's own vector is closest
    assert found.at(Rank.GENUS).name == "Cyanocitta"
    assert_consistent(found)
    for p in found.known.values():  # never more probable than the parent; children add up to it
        parent = found.known.get(p.lineage.key(p.rank).rsplit("/", 1)[0])
        if parent is not None:
            assert p.score <= parent.score + 1e-12
    assert genus["Cyanocitta"] + genus["Pica"] == pytest.approx(found.known[PICA.key(Rank.FAMILY)].score)


def test_prediction_tree_always_draws_the_headline():
    found = sum_species(species((PICA, 0.3), (CYANOCITTA, 0.3), (MORUS, 0.4)), logit_scale=1.0, k=1)
    assert found.top(Rank.SPECIES)[0].name == "Morus bassanus"
    assert found.headline().name == "Cyanocitta cristata"  # top-down: Corvidae (0.6), then the first of equals
    rows = prediction_tree(found, Rank.SPECIES, k=1)
    drawn = {row.prediction.name: row for row in rows}
    assert {"Morus bassanus", "Cyanocitta cristata"} <= set(drawn)
    assert drawn["Cyanocitta cristata"].on_path and not drawn["Morus bassanus"].on_path
    assert drawn["Corvidae"].prediction.score == pytest.approx(0.6)


def test_prediction_tree_of_rank_vectors_never_grows_down():
    found = own_vectors(rank_vectors_case(), logit_scale=10.0, k=2)
    rows = prediction_tree(found, Rank.GENUS, k=2)
    stack: list[float] = []
    for row in rows:
        del stack[row.depth:]
        assert all(row.prediction.score <= s + 1e-12 for s in stack)
        stack.append(row.prediction.score)
    assert [r.prediction.name for r in rows if r.on_path][-1] == "Cyanocitta"


def test_own_vectors_skips_a_rank_with_nothing_inside():
    per_rank = {rank: [ScoredTaxon(CLOWNFISH.truncate(rank), rank, 0.2)] for rank in Rank if CLOWNFISH.get(rank)}
    found = own_vectors(per_rank, logit_scale=100.0)
    assert [p.rank for p in found.path] == [r for r in Rank if r != Rank.ORDER]
    assert_consistent(found)


def test_pybioclip_columns_and_rows():
    assert pybioclip_columns(Rank.SPECIES) == [
        "file_name", "kingdom", "phylum", "class", "order", "family", "genus", "species_epithet", "species",
        "common_name", "score",
    ]
    assert pybioclip_columns(Rank.GENUS) == [
        "file_name", "kingdom", "phylum", "class", "order", "family", "genus", "score"]
    found = sum_species(species((PICA, 0.75), (MORUS, 0.25)), logit_scale=1.0)
    row = found.top(Rank.SPECIES)[0].pybioclip_row("magpie.jpg")
    assert list(row) == pybioclip_columns(Rank.SPECIES)
    assert row == {
        "file_name": "magpie.jpg", "kingdom": "Animalia", "phylum": "Chordata", "class": "Aves",
        "order": "Passeriformes", "family": "Corvidae", "genus": "Pica", "species_epithet": "hudsonia",
        "species": "Pica hudsonia", "common_name": "black-billed magpie", "score": pytest.approx(0.75),
    }
    genus_row = found.top(Rank.GENUS)[0].pybioclip_row("magpie.jpg")
    assert list(genus_row) == pybioclip_columns(Rank.GENUS)


def test_prediction_tree_nests_top_taxa_under_their_ancestors():
    found = sum_species(species((PICA, 0.3), (CYANOCITTA, 0.3), (MORUS, 0.4)), logit_scale=1.0, k=3)
    rows = prediction_tree(found, Rank.GENUS, k=3)
    drawn = [(row.depth, row.prediction.name, round(row.prediction.score, 6)) for row in rows]
    assert drawn == [
        (0, "Animalia", 1.0), (1, "Chordata", 1.0), (2, "Aves", 1.0),
        (3, "Passeriformes", 0.6), (4, "Corvidae", 0.6), (5, "Cyanocitta", 0.3), (5, "Pica", 0.3),
        (3, "Suliformes", 0.4), (4, "Sulidae", 0.4), (5, "Morus", 0.4),
    ]
    on_path = [row.prediction.name for row in rows if row.on_path]
    assert on_path == [p.name for p in found.path if p.rank <= Rank.GENUS]


def test_unknown_method_names_the_allowed_ones():
    with pytest.raises(ValueError, match="sum, taxa"):
        validate_method("argmax")
    assert METHODS == ("sum", "taxa")


def test_trusted_is_the_deepest_entry_of_the_best_guess_that_reaches_p():
    from embed.predict import trust_row

    found = sum_species(species((PICA, 0.3), (CYANOCITTA, 0.3), (MORUS, 0.4)), logit_scale=1.0)
    assert found.trusted(0.5).name == "Corvidae" and found.trusted(0.5).score == pytest.approx(0.6)
    assert found.trusted(0.7).name == "Aves"
    assert found.trusted(0.29).name == "Cyanocitta cristata"
    assert found.trusted(0.5, Rank.ORDER).name == "Passeriformes"
    row = trust_row("a.jpg", found.trusted(0.5))
    assert row["family"] == "Corvidae" and row["genus"] == row["species"] == row["common_name"] == ""
    assert (row["rank"], row["score"]) == ("family", pytest.approx(0.6))
    split = sum_species(species((PICA, 0.5), (MULBERRY, 0.5)), logit_scale=1.0)
    assert split.trusted(0.9) is None and trust_row("b.jpg", None)["rank"] == ""
