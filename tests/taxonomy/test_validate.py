"""Inconsistent lineages: conflicts by name within a kingdom, strict and lenient reconciliation."""
import logging

import pytest

from taxonomy import Lineage, Rank
from taxonomy.resolver import resolve_scientific
from taxonomy.validate import Conflict, InconsistentLineageError, Placement, find_conflicts, reconcile

CORVIDAE = "Animalia/Chordata/Aves/Passeriformes/Corvidae"
LANIIDAE = "Animalia/Chordata/Aves/Passeriformes/Laniidae"


def _placed(family: str, epithet: str) -> Lineage:
    return Lineage("Animalia", "Chordata", "Aves", "Passeriformes", family, "Pica", epithet)


@pytest.fixture(scope="module")
def rows() -> list[tuple[str, Lineage]]:
    """Real NCBI lineages, plus one row that puts genus Pica under the shrikes."""
    names = ["Pica hudsonia", "Pica pica", "Morus alba", "Morus bassanus", "Lanius collurio", "Pica hudsonia"]
    real = [(f"catalog.csv:{line}", resolve_scientific(name)) for line, name in enumerate(names, start=2)]
    return real + [("catalog.csv:8", _placed("Laniidae", "nuttalli"))]


def test_a_genus_under_two_families_is_one_conflict(rows):
    assert find_conflicts(rows) == [
        Conflict(Rank.GENUS, "Pica", "Animalia", (
            Placement(CORVIDAE, ("catalog.csv:2", "catalog.csv:3", "catalog.csv:7")),
            Placement(LANIIDAE, ("catalog.csv:8",)),
        ))
    ]


def test_homonyms_across_kingdoms_are_not_conflicts(rows):
    morus = [row for row in rows if row[1].genus == "Morus"]
    assert {lineage.kingdom for _, lineage in morus} == {"Animalia", "Plantae"}
    assert find_conflicts(morus) == []


def test_strict_raises_with_every_conflict_and_its_rows(rows):
    with pytest.raises(InconsistentLineageError) as raised:
        reconcile(rows, strict=True)
    message = str(raised.value)
    assert "genus 'Pica' in Animalia is placed under 2 parents" in message
    assert f"{CORVIDAE} (3 rows: catalog.csv:2, catalog.csv:3, catalog.csv:7)" in message
    assert f"{LANIIDAE} (1 row: catalog.csv:8)" in message
    assert raised.value.conflicts == find_conflicts(rows)


def test_lenient_keeps_the_majority_parent_and_warns_once(rows, caplog):
    with caplog.at_level(logging.WARNING, logger="taxonomy.validate"):
        fixed, conflicts = reconcile(rows, strict=False)
    assert len(conflicts) == 1 and conflicts[0].winner.parent == CORVIDAE
    assert [record.levelname for record in caplog.records] == ["WARNING"]
    assert f"keeping {CORVIDAE}" in caplog.records[0].getMessage()
    assert fixed[-1] == ("catalog.csv:8", _placed("Corvidae", "nuttalli"))
    assert fixed[:-1] == rows[:-1]
    assert find_conflicts(fixed) == []


def test_a_tie_goes_to_the_first_parent_seen():
    rows = [("a:1", _placed("Laniidae", "pica")), ("a:2", _placed("Corvidae", "pica"))]
    fixed, conflicts = reconcile(rows, strict=False)
    assert conflicts[0].winner == Placement(LANIIDAE, ("a:1",))
    assert [lineage.family for _, lineage in fixed] == ["Laniidae", "Laniidae"]


def test_a_higher_conflict_is_reported_once_not_for_each_genus_below():
    rows = [
        ("a:1", Lineage("Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "pica")),
        ("a:2", Lineage("Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Corvus", "corax")),
        ("a:3", Lineage("Animalia", "Chordata", "Aves", "Corviformes", "Corvidae", "Pica", "hudsonia")),
    ]
    conflicts = find_conflicts(rows)
    assert [(conflict.rank, conflict.name) for conflict in conflicts] == [(Rank.FAMILY, "Corvidae")]
    fixed, _ = reconcile(rows, strict=False)
    assert fixed[2][1].order == "Passeriformes" and fixed[2][1].species == "hudsonia"


def test_a_missing_rank_places_a_name_under_another_parent():
    with_order = resolve_scientific("Amphiprion ocellaris")
    assert with_order.order == ""
    rows = [("a:1", with_order), ("a:2", Lineage(*with_order.names[:3], "Perciformes", *with_order.names[4:]))]
    conflict, = find_conflicts(rows)
    assert conflict.rank == Rank.FAMILY and [p.parent for p in conflict.placements] == [
        "Animalia/Chordata/Actinopteri/", "Animalia/Chordata/Actinopteri/Perciformes",
    ]


def test_long_row_lists_are_shortened():
    rows = [(f"big.csv:{i}", _placed("Corvidae", "pica")) for i in range(2, 27)]
    rows.append(("big.csv:27", _placed("Laniidae", "pica")))
    message = find_conflicts(rows)[0].describe()
    assert "(25 rows: big.csv:2, big.csv:3," in message and "and 15 more" in message


def test_bad_rows_are_named():
    with pytest.raises(TypeError, match=r"row 1 is .*expected a \(reference, Lineage\) pair"):
        find_conflicts([("a:1", Lineage("Animalia")), ("a:2", "Animalia")])
