"""Traits evolve down the tree: seeded by the taxon key alone, with changes that shrink with depth."""
import numpy as np
import pytest

from demo.constants import GENES, HABITATS_OF_PLAN, STYLES, WRAPPING_GENES
from demo.species import available
from demo.traits import _traits_of_names, traits_of
from taxonomy import Lineage, Rank

_LINEAR = np.array([name not in WRAPPING_GENES for name in GENES])


def test_a_taxon_looks_the_same_whatever_else_was_computed():
    lineage = available()[0]
    before = traits_of(lineage)
    _traits_of_names.cache_clear()
    for other in available()[1:50]:
        traits_of(other)
    assert traits_of(lineage) == before
    assert all(0.0 <= gene <= 1.0 for gene in before.genes)


def test_relatives_share_what_their_common_ancestor_fixed():
    pool = available()
    for lineage in pool:
        species, genus = traits_of(lineage), traits_of(lineage, Rank.GENUS)
        assert (species.plan, species.form) == (genus.plan, genus.form)
        assert species.style in STYLES[species.form]
        assert species.habitat in HABITATS_OF_PLAN[species.plan]


def test_changes_shrink_with_depth():
    pool = available()
    steps = {}
    for rank in (Rank.PHYLUM, Rank.CLASS, Rank.SPECIES):
        moves = [np.abs(traits_of(lin, rank).vector() - traits_of(lin, Rank(rank - 1)).vector())[_LINEAR]
                 for lin in pool]
        steps[rank] = float(np.mean(moves))
    assert steps[Rank.PHYLUM] > steps[Rank.CLASS] > 2 * steps[Rank.SPECIES] > 0


def test_kingdoms_get_their_own_body_plans_and_named_classes_their_styles():
    by_binomial = {lineage.binomial: lineage for lineage in available()}
    assert traits_of(by_binomial["Corvus corax"]).style == "wings"
    assert traits_of(by_binomial["Salmo salar"]).style == "fins"
    assert traits_of(by_binomial["Quercus robur"]).plan == "plant"
    assert traits_of(by_binomial["Amanita muscaria"]).plan == "fungus"
    unknown = Lineage.from_ranks(["Protista", "Imaginaria", "Fictiva", "Nullales", "Nullaceae", "Nullus", "nullus"])
    assert traits_of(unknown) == traits_of(unknown)  # a group with no named plan still gets one from its key


def test_an_empty_lineage_has_no_traits():
    with pytest.raises(ValueError, match="empty lineage"):
        traits_of(Lineage())
