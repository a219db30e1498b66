"""Catalog columns (SPEC §2): the accepted headers, their aliases, and a row -> Lineage reader."""
from __future__ import annotations

from dataclasses import dataclass

from taxonomy.constants import RANK_LABELS
from taxonomy.lineage import Lineage

PATH_COLUMN = "filepath"
COMMON_NAME_COLUMN = "common_name"
OPTIONAL_COLUMNS: tuple[str, ...] = ("id", "split", "source", "license")
CANONICAL_COLUMNS: tuple[str, ...] = (PATH_COLUMN, *RANK_LABELS, COMMON_NAME_COLUMN, *OPTIONAL_COLUMNS)

# Other datasets' names for our columns, compared case-insensitively.
COLUMN_ALIASES: dict[str, str] = {
    "common": COMMON_NAME_COLUMN,  # TreeOfLife-10M
    "cls": "class",  # Rare Species annotation
    "specificepithet": "species",  # Darwin Core
    "vernacularname": COMMON_NAME_COLUMN,  # Darwin Core
    "licence": "license",
}
SCIENTIFIC_NAME_COLUMN = "scientificname"  # Darwin Core; split into genus + epithet when those are missing


@dataclass(frozen=True)
class HeaderMap:
    """Which source header feeds which canonical column, and what is left over."""

    columns: dict[str, str]  # canonical name -> header as written in the file
    scientific_name: str | None
    unknown: tuple[str, ...]

    @classmethod
    def from_headers(cls, headers: list[str]) -> "HeaderMap":
        columns: dict[str, str] = {}
        scientific_name = None
        unknown: list[str] = []
        for header in headers:
            folded = header.strip().lower()
            canonical = COLUMN_ALIASES.get(folded, folded)
            if canonical in CANONICAL_COLUMNS and canonical not in columns:
                columns[canonical] = header
            elif folded == SCIENTIFIC_NAME_COLUMN:
                scientific_name = header
            else:
                unknown.append(header)
        return cls(columns, scientific_name, tuple(unknown))

    @property
    def has_taxonomy(self) -> bool:
        return any(label in self.columns for label in RANK_LABELS) or self.scientific_name is not None

    def value(self, row: dict[str, str], column: str) -> str:
        header = self.columns.get(column)
        return (row.get(header) or "").strip() if header else ""

    def lineage(self, row: dict[str, str]) -> Lineage:
        """The row's normalised lineage; `scientificName` fills genus and epithet only when empty."""
        ranks = {label: self.value(row, label) for label in RANK_LABELS}
        if self.scientific_name and not (ranks["genus"] and ranks["species"]):
            words = (row.get(self.scientific_name) or "").split()
            if len(words) >= 2:
                ranks["genus"] = ranks["genus"] or words[0]
                ranks["species"] = ranks["species"] or words[1]
            elif len(words) == 1:
                ranks["genus"] = ranks["genus"] or words[0]
        return Lineage.from_ranks(ranks, self.value(row, COMMON_NAME_COLUMN))

