"""A taxon at one rank, and the enumeration of every taxon of a set of lineages."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from taxonomy.constants import Rank
from taxonomy.lineage import Lineage
from taxonomy.text import caption


@dataclass(frozen=True)
class Taxon:
    """One node of the tree: the lineage truncated at `rank`, with its image count."""

    lineage: Lineage
    rank: Rank
    n_images: int = 0

    @property
    def key(self) -> str:
        return self.lineage.key(self.rank)

    @property
    def name(self) -> str:
        """The name at its own rank: `Pica hudsonia` for a species, `Corvidae` for a family."""
        return self.lineage.binomial if self.rank == Rank.SPECIES else self.lineage.get(self.rank)

    @property
    def parent(self) -> str:
        """The key of the nearest named ancestor, "" for a kingdom."""
        ancestors = self.lineage.keys()[:-1]
        return ancestors[-1] if ancestors else ""

    @property
    def depth(self) -> int:
        return int(self.rank)

    @property
    def common_name(self) -> str:
        return self.lineage.common_name

    def text(self, text_type: str) -> str:
        """What is embedded for this taxon (SPEC §4)."""
        return caption(self.lineage, text_type)


def taxa_of(lineages: Iterable[Lineage]) -> list[Taxon]:
    """Every named taxon at every rank of `lineages`, counted once per lineage given.

    Pass one lineage per image to get image counts. Sorted by rank, then key.
    """
    counts: Counter[tuple[str, Rank]] = Counter()
    first: dict[tuple[str, Rank], Lineage] = {}
    for lineage in lineages:
        deepest = lineage.deepest_rank
        if deepest is None:
            continue
        for rank in Rank:
            if rank > deepest:
                break
            if not lineage.get(rank):
                continue
            ident = (lineage.key(rank), rank)
            counts[ident] += 1
            if ident not in first or (rank == Rank.SPECIES and not first[ident].common_name):
                first[ident] = lineage.truncate(rank)
    return sorted(
        (Taxon(first[ident], ident[1], counts[ident]) for ident in counts),
        key=lambda t: (t.rank, t.key),
    )
