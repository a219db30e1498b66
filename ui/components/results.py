"""The results: the cards with their count, export and "Load more"; the summary of the results per family and
genus; the closest taxa; an image's breadcrumb that narrows the filter. Cards and taxa are each one element
(`ui.components.clickable`)."""
from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from embed.search import SearchHit
from ui import state
from ui.components.clickable import render_clickable
from ui.components.export import render_export
from ui.services import thumbnail
from ui.views import card_html, crumbs_html, summary_html, summary_tree, taxa_html

RESULTS_CARDS = "results-cards"  # the key of the results' cards (the detail view's look-alikes have their own)
CLOSEST_TAXA = "closest-taxa"


def render_breadcrumb(hit: SearchHit, key: str) -> None:
    """kingdom › phylum › ... › species of one image (its detail view), each part narrowing the clade filter to it."""
    render_clickable(crumbs_html(hit.lineage), key)


def make_thumbnails(hits: Sequence[SearchHit]) -> None:
    """The thumbnails of `hits` made (and cached) now, before the page that shows them is drawn."""
    for hit in hits:
        thumbnail(hit.root, hit.path)


def render_cards(hits: Sequence[SearchHit], key: str) -> None:
    """`hits` as cards, three to a row: one element, updated in place by every search under `key`."""
    render_clickable(f'<div class="tol-cards">{"".join(card_html(h, thumbnail(h.root, h.path)) for h in hits)}</div>',
                     key)


def _load_more() -> None:
    state.load_more(st.session_state)


def render_results(hits: Sequence[SearchHit], clade: str | None = None, excluded: bool = False,
                   asked: int | None = None) -> None:
    """The hits as cards, three to a row, with their export; "Load more" when `asked` were all found."""
    where = f" {'outside' if excluded else 'inside'} `{clade}`" if clade else ""
    if not hits:
        st.info(f"No image found{where}.")
        return
    with st.container(horizontal=True, vertical_alignment="center"):
        st.caption(f"{len(hits)} images{where}, most similar first")
        render_export(hits)
    render_cards(hits, RESULTS_CARDS)
    if asked is not None and len(hits) >= asked and asked < state.MAX_RESULTS:
        st.button("Load more", key="load_more", icon=":material/expand_more:", on_click=_load_more,
                  help="The next page of results")


def render_summary(hits: Sequence[SearchHit]) -> None:
    """The results counted per family and genus, as a small tree."""
    st.markdown("##### In these results")
    nodes = summary_tree(hits)
    if nodes:
        st.html(summary_html(nodes))


def render_taxa(hits: Sequence[SearchHit], rank_label: str) -> None:
    """Taxa matching the text (text -> taxa), with their image counts; each narrows the filter."""
    st.markdown(f"##### Closest {rank_label} taxa")
    render_clickable(taxa_html(hits, rank_label), CLOSEST_TAXA)
