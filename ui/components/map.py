"""A map of the collection: every image (up to `embed.search.MAP_LIMIT`) placed by its vector projected
to 2-D (PCA, `ui.projection`), coloured by a chosen rank, inside the clade filter; clicking a point
opens that image's detail view."""
from __future__ import annotations

import altair as alt
import numpy as np
import streamlit as st

from embed.search import SearchHit, SearchService
from index.store import SearchFilter
from taxonomy import RANK_LABELS, Rank
from ui import state
from ui.projection import map_rows, pca_2d, picked_id

PICK = "pick"  # the chart's selection parameter
MAP_HEIGHT = 560
MAP_CACHE_ENTRIES = 16
POINT_SIZE = 70


@st.cache_data(max_entries=MAP_CACHE_ENTRIES, show_spinner="Projecting the collection…", ttl=600)
def _projected(_service: SearchService, store: str, vector: str, filter_key: str,
               _filter: SearchFilter | None) -> tuple[list[SearchHit], np.ndarray]:
    # Keyed on the store, the model's vector and the filter (as text); the service itself is not hashed.
    hits, vectors = _service.image_vectors(_filter)
    return hits, pca_2d(vectors) if len(hits) else np.zeros((0, 2))


def _open_picked() -> None:
    image_id = picked_id(st.session_state.get(state.MAP_CHART), PICK)
    if image_id:
        state.open_detail(st.session_state, image_id)


def render_map_toggle() -> bool:
    """The switch between the mode's results and the map of the collection."""
    return st.toggle("Map", key=state.MAP, help="Every image of the collection placed by its vector")


@st.fragment
def render_map(service: SearchService, search_filter: SearchFilter | None) -> None:
    """The map, with its colour rank; the filters in force apply.

    A fragment: another colour reruns the map only; a click on a point reruns the whole page, for its detail.
    """
    if st.session_state.get(state.DETAIL):
        st.rerun(scope="app")
    hits, xy = _projected(service, service.store.location, service.vector_name, repr(search_filter), search_filter)
    if not hits:
        st.info("No image of the collection matches the filters.")
        return
    colour = Rank.parse(st.selectbox("Colour by", RANK_LABELS, key=state.MAP_RANK))
    rows = map_rows(hits, xy, colour)
    pick = alt.selection_point(name=PICK, fields=["id"], on="click")
    chart = (
        alt.Chart(alt.Data(values=rows))
        .mark_circle(size=POINT_SIZE, opacity=0.8)
        .encode(
            x=alt.X("x:Q", axis=None), y=alt.Y("y:Q", axis=None),
            color=alt.Color(f"{colour.label}:N", legend=alt.Legend(title=colour.label, orient="right")),
            tooltip=[alt.Tooltip("name:N"), alt.Tooltip(f"{colour.label}:N"), alt.Tooltip("path:N")],
        )
        .add_params(pick)
        .properties(height=MAP_HEIGHT)
    )
    st.caption(f"{len(rows)} images, placed by their {service.vector_name!r} vectors (PCA to 2-D); "
               "click a point to open it.")
    st.altair_chart(chart, key=state.MAP_CHART, on_select=_open_picked, selection_mode=PICK, width="stretch")
