"""Session-state keys and the transitions between them (pure: any MutableMapping, `st.session_state` in the app).

Widgets are keyed by these constants, and callbacks (a breadcrumb click, "look-alikes of this")
change them here before the next run draws the widgets again.
"""
from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
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
DETAIL = "detail_image"  # the image whose detail view is open, None for the results
PAGES = "pages"  # how many pages of results are shown ("load more")
PAGED_FOR = "paged_for"  # the search those pages belong to: another search starts again at one page
URL_READ = "url_read"  # the URL's query parameters were read into this session
BATCH_UPLOADS = "batch_uploads"  # the pictures identified together
MAP = "show_map"  # the map of the collection instead of the mode's results
MAP_RANK = "map_rank"  # the rank whose taxa colour the map
MAP_CHART = "map_chart"  # the map's chart (its selection: the point clicked)
PAGE_SEEN = "page_seen"  # what the page around the describe part was last drawn with (`page_state`)
DEFAULT_MAP_RANK = Rank.FAMILY.label

# The clade filter cascades from kingdom down to species (a species shortcut narrows to the species).
CLADE_RANKS: tuple[Rank, ...] = tuple(Rank)
# The "any" choice of every filter selector (a value of its own, so that a choice can be undone).
ANY = ""

MIN_K = 3
MAX_K = 48
K_STEP = 3
DEFAULT_K = 12
MAX_RESULTS = 480  # "load more" stops here: ten pages of the largest page
DEFAULT_PER_SPECIES = 0  # 0: no grouping
DEFAULT_RANK = Rank.SPECIES.label
DEFAULTS: dict[str, Any] = {
    MODE: DESCRIBE, TEXT: "", EXAMPLE: None, SOURCE: FROM_COLLECTION, PICKED: None, EXCLUDE: False,
    RANK: DEFAULT_RANK, METHOD: "sum", K: DEFAULT_K, PER_SPECIES: DEFAULT_PER_SPECIES, SPLIT: ANY,
    SOURCE_FILTER: ANY, CANDIDATE_SETS: [], DETAIL: None, MAP: False, MAP_RANK: DEFAULT_MAP_RANK, PAGES: 1,
    PAGED_FOR: None, URL_READ: False,
}



# What the page outside the describe part is drawn from: the mode, the detail view, the map, the side panel.
# The describe part reruns on its own (a fragment) while these stay as they were drawn.
PAGE_KEYS: tuple[str, ...] = (MODE, DETAIL, MAP, EXCLUDE, RANK, METHOD, K, PER_SPECIES, SPLIT, SOURCE_FILTER,
                              SOURCE, PICKED, CANDIDATE_SETS)


def page_state(state: Mapping[str, Any]) -> tuple[str, ...]:
    """The values the page outside the describe part is drawn from (compare two to know if it must be redrawn)."""
    return tuple(repr(state.get(key)) for key in (*PAGE_KEYS, *(clade_key(rank) for rank in CLADE_RANKS)))


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
        state.setdefault(clade_key(rank), ANY)


# Query widgets that a view may leave undrawn (the detail view replaces the mode's query): Streamlit forgets
# the value of a widget that a run does not draw, unless the value is set again from the state first.
KEPT: tuple[str, ...] = (TEXT, SOURCE, PICKED)


def keep(state: MutableMapping[str, Any]) -> None:
    """Hold the query widgets' values over a run that does not draw them (call before any widget)."""
    for key in KEPT:
        if key in state:
            state[key] = state[key]


def selected_clade(state: Mapping[str, Any]) -> str | None:
    """The key of the deepest clade chosen in the cascade, or None for the whole tree."""
    chosen = [state.get(clade_key(rank)) for rank in CLADE_RANKS]
    named = [key for key in chosen if key]
    return named[-1] if named else None


def set_clade(state: MutableMapping[str, Any], key: str | None) -> None:
    """Narrow the filter to clade `key` (a breadcrumb click): its ancestors fill the ranks above, the rest clears.

    A rank the lineage leaves empty stays at "any"; a species key narrows to the species.
    """
    if not key:
        for rank in CLADE_RANKS:
            state[clade_key(rank)] = ANY
        return
    rank = min(rank_of_key(key), CLADE_RANKS[-1])
    lineage = parse_key(key)
    for r in CLADE_RANKS:
        state[clade_key(r)] = lineage.key(r) if r <= rank and lineage.get(r) else ANY


def clear_below(state: MutableMapping[str, Any], rank: Rank) -> None:
    """Forget the choices under `rank` (its parent changed, so they may lie elsewhere)."""
    for r in CLADE_RANKS:
        if r > rank:
            state[clade_key(r)] = ANY


def rank_up(state: MutableMapping[str, Any]) -> None:
    """Widen the clade filter by one step: the deepest choice goes, the named rank above it stays."""
    chosen = [r for r in CLADE_RANKS if state.get(clade_key(r))]
    if chosen:
        state[clade_key(chosen[-1])] = ANY


def parent_clade(state: MutableMapping[str, Any]) -> str | None:
    """The clade "one rank up" would leave (None: the whole tree)."""
    chosen = [state[clade_key(r)] for r in CLADE_RANKS if state.get(clade_key(r))]
    return chosen[-2] if len(chosen) > 1 else None


@dataclass(frozen=True)
class Chip:
    """An active filter shown above the results; removing it undoes that filter alone."""

    key: str  # the state key it undoes
    label: str


def active_filters(state: MutableMapping[str, Any]) -> list[Chip]:
    """The filters in force: the clade (inside or outside), the split, the source, the grouping."""
    chips = []
    clade = selected_clade(state)
    if clade:
        where = "outside" if state.get(EXCLUDE) else "inside"
        chips.append(Chip(CLADE_PREFIX, f"{where} {clade.rsplit('/', 1)[-1] or clade}"))
    if state.get(SPLIT):
        chips.append(Chip(SPLIT, f"split {state[SPLIT]}"))
    if state.get(SOURCE_FILTER):
        chips.append(Chip(SOURCE_FILTER, f"source {state[SOURCE_FILTER]}"))
    if state.get(PER_SPECIES):
        chips.append(Chip(PER_SPECIES, f"at most {state[PER_SPECIES]} per species"))
    return chips


def remove_filter(state: MutableMapping[str, Any], key: str) -> None:
    """Undo one filter (a chip's key)."""
    if key == CLADE_PREFIX:
        set_clade(state, None)
        state[EXCLUDE] = False
    elif key == PER_SPECIES:
        state[PER_SPECIES] = DEFAULT_PER_SPECIES
    elif key in (SPLIT, SOURCE_FILTER):
        state[key] = ANY
    else:
        raise ValueError(f"not a filter: {key!r}; expected one of {CLADE_PREFIX}, {SPLIT}, {SOURCE_FILTER}, "
                         f"{PER_SPECIES}")


def clear_filters(state: MutableMapping[str, Any]) -> None:
    """Every filter back to "any"."""
    for chip in active_filters(state):
        remove_filter(state, chip.key)


def look_alikes_of(state: MutableMapping[str, Any], image_id: str) -> None:
    """Switch to look-alikes of a collection image (the button under each result)."""
    state[DETAIL] = None
    state[MODE] = LOOKALIKES
    state[SOURCE] = FROM_COLLECTION
    state[PICKED] = image_id


def identify_this(state: MutableMapping[str, Any], image_id: str) -> None:
    """Switch to identifying a collection image."""
    state[DETAIL] = None
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


def open_detail(state: MutableMapping[str, Any], image_id: str | None) -> None:
    """Open the detail view of a collection image (None: back to the results)."""
    state[DETAIL] = image_id


def pages_for(state: MutableMapping[str, Any], search: tuple[Any, ...]) -> int:
    """The pages of results to show for `search` (a hashable description of it): one for a new search."""
    if state.get(PAGED_FOR) != search:
        state[PAGED_FOR] = search
        state[PAGES] = 1
    return int(state.get(PAGES) or 1)


def load_more(state: MutableMapping[str, Any]) -> None:
    state[PAGES] = int(state.get(PAGES) or 1) + 1


def results_wanted(state: MutableMapping[str, Any], k: int, search: tuple[Any, ...]) -> int:
    """How many results to ask for: `k` per page shown, at most MAX_RESULTS."""
    return min(k * pages_for(state, (*search, k)), MAX_RESULTS)
