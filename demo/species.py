"""The real taxa of the demo collection: a committed list of NCBI binomials, resolved offline.

`demo/data/species.json` holds ~550 binomials: for each of ~150 curated genera over three kingdoms,
16 animal, 5 plant and 5 fungal classes, its seed species and the NCBI species with a common name
(lowest tax ids first, at most four per genus). Each is resolved through `taxonomy.resolver`; only
those with every rank from kingdom to genus and a common name are kept.

`choose` spreads a smaller collection over the tree: genera are interleaved kingdom by kingdom,
phylum by phylum and so on down (a seeded order at each level), and each genus gets two species
before any gets a third (genera of a single species join from the second pass on), so small collections
still span the kingdoms and hold genera of several species.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from demo.constants import FIRST_PASS_PER_GENUS, LATER_PASS_PER_GENUS, SPECIES_DATA
from demo.traits import keyed_rng
from taxonomy import Lineage, Rank

logger = logging.getLogger(__name__)


def species_names() -> tuple[str, ...]:
    """The committed binomials, in file order."""
    data = json.loads((Path(__file__).parent / SPECIES_DATA).read_text(encoding="utf-8"))
    return tuple(data["species"])


def is_usable(lineage: Lineage | None) -> bool:
    """Kingdom to epithet all named, and a common name."""
    return lineage is not None and all(lineage.names) and bool(lineage.common_name)


@lru_cache(maxsize=1)
def available() -> tuple[Lineage, ...]:
    """Every committed species that resolves to a full NCBI lineage with a common name."""
    from taxonomy.resolver import resolve_scientific  # loads the NCBI indexes

    found: dict[str, Lineage] = {}
    for name in species_names():
        lineage = resolve_scientific(name)
        if not is_usable(lineage):
            logger.warning("skipping %s: no full NCBI lineage with a common name (%s)", name, lineage)
            continue
        found.setdefault(lineage.key(), lineage)
    return tuple(found.values())


def _spread(genera: list[list[Lineage]], rank: Rank, seed: int) -> list[list[Lineage]]:
    """Genera ordered so that consecutive ones differ as high in the tree as possible."""
    if rank >= Rank.GENUS:
        return genera
    groups: dict[str, list[list[Lineage]]] = {}
    for genus in genera:
        groups.setdefault(genus[0].key(rank), []).append(genus)
    keys = sorted(groups)
    order = keyed_rng("spread", seed, rank.label, *keys).permutation(len(keys))
    queues = [_spread(groups[keys[i]], Rank(rank + 1), seed) for i in order]
    merged: list[list[Lineage]] = []
    for turn in range(max(len(queue) for queue in queues)):
        merged.extend(queue[turn] for queue in queues if turn < len(queue))
    return merged


def choose(count: int, seed: int, pool: Sequence[Lineage] | None = None) -> list[Lineage]:
    """`count` species spread across the tree, the same for the same seed.

    Raises:
        ValueError: when `count` is not between 1 and the number of species available.
    """
    pool = available() if pool is None else tuple(pool)
    if not 1 <= count <= len(pool):
        raise ValueError(f"cannot choose {count} species: between 1 and {len(pool)} are available")
    by_genus: dict[str, list[Lineage]] = {}
    for lineage in sorted(pool, key=lambda lin: lin.key()):
        by_genus.setdefault(lineage.key(Rank.GENUS), []).append(lineage)
    genera = []
    for key, members in sorted(by_genus.items()):
        order = keyed_rng("species", seed, key).permutation(len(members))
        genera.append([members[i] for i in order])
    genera = _spread(genera, Rank.KINGDOM, seed)
    chosen: list[Lineage] = []
    taken = [0] * len(genera)
    quota = FIRST_PASS_PER_GENUS
    while len(chosen) < count:
        for g, members in enumerate(genera):
            if quota == FIRST_PASS_PER_GENUS and len(members) < quota:
                continue  # a genus of one species waits for the second pass
            extra = members[taken[g]:quota][: count - len(chosen)]
            chosen.extend(extra)
            taken[g] += len(extra)
            if len(chosen) == count:
                break
        quota += LATER_PASS_PER_GENUS
    logger.info("chose %d species in %d genera", len(chosen), len({lin.key(Rank.GENUS) for lin in chosen}))
    return chosen
