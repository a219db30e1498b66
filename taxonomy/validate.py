"""Inconsistent lineages: one name placed under two different parents inside one kingdom.

Keys make "one key, two parents" impossible, so a conflict is defined by name: genus Pica under
Corvidae in some rows and under Laniidae in others, both in Animalia. The same name in two
kingdoms (genus Morus in Plantae and Animalia) is a legitimate homonym, not a conflict.

Ranks are checked from the top down and each conflict is settled before the next rank is looked
at, so a family placed under two orders is reported once, not again for each of its genera.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from taxonomy.constants import VALIDATE_ROWS_SHOWN, Rank
from taxonomy.lineage import Lineage, parse_key

logger = logging.getLogger(__name__)

Row = tuple[str, Lineage]  # (reference such as "catalog.csv:17", lineage)


@dataclass(frozen=True)
class Placement:
    """One parent a name was placed under, and the rows that placed it there."""

    parent: str  # key of the lineage just above the rank, empty ranks kept
    rows: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.rows)

    def describe(self) -> str:
        shown = ", ".join(self.rows[:VALIDATE_ROWS_SHOWN])
        more = f" and {self.count - VALIDATE_ROWS_SHOWN} more" if self.count > VALIDATE_ROWS_SHOWN else ""
        return f"{self.parent or '(no parent)'} ({self.count} row{'s' if self.count != 1 else ''}: {shown}{more})"


@dataclass(frozen=True)
class Conflict:
    """A name at one rank placed under several parents in one kingdom; the majority placement first."""

    rank: Rank
    name: str
    kingdom: str
    placements: tuple[Placement, ...]

    @property
    def winner(self) -> Placement:
        """The placement lenient reconciliation keeps: most rows, the first seen on a tie."""
        return self.placements[0]

    def describe(self) -> str:
        parents = "; ".join(placement.describe() for placement in self.placements)
        return (
            f"{self.rank.label} {self.name!r} in {self.kingdom or '(no kingdom)'} is placed under "
            f"{len(self.placements)} parents: {parents}"
        )


class InconsistentLineageError(ValueError):
    """Raised by strict reconciliation; the message lists every conflict with its rows."""

    def __init__(self, conflicts: list[Conflict]) -> None:
        self.conflicts = conflicts
        lines = "\n".join(f"  - {conflict.describe()}" for conflict in conflicts)
        super().__init__(
            f"{len(conflicts)} inconsistent lineage{'s' if len(conflicts) != 1 else ''} "
            f"(a name must have one parent within a kingdom):\n{lines}\n"
            "Fix the catalog, or reconcile leniently to keep the majority parent of each name."
        )


def _name_at(lineage: Lineage, rank: Rank) -> str:
    """The name a rank is known by within a kingdom: the binomial for a species."""
    return lineage.binomial if rank == Rank.SPECIES else lineage.get(rank)


def _with_ancestors(lineage: Lineage, rank: Rank, ancestors: tuple[str, ...]) -> Lineage:
    """`lineage` with every rank above `rank` replaced by `ancestors`."""
    return Lineage(*ancestors, *lineage.names[rank:], common_name=lineage.common_name)


def _check_rows(rows: Iterable[Row]) -> list[Row]:
    checked = list(rows)
    for position, row in enumerate(checked):
        if not (isinstance(row, tuple) and len(row) == 2 and isinstance(row[0], str)
                and isinstance(row[1], Lineage)):
            raise TypeError(
                f"row {position} is {row!r}; expected a (reference, Lineage) pair such as ('catalog.csv:2', lineage)"
            )
    return checked


def _settle(rows: list[Row]) -> tuple[list[Row], list[Conflict]]:
    """Find conflicts rank by rank, rewriting each losing row to the winner before the next rank."""
    references = [reference for reference, _ in rows]
    lineages = [lineage for _, lineage in rows]
    conflicts: list[Conflict] = []
    for rank in Rank:
        if rank == Rank.KINGDOM:
            continue
        groups: dict[tuple[str, str], dict[str, list[int]]] = {}
        for index, lineage in enumerate(lineages):
            name = _name_at(lineage, rank)
            if name:
                placements = groups.setdefault((lineage.kingdom, name), {})
                placements.setdefault(lineage.key(Rank(rank - 1)), []).append(index)
        for (kingdom, name), placements in groups.items():
            if len(placements) < 2:
                continue
            ordered = sorted(placements.items(), key=lambda item: -len(item[1]))  # stable: first seen wins ties
            conflicts.append(Conflict(
                rank, name, kingdom,
                tuple(Placement(parent, tuple(references[i] for i in indices)) for parent, indices in ordered),
            ))
            ancestors = parse_key(ordered[0][0]).names[:rank]
            for _, indices in ordered[1:]:
                for index in indices:
                    lineages[index] = _with_ancestors(lineages[index], rank, ancestors)
    return list(zip(references, lineages)), conflicts


def find_conflicts(rows: Iterable[Row]) -> list[Conflict]:
    """Every conflict among `rows`, highest rank first (cascades of a settled conflict are not repeated)."""
    return _settle(_check_rows(rows))[1]


def reconcile(rows: Iterable[Row], strict: bool) -> tuple[list[Row], list[Conflict]]:
    """Check `rows` for inconsistent lineages.

    Args:
        rows: (reference, lineage) pairs; the reference (`catalog.csv:17`) is what messages name.
        strict: raise on any conflict instead of repairing.

    Returns:
        The rows, each losing row rewritten to the majority lineage above the conflicting rank,
        and the conflicts found (one `logger.warning` each).

    Raises:
        InconsistentLineageError: when `strict` and any conflict exists.
    """
    settled, conflicts = _settle(_check_rows(rows))
    if conflicts and strict:
        raise InconsistentLineageError(conflicts)
    for conflict in conflicts:
        logger.warning("%s; keeping %s", conflict.describe(), conflict.winner.parent or "(no parent)")
    return settled, conflicts
