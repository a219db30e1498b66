"""Download buttons for what is on the page: image results as CSV and JSON (see `ui.exports`)."""
from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from embed.search import SearchHit
from ui.exports import CSV_MIME, EXPORT_COLUMNS, JSON_MIME, hit_rows, to_csv, to_json

EXPORT_NAME = "tol-results"


def render_export(hits: Sequence[SearchHit], name: str = EXPORT_NAME) -> None:
    """CSV and JSON of `hits` (id, path, lineage, score, split, source, license); no rerun on click.

    The files are made on a click (deferred), not on every run: an eager file is a media file that the
    browser fetches again after each search, two requests more while the results are drawn."""
    rows = hit_rows(hits)
    with st.container(horizontal=True, key="export", gap="small"):
        st.download_button("CSV", lambda: to_csv(rows, EXPORT_COLUMNS), f"{name}.csv", CSV_MIME, key="export_csv",
                           icon=":material/download:", on_click="ignore", type="tertiary",
                           help="Download these results as CSV")
        st.download_button("JSON", lambda: to_json(rows), f"{name}.json", JSON_MIME, key="export_json",
                           icon=":material/download:", on_click="ignore", type="tertiary",
                           help="Download these results as JSON")
