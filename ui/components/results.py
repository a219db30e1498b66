"""The result grid: thumbnail, names, score, and the lineage as a breadcrumb that narrows the filter."""
from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from embed.search import SearchHit
from ui import state
from ui.services import thumbnail
from ui.views import breadcrumb, hit_title, summary_html, summary_tree

COLUMNS = 3
CRUMB_SEPARATOR = "›"
# Breadcrumb buttons as small inline links (Streamlit gives a keyed container the class `st-key-<key>`).
CARD_STYLE = """<style>
div[class*="st-key-crumbs-"] {row-gap: 0 !important; column-gap: 0.25rem !important;}
div[class*="st-key-crumbs-"] button {min-height: 0; padding: 0; line-height: 1.35;}
div[class*="st-key-crumbs-"] button p {font-size: 0.78rem; color: #4b5563;}
div[class*="st-key-crumbs-"] button:hover p {color: #1f5135; text-decoration: underline;}
div[class*="st-key-actions-"] {column-gap: 0.35rem !important;}
div[class*="st-key-actions-"] button {min-height: 0; padding: 0.15rem 0.45rem;}
div[class*="st-key-actions-"] button p {font-size: 0.8rem;}
</style>"""


def _narrow(key: str) -> None:
    state.set_clade(st.session_state, key)
    st.session_state[state.EXCLUDE] = False


def _look_alikes(image_id: str) -> None:
    state.look_alikes_of(st.session_state, image_id)


def _identify(image_id: str) -> None:
    state.identify_this(st.session_state, image_id)


def render_breadcrumb(hit: SearchHit) -> None:
    """kingdom › phylum › ... › genus, each part a small button narrowing the clade filter to it."""
    crumbs = breadcrumb(hit.lineage)
    with st.container(horizontal=True, gap=None, key=f"crumbs-{hit.id}"):
        for i, crumb in enumerate(crumbs):
            label = crumb.name + (f" {CRUMB_SEPARATOR}" if i < len(crumbs) - 1 else "")
            st.button(label, key=f"crumb:{hit.id}:{crumb.rank.label}", type="tertiary", on_click=_narrow,
                      args=(crumb.key,), help=f"Only this {crumb.rank.label}: {crumb.key}")


def render_card(hit: SearchHit) -> None:
    with st.container(border=True):
        picture = thumbnail(hit.root, hit.path)
        if picture is not None:
            st.image(picture, width="stretch")
        else:
            st.caption(":material/hide_image: image unavailable")
        title, scientific = hit_title(hit)
        st.markdown(f"**{title}**" + (f"  \n*{scientific}*" if scientific else ""))
        score = f"{hit.score:.3f}" if hit.score is not None else "–"
        st.caption(f"similarity {score}" + (f" · {hit.split}" if hit.split else ""))
        render_breadcrumb(hit)
        with st.container(horizontal=True, key=f"actions-{hit.id}"):
            st.button("Look-alikes", key=f"alike:{hit.id}", icon=":material/image_search:", on_click=_look_alikes,
                      args=(hit.id,))
            st.button("Identify", key=f"identify:{hit.id}", icon=":material/biotech:", on_click=_identify,
                      args=(hit.id,))


def render_results(hits: Sequence[SearchHit], clade: str | None = None, excluded: bool = False) -> None:
    """The hits as a grid of cards, three to a row."""
    st.html(CARD_STYLE)
    where = f" {'outside' if excluded else 'inside'} `{clade}`" if clade else ""
    if not hits:
        st.info(f"No image found{where}.")
        return
    st.caption(f"{len(hits)} images{where}, most similar first")
    for start in range(0, len(hits), COLUMNS):
        for column, hit in zip(st.columns(COLUMNS), hits[start:start + COLUMNS]):
            with column:
                render_card(hit)


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
