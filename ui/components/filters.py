"""The side panel's filters: the clade cascade (kingdom -> species, with image counts), rank, split, grouping;
and the active filters as chips above the results, each undone on its own, one rank up, or all at once.

Every selector starts with an "any" choice (`state.ANY`), so that a choice can be taken back.
"""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from embed.predict import METHOD_SUM, METHOD_TAXA
from embed.search import SearchService, TaxonOption
from index.store import MissingIndexError, SearchFilter
from taxonomy import RANK_LABELS, Rank
from ui import state

MAX_PER_SPECIES = 5
METHOD_LABELS = {METHOD_SUM: "Species probabilities summed (pybioclip)",
                 METHOD_TAXA: "Each rank's own vectors, within the parent"}


@dataclass(frozen=True)
class QueryOptions:
    """What the side panel asks of every search."""

    filter: SearchFilter | None
    clade: str | None  # the chosen clade key, shown above the results
    excluded: bool
    rank: Rank
    k: int
    per_species: int | None
    method: str
    sets: tuple[str, ...] = ()  # candidate sets of identify; () for every taxon

def _on_clade_change(rank: Rank) -> None:
    state.clear_below(st.session_state, rank)


def _clade_selector(service: SearchService, rank: Rank, within: str | None) -> str | None:
    options = service.clade_options(rank, within)
    if not options:
        return None
    key = state.clade_key(rank)
    by_key: dict[str, TaxonOption] = {o.key: o for o in options}
    if st.session_state.get(key) not in by_key:
        st.session_state[key] = state.ANY  # a choice left over from another parent
    return st.selectbox(
        rank.label.capitalize(), [state.ANY, *by_key], key=key, on_change=_on_clade_change, args=(rank,),
        format_func=lambda k: by_key[k].label if k else f"any {rank.label}",
    ) or None


def render_clade_cascade(service: SearchService) -> str | None:
    """One selector per rank, each listing the taxa inside the choice above it; returns the deepest choice."""
    clade: str | None = None
    for rank in state.CLADE_RANKS:
        chosen = _clade_selector(service, rank, clade)
        if chosen:
            clade = chosen
        elif not any(st.session_state.get(state.clade_key(r)) for r in state.CLADE_RANKS if r > rank):
            break
    return clade


def _facet_selector(service: SearchService, field: str, label: str, key: str) -> str | None:
    """A choice among the values of an image field, with image counts; shown when there is a choice."""
    try:
        counts = service.facets(field)
    except MissingIndexError as e:
        st.caption(f"No {label.lower()} filter: {e}")
        return None
    if len(counts) < 2 and not st.session_state.get(key):
        return None
    if st.session_state.get(key) not in counts:
        st.session_state[key] = state.ANY
    return st.selectbox(label, [state.ANY, *counts], key=key,
                        format_func=lambda value: f"{value} · {counts[value]}" if value else f"any {field}") or None


def _reset_clade() -> None:
    state.set_clade(st.session_state, None)


def _rank_up() -> None:
    state.rank_up(st.session_state)


def _remove(key: str) -> None:
    state.remove_filter(st.session_state, key)


def _clear_all() -> None:
    state.clear_filters(st.session_state)


def render_active_filters() -> None:
    """The filters in force as chips (each click undoes one), one rank up, and clear all; nothing when none."""
    chips = state.active_filters(st.session_state)
    if not chips:
        return
    with st.container(horizontal=True, key="active-filters", vertical_alignment="center"):
        for chip in chips:
            st.button(chip.label, key=f"chip:{chip.key}", icon=":material/close:", on_click=_remove,
                      args=(chip.key,), help=f"Remove this filter: {chip.label}")
        if state.selected_clade(st.session_state):
            parent = state.parent_clade(st.session_state)
            st.button("One rank up", key="rank_up", icon=":material/arrow_upward:", type="tertiary",
                      on_click=_rank_up, help=f"Widen to {parent}" if parent else "Widen to the whole tree")
        st.button("Clear all", key="clear_filters", type="tertiary", on_click=_clear_all)


def render_filters(service: SearchService) -> QueryOptions:
    """The filter panel, in the sidebar."""
    with st.sidebar:
        st.subheader("Filter by clade")
        clade = render_clade_cascade(service)
        excluded = st.toggle("Exclude this clade instead", key=state.EXCLUDE, disabled=clade is None)
        if clade:
            with st.container(horizontal=True):
                st.button("One rank up", on_click=_rank_up, type="tertiary", icon=":material/arrow_upward:",
                          key="rank_up_side")
                st.button("Clear the clade filter", on_click=_reset_clade, type="tertiary", icon=":material/close:")
        split = _facet_selector(service, "split", "Split", state.SPLIT)
        source = _facet_selector(service, "source", "Source", state.SOURCE_FILTER)
        st.subheader("Results")
        rank = st.selectbox("Rank of predicted and matching taxa", RANK_LABELS, key=state.RANK)
        k = st.slider("Results", state.MIN_K, state.MAX_K, step=state.K_STEP, key=state.K)
        per_species = st.slider("At most per species (0: no grouping)", 0, MAX_PER_SPECIES, key=state.PER_SPECIES)
        method = st.radio("Identify by", list(METHOD_LABELS), key=state.METHOD, format_func=METHOD_LABELS.get)
        sets = _candidate_sets(service)
    search_filter = SearchFilter(
        within=(clade,) if clade and not excluded else (), exclude=(clade,) if clade and excluded else (),
        split=split or None, source=source or None,
    )
    return QueryOptions(
        filter=None if search_filter.is_empty else search_filter, clade=clade, excluded=bool(excluded and clade),
        rank=Rank.parse(rank), k=int(k), per_species=int(per_species) or None, method=method, sets=sets,
    )


def _candidate_sets(service: SearchService) -> tuple[str, ...]:
    """Which sets of taxa identify compares with (the catalog, reference sets); none chosen: all of them."""
    counts = service.candidate_sets()
    if st.session_state.get(state.CANDIDATE_SETS):
        st.session_state[state.CANDIDATE_SETS] = [s for s in st.session_state[state.CANDIDATE_SETS] if s in counts]
    if not counts:
        return ()
    chosen = st.multiselect("Identify against", list(counts), key=state.CANDIDATE_SETS, placeholder="every set",
                            format_func=lambda name: f"{name} · {counts[name]:,} species",
                            help="The candidate taxa: the collection's own (catalog) and reference sets "
                                 "(python -m embed taxa). None chosen: all of them.")
    return tuple(chosen)
