"""Session-state keys and the transitions between them (pure: any MutableMapping, `st.session_state` in the app).

Widgets are keyed by these constants, and callbacks (a breadcrumb click, "look-alikes of this")
change them here before the next run draws the widgets again.
"""
from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from taxonomy import Rank, parse_key, rank_of_key

# Modes of the page.
DESCRIBE = "describe"
LOOKALIKES = "lookalikes"
IDENTIFY = "identify"
MODES: tuple[str, ...] = (DESCRIBE, LOOKALIKES, IDENTIFY)
MODE_LABELS: dict[str, str] = {DESCRIBE: "Describe", LOOKALIKES: "Look-alikes", IDENTIFY: "Identify"}
MODE_HELP: dict[str, str] = {
    DESCRIBE: "text → images",
    LOOKALIKES: "image → images",
    IDENTIFY: "image → taxa",
}

# Where a query image comes from.
FROM_COLLECTION = "collection"
FROM_UPLOAD = "upload"
SOURCES: tuple[str, ...] = (FROM_COLLECTION, FROM_UPLOAD)
SOURCE_LABELS: dict[str, str] = {FROM_COLLECTION: "From the collection", FROM_UPLOAD: "Upload"}

# Widget keys.
MODE = "mode"
TEXT = "query_text"
EXAMPLE = "example"
SOURCE = "image_source"
PICKED = "picked_image"
UPLOAD = "upload"
EXCLUDE = "exclude_clade"
RANK = "rank"
METHOD = "method"
K = "k"
PER_SPECIES = "per_species"
SPLIT = "split"
SOURCE_FILTER = "source_filter"
CANDIDATE_SETS = "candidate_sets"  # identify against these sets of taxa; [] for every taxon
CLADE_PREFIX = "clade_"
MEANING_PREFIX = "query_taxon:"  # + the text: the taxon an ambiguous name is read as

# The clade filter cascades from kingdom to genus; a species is picked from the results instead.
CLADE_RANKS: tuple[Rank, ...] = tuple(rank for rank in Rank if rank < Rank.SPECIES)

DEFAULT_K = 12
DEFAULT_PER_SPECIES = 0  # 0: no grouping
DEFAULT_RANK = Rank.SPECIES.label
DEFAULTS: dict[str, Any] = {
    MODE: DESCRIBE, TEXT: "", EXAMPLE: None, SOURCE: FROM_COLLECTION, PICKED: None, EXCLUDE: False,
    RANK: DEFAULT_RANK, METHOD: "sum", K: DEFAULT_K, PER_SPECIES: DEFAULT_PER_SPECIES, SPLIT: None,
    SOURCE_FILTER: None, CANDIDATE_SETS: [],
}


def meaning_key(text: str) -> str:
    """The widget key of the choice among the taxa an ambiguous `text` names (one per text)."""
    return MEANING_PREFIX + text


def clade_key(rank: Rank) -> str:
    """The widget key of the clade selector at `rank`."""
    return CLADE_PREFIX + Rank.parse(rank).label


def init(state: MutableMapping[str, Any]) -> None:
    """Every key with its default, so widgets never get a default and a state value at once."""
    for key, value in DEFAULTS.items():
        state.setdefault(key, value)
    for rank in CLADE_RANKS:
        state.setdefault(clade_key(rank), None)


def selected_clade(state: MutableMapping[str, Any]) -> str | None:
    """The key of the deepest clade chosen in the cascade, or None for the whole tree."""
    chosen = [state.get(clade_key(rank)) for rank in CLADE_RANKS]
    named = [key for key in chosen if key]
    return named[-1] if named else None


def set_clade(state: MutableMapping[str, Any], key: str | None) -> None:
    """Narrow the filter to clade `key` (a breadcrumb click): its ancestors fill the ranks above, the rest clears.

    A rank the lineage leaves empty stays unselected; a species key narrows to its genus.
    """
    if not key:
        for rank in CLADE_RANKS:
            state[clade_key(rank)] = None
        return
    rank = min(rank_of_key(key), CLADE_RANKS[-1])
    lineage = parse_key(key)
    for r in CLADE_RANKS:
        state[clade_key(r)] = lineage.key(r) if r <= rank and lineage.get(r) else None


def clear_below(state: MutableMapping[str, Any], rank: Rank) -> None:
    """Forget the choices under `rank` (its parent changed, so they may lie elsewhere)."""
    for r in CLADE_RANKS:
        if r > rank:
            state[clade_key(r)] = None


def look_alikes_of(state: MutableMapping[str, Any], image_id: str) -> None:
    """Switch to look-alikes of a collection image (the button under each result)."""
    state[MODE] = LOOKALIKES
    state[SOURCE] = FROM_COLLECTION
    state[PICKED] = image_id


def identify_this(state: MutableMapping[str, Any], image_id: str) -> None:
    """Switch to identifying a collection image."""
    state[MODE] = IDENTIFY
    state[SOURCE] = FROM_COLLECTION
    state[PICKED] = image_id


def every_candidate(state: MutableMapping[str, Any]) -> None:
    """Identify against every taxon again: no clade filter, every candidate set."""
    set_clade(state, None)
    state[EXCLUDE] = False
    state[CANDIDATE_SETS] = []


def use_example(state: MutableMapping[str, Any], text: str | None) -> None:
    """An example query chosen: it becomes the text."""
    if text:
        state[TEXT] = text
