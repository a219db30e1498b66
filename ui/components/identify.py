"""Identify: the top taxa at every rank with probabilities, as a small tree, and a table at the chosen rank."""
from __future__ import annotations

import streamlit as st

from embed.predict import Identification, prediction_tree
from taxonomy import Rank
from ui import state
from ui.components.filters import QueryOptions
from ui.views import candidate_limits, headline_note, percent, prediction_tree_html, top_taxa_html

TREE_K = 4


def render_identification(found: Identification, rank: Rank, k: int = TREE_K) -> None:
    """The best guess down the tree, the alternatives beside it, and the top `k` at `rank`."""
    if not found.path:
        st.info("No taxon to compare with.")
        return
    best = found.headline(rank) or found.path[-1]
    title = best.common_name or best.name
    st.markdown(f"#### {title}" + (f"  \n*{best.name}*" if best.common_name else ""))
    st.caption(headline_note(found, rank))
    st.caption(f"method `{found.method}` · logit scale {found.logit_scale:.1f} · {found.candidates:,} candidates")
    st.html(prediction_tree_html(prediction_tree(found, rank, k)))
    rows = [
        {"rank": p.rank.label, "taxon": p.name, "common name": p.common_name, "probability": percent(p.score)}
        for p in found.path
    ]
    with st.expander("The best guess at every rank"):
        st.dataframe(rows, hide_index=True, width="stretch")


def render_top(found: Identification, rank: Rank, k: int) -> None:
    """The `k` most probable taxa at `rank`, unconstrained by the ranks above."""
    st.markdown(f"##### Top {rank.label} taxa")
    st.html(top_taxa_html(found.top(rank, k)))


def _every_candidate() -> None:
    state.every_candidate(st.session_state)


def render_candidate_limits(options: QueryOptions) -> None:
    """Say when a clade filter or a choice of sets restricts the candidates, with a one-click way out."""
    limits = candidate_limits(options.clade, options.excluded, options.sets)
    if not limits:
        return
    with st.container(horizontal=True, key="candidate-limits"):
        st.warning(f"Identifying only against taxa {limits}.", icon=":material/filter_alt:")
        st.button("Identify against every taxon", key="identify-every-taxon", on_click=_every_candidate,
                  icon=":material/filter_alt_off:")
