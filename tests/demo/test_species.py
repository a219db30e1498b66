"""The demo's real taxa: every committed name resolves through the project's resolver, and the choice spreads."""
from collections import Counter

import pytest

from demo.species import available, choose, is_usable, species_names
from taxonomy import Rank
from taxonomy.resolver import resolve_scientific


def test_every_committed_binomial_resolves_to_a_full_lineage_with_a_common_name():
    names = species_names()
    assert len(names) == len(set(names)) >= 350
    unusable = [name for name in names if not is_usable(resolve_scientific(name))]
    assert unusable == []
    assert len(available()) == len(names)


def test_the_pool_spans_kingdoms_classes_and_genera_of_several_species():
    pool = available()
    kingdoms = Counter(lineage.kingdom for lineage in pool)
    assert {"Animalia", "Plantae", "Fungi"} <= set(kingdoms)
    assert len({lineage.key(Rank.PHYLUM) for lineage in pool}) >= 8
    assert len({lineage.key(Rank.CLASS) for lineage in pool}) >= 20
    per_genus = Counter(lineage.key(Rank.GENUS) for lineage in pool)
    assert sum(count >= 2 for count in per_genus.values()) / len(per_genus) >= 0.75
    genera_per_family = Counter(key.rsplit("/", 1)[0] for key in per_genus)
    assert sum(count >= 2 for count in genera_per_family.values()) >= 30


def test_choice_is_seeded_spread_and_not_a_prefix():
    first, again, other = choose(300, seed=0), choose(300, seed=0), choose(300, seed=1)
    assert first == again
    assert first != other
    assert first != list(available()[:300])
    assert len({lineage.key() for lineage in first}) == 300


def test_a_small_choice_spans_the_kingdoms_with_genera_of_two():
    chosen = choose(12, seed=0)
    assert {lineage.kingdom for lineage in chosen} == {"Animalia", "Plantae", "Fungi"}
    per_genus = Counter(lineage.key(Rank.GENUS) for lineage in chosen)
    assert set(per_genus.values()) == {2}
    assert len({lineage.key(Rank.CLASS) for lineage in chosen}) >= 5


@pytest.mark.parametrize("count", [0, 10_000])
def test_a_count_out_of_range_names_the_range(count):
    with pytest.raises(ValueError, match=f"between 1 and {len(available())}"):
        choose(count, seed=0)
