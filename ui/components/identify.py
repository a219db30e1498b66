"""Identify: the top taxa at every rank with probabilities, as a small tree, and a table at the chosen rank."""
from __future__ import annotations

import streamlit as st

from embed.predict import Identification, prediction_tree
from taxonomy import Rank
from ui.views import percent, prediction_tree_html, top_taxa_html

TREE_K = 4


def render_identification(found: Identification, rank: Rank, k: int = TREE_K) -> None:
    """The best guess down the tree, the alternatives beside it, and the top `k` at `rank`."""
    if not found.path:
        st.info("No taxon to compare with.")
        return
    best = found.path[-1]
    title = best.common_name or best.name
    st.markdown(f"#### {title}" + (f"  \n*{best.name}*" if best.common_name else ""))
    st.caption(f"best guess down the tree · method `{found.method}` · logit scale {found.logit_scale:.1f}")
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
