"""The three modes: describe (text -> images), look-alikes (image -> images), identify (image -> taxa)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from embed.models import ModelUnavailableError
from embed.search import SearchService
from index.store import StoreError
from ui.components.filters import QueryOptions
from ui import state
from ui.components.identify import render_candidate_limits, render_identification, render_top
from ui.components.query import render_image_query, render_reading, render_text_query
from ui.components.results import make_thumbnails, render_results, render_summary, render_taxa
from ui.components.share import write_to_url

logger = logging.getLogger(__name__)

T = TypeVar("T")
SIDE_RATIO = (3.6, 1)  # results | summary
QUERY_RATIO = (1, 3.6)  # query image and summary | results


def _attempt(what: str, run: Callable[[], T]) -> T | None:
    """Run a search; a failure becomes a message on the page, not a traceback."""
    try:
        with st.spinner(f"{what}…"):
            return run()
    except (StoreError, ValueError, KeyError, FileNotFoundError, ModelUnavailableError) as e:
        logger.warning("%s failed: %s", what, e)
        st.error(f"{what} failed: {e.args[0] if isinstance(e, KeyError) and e.args else e}")
        return None


def render_describe_part(service: SearchService, options: QueryOptions) -> None:
    """Describe as a part of the page that reruns on its own (`st.fragment`): a new text redraws the query and the
    results, not the side panel, the title or the mode, whose values it was drawn with (`options`) still hold.

    A click in it that changes the page around it (a breadcrumb narrowing the clade, look-alikes, details)
    reruns the whole page; every run writes the search into the URL."""
    st.session_state[state.PAGE_SEEN] = state.page_state(st.session_state)
    _describe_fragment(service, options)


@st.fragment
def _describe_fragment(service: SearchService, options: QueryOptions) -> None:
    if st.session_state.get(state.PAGE_SEEN) != state.page_state(st.session_state):
        st.rerun(scope="app")  # a callback here changed the page around this part
    render_describe(service, options)
    write_to_url()


def render_describe(service: SearchService, options: QueryOptions) -> None:
    """The text box, what the text was read as, the results and the closest taxa.

    The search runs before anything is drawn (the text is already in the session state): the browser
    then gets the whole part at once instead of redrawing it while the server searches."""
    text = (st.session_state.get(state.TEXT) or "").strip()
    if not text:
        render_text_query(service)
        st.caption("Type a description or a name, or pick one of the examples.")
        return
    chosen = st.session_state.get(state.meaning_key(text))
    n = state.results_wanted(st.session_state, options.k, (state.DESCRIBE, text, chosen, options.filter,
                                                           options.per_species))
    found = _attempt("Searching", lambda: service.describe(text, n, options.filter, options.per_species, taxon=chosen))
    taxa = _attempt("Matching taxa", lambda: service.text_to_taxa(text, 5, options.rank, options.filter))
    hits = found.hits if found is not None else None
    if hits:
        make_thumbnails(hits)
    render_text_query(service)
    if found is not None:
        render_reading(found, text)
    main, side = st.columns(SIDE_RATIO, gap="large")
    with main:
        if hits is not None:
            render_results(hits, options.clade, options.excluded, asked=n)
    with side:
        if hits:
            render_summary(hits)
        if taxa:
            render_taxa(taxa, options.rank.label)


def render_lookalikes(service: SearchService, options: QueryOptions) -> None:
    query_column, main = st.columns(QUERY_RATIO, gap="large")
    with query_column:
        query = render_image_query(service, options.filter, preview_width="stretch")
    if query is None:
        return
    n = state.results_wanted(st.session_state, options.k, (state.LOOKALIKES, query.image_id or query.label,
                                                           options.filter, options.per_species))
    hits = _attempt("Searching", lambda: service.image_to_images(query.query, n, options.filter,
                                                                 options.per_species))
    if hits is None:
        return
    with main:
        render_results(hits, options.clade, options.excluded, asked=n)
    with query_column:
        render_summary(hits)


def render_identify(service: SearchService, options: QueryOptions) -> None:
    render_candidate_limits(options)
    left, middle, right = st.columns((1.1, 2.6, 1.2), gap="medium")
    with left:
        query = render_image_query(service, None, preview_width="stretch")
    if query is None:
        return
    found = _attempt("Identifying", lambda: service.identify(query.query, options.k, options.method, options.filter,
                                                             options.sets))
    if found is None:
        return
    with middle:
        render_identification(found, options.rank)
    with right:
        render_top(found, options.rank, min(options.k, 8))
