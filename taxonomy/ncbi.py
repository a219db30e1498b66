"""Every taxon of an NCBI clade at the seven ranks, offline from taxoniq (SPEC §2 reference taxa).

The clade is walked top-down once, each node's seven-rank lineage carried down from its parent
(resolving each species' lineage from scratch would read its ~30 ancestors again). Nodes of other
NCBI ranks (subfamily, no rank, species group) are walked through; nothing below species is read.
Species whose names are not real species (`Felis sp.`, `Felis chaus x Felis catus`, `Lynx
environmental sample`) are left out and counted by reason.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import taxoniq

from taxonomy.constants import (
    NCBI_DOMAIN_RANKS, NCBI_EXCLUDED_WORDS, NCBI_NOT_BINOMIAL, NCBI_RANKS, NCBI_SPECIES_EPITHET, Rank,
)
from taxonomy.lineage import Lineage
from taxonomy.resolver import _common_index, _common_key, _taxon, close_matches, scientific_tax_ids
from taxonomy.taxon import Taxon, taxa_of
from toolkit.cli import Progress

logger = logging.getLogger(__name__)

_EPITHET = re.compile(NCBI_SPECIES_EPITHET)
_SPECIES = "species"
_PROGRESS_EVERY = 5000  # nodes between progress reports


@dataclass(frozen=True)
class CladeTaxa:
    """The taxa of some NCBI clades and their ancestors, with NCBI's common names at every rank."""

    clades: tuple[str, ...]  # the key of each clade asked for
    taxa: list[Taxon]
    skipped: dict[str, int] = field(default_factory=dict)  # species left out, by reason

    def count(self, rank: Rank) -> int:
        return sum(1 for t in self.taxa if t.rank == rank)


def clade_ids(name: str) -> list[int]:
    """NCBI ids of a clade given as a taxid, a scientific name (every genus homonym) or a common name.

    Raises:
        ValueError: unknown, naming the closest known names.
    """
    query = " ".join(str(name).split())
    if query.isdigit():
        try:
            _taxon(int(query)).scientific_name
        except (KeyError, taxoniq.NoValue):
            raise ValueError(f"unknown NCBI taxid {query}") from None
        return [int(query)]
    ids = scientific_tax_ids(query, homonyms=True) or list(_common_index()[0].get(_common_key(query), ()))
    if not ids:
        close = close_matches(query)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise ValueError(f"unknown NCBI clade {query!r} (not a scientific name, common name or taxid){hint}")
    return ids


def _common_name(node: taxoniq.Taxon) -> str:
    try:
        return node.common_name
    except (taxoniq.NoValue, KeyError):
        return ""


def species_problem(name: str, genus: str) -> str:
    """Why an NCBI species name is not a real species, or "" when it is `<genus> <epithet>`."""
    words = name.split()
    folded = [w.lower() for w in words]
    for reason, markers in NCBI_EXCLUDED_WORDS.items():
        if any(marker in folded for marker in markers) or (reason == "environmental" and "environmental" in name):
            return reason
    if len(words) != 2 or (genus and words[0] != genus) or not _EPITHET.fullmatch(words[1]):
        return NCBI_NOT_BINOMIAL
    return ""


@dataclass
class _Walk:
    lineages: dict[str, Lineage] = field(default_factory=dict)  # deepest key -> lineage (common name of the node)
    skipped: Counter[str] = field(default_factory=Counter)
    nodes: int = 0


def _start(tax_id: int) -> tuple[list[str], str]:
    """The seven rank names above a node (kingdom from a kingdom rank only), and its domain."""
    names = [""] * len(Rank)
    domain = ""
    for ancestor in _taxon(tax_id).ranked_lineage[1:]:  # the parent first; the clade itself is walked
        rank_name = ancestor.rank.name
        if rank_name in NCBI_RANKS and not names[NCBI_RANKS[rank_name]]:
            names[NCBI_RANKS[rank_name]] = ancestor.scientific_name
        elif rank_name in NCBI_DOMAIN_RANKS:
            domain = ancestor.scientific_name
    return names, domain


def _lineage(names: list[str], domain: str, common: str) -> Lineage:
    ranks = list(names)
    ranks[Rank.KINGDOM] = ranks[Rank.KINGDOM] or domain
    genus, species = ranks[Rank.GENUS], ranks[Rank.SPECIES]
    if genus and species.startswith(genus + " "):
        ranks[Rank.SPECIES] = species[len(genus) + 1:]
    return Lineage.from_ranks(ranks, common)


def _walk(root: int, walk: _Walk, progress: Progress | None) -> str:
    """Collect every ranked node under `root` (itself included); returns the root's key."""
    names, domain = _start(root)
    root_key = ""
    stack: list[tuple[int, list[str], str]] = [(root, names, domain)]
    while stack:
        tax_id, above, domain = stack.pop()
        node = _taxon(tax_id)
        rank_name = node.rank.name
        name = node.scientific_name
        names = list(above)
        walk.nodes += 1
        if progress is not None and walk.nodes % _PROGRESS_EVERY == 0:
            progress(0.0, f"ncbi: {walk.nodes} nodes read, {len(walk.lineages)} taxa")
        if rank_name in NCBI_DOMAIN_RANKS:
            domain = name
        elif rank_name in NCBI_RANKS:
            rank = NCBI_RANKS[rank_name]
            if rank == Rank.SPECIES:
                reason = species_problem(name, names[Rank.GENUS])
                if reason:
                    walk.skipped[reason] += 1
                    continue
            elif " " in name:  # `Candidatus Foo`, `unclassified Bar` given a rank
                walk.skipped[f"{rank.label} not a single name"] += 1
                continue
            names[rank] = name
            for lower in Rank:
                if lower > rank:
                    names[lower] = ""
            lineage = _lineage(names, domain, _common_name(node))
            walk.lineages[lineage.key()] = lineage
            root_key = root_key or (lineage.key() if tax_id == root else "")
            if rank == Rank.SPECIES:
                continue  # subspecies and strains map to their species
        try:
            children = node.child_nodes
        except (KeyError, taxoniq.NoValue):
            children = []
        stack.extend((child.tax_id, names, domain) for child in reversed(children))
    return root_key


def clade_taxa(clades: Sequence[str], progress: Progress | None = None) -> CladeTaxa:
    """Every taxon under `clades` (names or taxids) at the seven ranks, with their ancestors.

    A taxon's `common_name` is NCBI's, at every rank (SPEC §4's texts use it at species only).

    Raises:
        ValueError: a clade NCBI does not know (with close matches).
    """
    walk = _Walk()
    keys: list[str] = []
    for clade in clades:
        for tax_id in clade_ids(clade):
            key = _walk(tax_id, walk, progress)
            keys.append(key or _taxon(tax_id).scientific_name)  # a clade of no seven-rank rank
            ancestors = _taxon(tax_id).ranked_lineage[1:]
            for ancestor in ancestors:  # the common names of the ranks above the clade
                lineage = walk_lineage_of(ancestor.tax_id)
                if lineage is not None and lineage.key() not in walk.lineages:
                    walk.lineages[lineage.key()] = lineage
    common = {key: lineage.common_name for key, lineage in walk.lineages.items()}
    taxa = [
        Taxon(replace(t.lineage, common_name=common.get(t.key, "")), t.rank) if t.rank != Rank.SPECIES else t
        for t in taxa_of(walk.lineages.values())
    ]
    skipped = dict(sorted(walk.skipped.items()))
    logger.info("NCBI %s: %d nodes read, %d taxa kept, species left out: %s", ", ".join(clades), walk.nodes,
                len(taxa), ", ".join(f"{n} {reason}" for reason, n in skipped.items()) or "none")
    return CladeTaxa(tuple(keys), [replace(t, n_images=0) for t in taxa], skipped)


def walk_lineage_of(tax_id: int) -> Lineage | None:
    """The lineage of a ranked NCBI node (None for a node of another rank), with its common name."""
    node = _taxon(tax_id)
    rank_name = node.rank.name
    if rank_name not in NCBI_RANKS:
        return None
    names, domain = _start(tax_id)
    names[NCBI_RANKS[rank_name]] = node.scientific_name
    return _lineage(names, domain, _common_name(node))
