"""A query that names a taxon is searched with that taxon's vector, not its words (issue 13).

BioCLIP learned taxa from their taxonomic text, template-averaged (SPEC §4): `Pinus` typed alone
is a poor query, `a photo of Plantae Tracheophyta Pinopsida Pinales Pinaceae Pinus.` averaged over
81 templates is what the model knows. So a text is first read as a name:

1. a scientific name of a taxon in the store's `taxa` (`Pinus`, `Pica hudsonia`, any rank), looked
   up through the keyword indexes, so it stays cheap with a million reference taxa;
2. else a scientific or common name the offline NCBI taxonomy knows (`black-billed magpie`), kept
   when the store holds that taxon;
3. else the text names nothing and is embedded as typed.

A name several taxa bear (genus *Morus*: mulberries and gannets) yields all of them, most images
first, so that the caller can offer the choice.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from index.filters import SearchFilter
from index.schema import TAXA
from taxonomy import Lineage, Rank, parse_key, point_id

if TYPE_CHECKING:
    from index.store import Hit, VectorStore

logger = logging.getLogger(__name__)

READ_STORE = "store"  # the name of a taxon in the store
READ_NCBI = "ncbi"  # a name the NCBI taxonomy resolved to a taxon of the store
_NAME = re.compile(r"^[A-Za-z][A-Za-z.-]*( [a-z][a-z.-]*)?$", re.IGNORECASE)
_MAX_NAME_WORDS = 2


@dataclass(frozen=True)
class NamedTaxon:
    """A taxon of the store that a query names."""

    key: str
    rank: Rank
    name: str  # the binomial for a species
    common_name: str
    n_images: int

    @property
    def point_id(self) -> str:
        return point_id(self.key)

    @property
    def lineage(self) -> Lineage:
        return parse_key(self.key).with_common_name(self.common_name)

    def describe(self) -> str:
        """`genus Pinus, Plantae > Tracheophyta > Pinopsida > Pinales > Pinaceae`."""
        ancestors = [name for name in self.key.split("/")[:-1] if name]
        common = f" ({self.common_name})" if self.common_name else ""
        where = f", {' > '.join(ancestors)}" if ancestors else ""
        return f"{self.rank.label} {self.name}{common}{where}"


@dataclass(frozen=True)
class QueryReading:
    """What a query text was understood as."""

    text: str
    taxa: tuple[NamedTaxon, ...] = ()  # most images first; empty when the text names no taxon
    via: str = ""  # READ_STORE or READ_NCBI

    @property
    def names_a_taxon(self) -> bool:
        return bool(self.taxa)

    @property
    def is_ambiguous(self) -> bool:
        return len(self.taxa) > 1

    def describe(self) -> str:
        if not self.taxa:
            return f"{self.text!r} names no taxon of the store: searched as typed"
        if self.is_ambiguous:
            choices = "; ".join(t.describe() for t in self.taxa)
            return f"{self.text!r} names {len(self.taxa)} taxa: {choices}"
        return f"{self.text!r} is {self.taxa[0].describe()}"


def _spellings(text: str) -> list[tuple[Rank, str, str]]:
    """(rank, payload field, value) that a scientific name would have in the store, per SPEC §2."""
    words = text.split()
    if len(words) == 1:
        name = words[0].capitalize()
        return [(rank, rank.label, name) for rank in Rank if rank != Rank.SPECIES]
    if len(words) == _MAX_NAME_WORDS:
        return [(Rank.SPECIES, Rank.SPECIES.label, f"{words[0].capitalize()} {words[1].lower()}")]
    return []


def _named(hit: Hit) -> NamedTaxon:
    if hit.rank is None:
        raise ValueError(f"taxon point {hit.id} has no rank")
    return NamedTaxon(key=hit.taxon, rank=hit.rank, name=hit.name, common_name=hit.common_name,
                      n_images=hit.n_images)


def _in_store(store: VectorStore, text: str) -> list[NamedTaxon]:
    found: list[NamedTaxon] = []
    for rank, field, value in _spellings(text):
        query = SearchFilter(rank=rank, match=((field, value),))
        found += [_named(hit) for hit in store.scroll(TAXA, query)]
    return found


def _via_ncbi(store: VectorStore, text: str) -> list[NamedTaxon]:
    from taxonomy.resolver import resolve_common, resolve_scientific_all

    lineages = resolve_scientific_all(text) or resolve_common(text)
    keys = {lineage.key() for lineage in lineages}
    if not keys:
        return []
    return [_named(hit) for hit in store.retrieve(TAXA, [point_id(key) for key in sorted(keys)])]


def read_query(store: VectorStore, text: str) -> QueryReading:
    """The taxa of the store that `text` names (see the module docstring)."""
    cleaned = " ".join(text.strip().rstrip(".").split())
    if not cleaned or not store.count(TAXA):
        return QueryReading(cleaned)
    via, taxa = READ_STORE, (_in_store(store, cleaned) if _NAME.match(cleaned) else [])
    if not taxa:
        via, taxa = READ_NCBI, _via_ncbi(store, cleaned)
    unique = {taxon.key: taxon for taxon in taxa}
    ordered = sorted(unique.values(), key=lambda t: (-t.n_images, -int(t.rank), t.key))
    return QueryReading(cleaned, tuple(ordered), via if ordered else "")
