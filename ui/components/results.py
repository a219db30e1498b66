"""The result grid: thumbnail, names, score, and the lineage as a breadcrumb that narrows the filter.

Cards are light: one HTML block for the names and score (cut with an ellipsis, in full on hover),
the breadcrumb, and three small actions (details, look-alikes, identify). On a phone the grid keeps
three columns of small cards instead of stacking twelve full-width ones.

A card's widgets are keyed by its place in the grid (`alike:0`, `crumbs-0`...), not by the image it
shows: a new search then updates the same widgets in the browser instead of dropping every one and
building new ones (about a third of the browser's work per search). The image is the callbacks'
argument, and the card's HTML names it (`data-id`).
"""
from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from embed.search import SearchHit
from taxonomy import Rank
from ui import state
from ui.services import thumbnail
from ui.components.export import render_export
from ui.views import CARD_TEXT_STYLE, breadcrumb, card_html, summary_html, summary_tree

COLUMNS = 3
CRUMB_SEPARATOR = "›"
# Breadcrumb buttons as small inline links (Streamlit gives a keyed container the class `st-key-<key>`).
CARD_STYLE = """<style>
div[class*="st-key-crumbs-"] [data-testid="stButtonGroup"] > div {row-gap: 0 !important; column-gap: 0.25rem !important;}
div[class*="st-key-crumbs-"] button {min-height: 0; padding: 0; line-height: 1.35; border: none;
  background: none;}
div[class*="st-key-crumbs-"] button p {font-size: 0.78rem; color: #4b5563;}
div[class*="st-key-crumbs-"] button:hover p {color: #1f5135; text-decoration: underline;}
div[class*="st-key-actions-"] {column-gap: 0.35rem !important;}
div[class*="st-key-actions-"] button {min-height: 0; padding: 0.15rem 0.45rem;}
div[class*="st-key-actions-"] button p {font-size: 0.8rem;}
@media (max-width: 640px) {
  .st-key-results-grid [data-testid="stHorizontalBlock"] {flex-wrap: nowrap !important; gap: 0.35rem !important;}
  .st-key-results-grid [data-testid="stColumn"] {min-width: 0 !important; width: auto !important; flex: 1 1 0 !important;}
  .st-key-results-grid [data-testid="stVerticalBlockBorderWrapper"] {padding: 0.3rem !important;}
  .st-key-results-grid div[class*="st-key-crumbs-"] {display: none;}
  .st-key-results-grid div[class*="st-key-actions-"] {column-gap: 0.1rem !important; flex-wrap: wrap !important;}
  .st-key-results-grid div[class*="st-key-actions-"] > div {width: auto !important; min-width: 0 !important;}
  .st-key-results-grid div[class*="st-key-actions-"] button {padding: 0.1rem 0.2rem; min-width: 0;}
  .st-key-results-grid div[class*="st-key-actions-"] button p {display: none;}
  .st-key-results-grid .tol-card {font-size: 0.78rem;}
}
</style>"""


def _narrow(key: str) -> None:
    state.open_detail(st.session_state, None)
    state.set_clade(st.session_state, key)
    st.session_state[state.EXCLUDE] = False


def _look_alikes(image_id: str) -> None:
    state.look_alikes_of(st.session_state, image_id)


def _identify(image_id: str) -> None:
    state.identify_this(st.session_state, image_id)


def _details(image_id: str) -> None:
    state.open_detail(st.session_state, image_id)


def _narrow_to_crumb(widget_key: str) -> None:
    key = st.session_state.get(widget_key)
    st.session_state[widget_key] = None  # a breadcrumb is a set of links, not a choice that stays
    if key:
        _narrow(key)


def render_breadcrumb(hit: SearchHit, place: int | str) -> None:
    """kingdom › phylum › ... › species, each part narrowing the clade filter to it: one widget, not one per part.

    `place` keys the widget (a card's place in the grid, or a name for a breadcrumb of its own)."""
    crumbs = breadcrumb(hit.lineage, Rank.SPECIES)
    by_key = {crumb.key: crumb for crumb in crumbs}
    last = crumbs[-1].key if crumbs else ""
    widget_key = f"crumbs-{place}"
    st.pills("Narrow to", list(by_key), key=widget_key, label_visibility="collapsed", on_change=_narrow_to_crumb,
             args=(widget_key,), format_func=lambda k: by_key[k].name + ("" if k == last else f" {CRUMB_SEPARATOR}"),
             help="Only this clade")


def render_card(hit: SearchHit, place: int) -> None:
    """The card of `hit` at `place` (from 0) in its grid: its widgets are keyed by the place."""
    with st.container(border=True):
        picture = thumbnail(hit.root, hit.path)
        if picture is not None:
            st.image(picture, width="stretch")
        else:
            st.caption(":material/hide_image: image unavailable")
        st.markdown(card_html(hit), unsafe_allow_html=True)
        render_breadcrumb(hit, place)
        with st.container(horizontal=True, key=f"actions-{place}"):
            st.button("Details", key=f"detail:{place}", icon=":material/info:", on_click=_details, args=(hit.id,),
                      help="The whole image, its catalog record and its look-alikes")
            st.button("Look-alikes", key=f"alike:{place}", icon=":material/image_search:", on_click=_look_alikes,
                      args=(hit.id,), help="Images that look like this one")
            st.button("Identify", key=f"identify:{place}", icon=":material/biotech:", on_click=_identify,
                      args=(hit.id,), help="The taxa this image is closest to")


def render_grid(hits: Sequence[SearchHit]) -> None:
    """The cards, COLUMNS to a row."""
    for start in range(0, len(hits), COLUMNS):
        for offset, (column, hit) in enumerate(zip(st.columns(COLUMNS), hits[start:start + COLUMNS])):
            with column:
                render_card(hit, start + offset)


def _load_more() -> None:
    state.load_more(st.session_state)


def render_results(hits: Sequence[SearchHit], clade: str | None = None, excluded: bool = False,
                   asked: int | None = None) -> None:
    """The hits as a grid of cards, three to a row, with their export; "Load more" when `asked` were all found."""
    st.html(CARD_STYLE + CARD_TEXT_STYLE)
    where = f" {'outside' if excluded else 'inside'} `{clade}`" if clade else ""
    if not hits:
        st.info(f"No image found{where}.")
        return
    with st.container(horizontal=True, vertical_alignment="center"):
        st.caption(f"{len(hits)} images{where}, most similar first")
        render_export(hits)
    with st.container(key="results-grid"):
        render_grid(hits)
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
    for hit in hits:
        label = hit.name + (f" ({hit.common_name})" if hit.common_name else "")
        st.button(f"{label} · {hit.score:.3f}", key=f"taxon:{hit.id}", type="tertiary", on_click=_narrow,
                  args=(hit.taxon,), help=f"Only this {rank_label}: {hit.taxon} ({hit.n_images} images)")
