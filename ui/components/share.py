"""A shareable search: the URL carries it (SPEC §7: mode, q, within, rank, k, image).

A session reads its URL once, before any widget is drawn, so that opening a link restores the
search; every run then writes the search back, so that the address bar can be copied at any time.
"""
from __future__ import annotations

import logging

import streamlit as st

from embed.search import SearchService
from ui import links, state

logger = logging.getLogger(__name__)


def restore_from_url(service: SearchService) -> None:
    """On a session's first run: the URL's search into the state; what cannot be used is said, not fatal."""
    if st.session_state.get(state.URL_READ):
        return
    st.session_state[state.URL_READ] = True
    params = {name: st.query_params[name] for name in links.PARAMS if st.query_params.get(name)}
    if not params:
        return
    problems = links.from_query(st.session_state, params, service.resolve_clade)
    for problem in problems:
        logger.info("link parameter ignored: %s", problem)
        st.warning(f"Ignored from the link: {problem}", icon=":material/link_off:")


def write_to_url() -> None:
    """The current search into the URL (only when it changed: each write is a message to the browser)."""
    wanted = links.to_query(st.session_state)
    current = {name: st.query_params.get(name) for name in st.query_params}
    if current != wanted:
        st.query_params.from_dict(wanted)
