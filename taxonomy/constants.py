"""Ranks, text types and name mappings shared by every package (SPEC §2-§4)."""
from __future__ import annotations

from enum import IntEnum


class Rank(IntEnum):
    """The seven Linnaean ranks of BioCLIP; the value is the depth below the root."""

    KINGDOM = 0
    PHYLUM = 1
    CLASS = 2
    ORDER = 3
    FAMILY = 4
    GENUS = 5
    SPECIES = 6

    @property
    def label(self) -> str:
        """The lower-case name used in CSV headers, payloads and CLI choices."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: "str | int | Rank") -> "Rank":
        """`Rank.parse('genus')`, `Rank.parse(5)`; the error names the accepted ranks."""
        if isinstance(value, Rank):
            return value
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            raise ValueError(f"unknown rank {value!r}; expected one of {', '.join(RANK_LABELS)}") from None


RANK_LABELS: tuple[str, ...] = tuple(rank.label for rank in Rank)

TEXT_TYPES: tuple[str, ...] = ("taxonomic", "scientific", "common", "sci_com", "taxon_com")
MIXED = "mixed"
DEFAULT_TEST_TEXT_TYPE = "taxon_com"

# NCBI names its kingdoms differently from BioCLIP's TreeOfLife-10M.
KINGDOM_ALIASES: dict[str, str] = {
    "Metazoa": "Animalia",
    "Viridiplantae": "Plantae",
    "Archaeplastida": "Plantae",
    "Chloroplastida": "Plantae",
}

KEY_SEPARATOR = "/"

# NCBI ranks (taxoniq's `Rank` names) that fill our seven; a taxon without a kingdom rank
# (Bacteria, most protists) takes its superkingdom/domain as kingdom.
NCBI_RANKS: dict[str, Rank] = {
    "kingdom": Rank.KINGDOM,
    "phylum": Rank.PHYLUM,
    "class": Rank.CLASS,
    "order": Rank.ORDER,
    "family": Rank.FAMILY,
    "genus": Rank.GENUS,
    "species": Rank.SPECIES,
}
NCBI_DOMAIN_RANKS: tuple[str, ...] = ("superkingdom", "domain")

# Close-match suggestions for unknown names (difflib ratio in 0..1).
CLOSE_MATCH_COUNT = 5
CLOSE_MATCH_CUTOFF = 0.6
# Scientific-name candidates share a prefix with the query; the prefix grows until at most this many remain.
CLOSE_MATCH_MAX_CANDIDATES = 50_000
CLOSE_MATCH_MIN_PREFIX = 2

# The taxon tree (taxonomy/tree.py): the node above the kingdoms, and the ete3 features of a node.
TREE_ROOT_NAME = "Life"
TREE_FEATURES: tuple[str, ...] = ("rank", "scientific_name", "common_name", "n_images")
TREE_ASCII_ATTRIBUTE = "label"
TREE_FORMATS: tuple[str, ...] = ("ascii", "newick")

# Validation messages list at most this many row references per placement.
VALIDATE_ROWS_SHOWN = 10
RESOLVE_FORMATS: tuple[str, ...] = ("table", "json")

# NCBI names that are not real species (SPEC §2 reference taxa), by the reason they are left out:
# a species must be "<its genus> <epithet>", the epithet lower-case letters and hyphens only.
NCBI_SPECIES_EPITHET = r"[a-z][a-z\-]*"
NCBI_EXCLUDED_WORDS: dict[str, tuple[str, ...]] = {
    "sp.": ("sp.", "spp.", "sp"),
    "cf./aff.": ("cf.", "aff.", "cf", "aff", "nr."),
    "hybrid": ("x", "×"),
    "environmental": ("environmental", "uncultured", "unidentified", "unclassified", "metagenome"),
}
NCBI_NOT_BINOMIAL = "not a binomial of its genus"
