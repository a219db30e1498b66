"""An image's detail view: the whole picture (not the square thumbnail), every catalog field with its
provenance, licence and sha256, the lineage as a breadcrumb, and its look-alikes.

It replaces the results while `state.DETAIL` names an image (a card's "Details", a point of the map);
"Back to the results" closes it.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from embed.search import SearchService
from index.store import SearchFilter
from ui import state
from ui.components.results import render_breadcrumb, render_cards
from ui.views import detail_fields, full_image_bytes, hit_title

DETAIL_LOOKALIKES = 6
DETAIL_CARDS = "detail-cards"
DETAIL_BREADCRUMB = "detail-breadcrumb"
IMAGE_CACHE_ENTRIES = 32
DETAIL_RATIO = (1.3, 1)  # picture | fields


@st.cache_data(max_entries=IMAGE_CACHE_ENTRIES, show_spinner=False)
def _full_image(root: str, path: str) -> bytes | None:
    return full_image_bytes(root, path)


def _back() -> None:
    state.open_detail(st.session_state, None)


def render_detail(service: SearchService, search_filter: SearchFilter | None = None) -> None:
    """The detail view of the image `state.DETAIL` names; its look-alikes follow the filters in force."""
    image_id = st.session_state.get(state.DETAIL)
    st.button("Back to the results", key="detail_back", icon=":material/arrow_back:", on_click=_back)
    hit = service.image(image_id) if image_id else None
    if hit is None:
        st.warning(f"No image {image_id!r} in the store.")
        return
    record = service.catalog.image(hit.id) if service.catalog is not None else None
    title, scientific = hit_title(hit)
    st.markdown(f"### {title}" + (f"  \n*{scientific}*" if scientific else ""))
    render_breadcrumb(hit, DETAIL_BREADCRUMB)
    picture_column, fields_column = st.columns(DETAIL_RATIO, gap="large")
    with picture_column:
        picture = _full_image(hit.root, hit.path)
        if picture is not None:
            width, height = (record.width, record.height) if record is not None else (0, 0)
            st.image(picture, caption=f"{hit.path}" + (f" · {width}×{height} px" if width else ""))
        else:
            st.caption(":material/hide_image: image unavailable")
    with fields_column:
        st.markdown("##### Catalog record")
        fields = detail_fields(hit, record)
        # A plain table, not a data grid: every value is text on the page (selectable, findable, printable).
        st.table(pd.DataFrame({"value": [value for _, value in fields]}, index=[name for name, _ in fields]))
        if record is None:
            st.caption("No catalog: only what the store holds is shown (no sha256, no size).")
    st.markdown("##### Look-alikes")
    alikes = service.image_to_images(hit.id, DETAIL_LOOKALIKES, search_filter)
    render_cards(alikes, DETAIL_CARDS)
