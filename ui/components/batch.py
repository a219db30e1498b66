"""Identify several uploads at once into one table with pybioclip's columns, downloadable as CSV or JSON.

A component of its own beside the identify view (which draws one image's identification): it calls
`SearchService.identify` per picture and writes the rows `embed.predict` writes for `predict --format csv`.
"""
from __future__ import annotations

import hashlib

import streamlit as st

from embed.models import ModelUnavailableError
from embed.predict import pybioclip_columns
from embed.search import SearchService
from index.store import SearchFilter, StoreError
from taxonomy import Rank
from ui import state
from ui.components.filters import QueryOptions
from ui.exports import CSV_MIME, JSON_MIME, identification_rows, to_csv, to_json
from ui.uploads import MAX_UPLOAD_MB, UPLOAD_TYPES, UploadError, load_upload

BATCH_K = 5  # taxa per picture, pybioclip's default
BATCH_CACHE_ENTRIES = 256
EXPORT_NAME = "tol-identifications"


@st.cache_data(max_entries=BATCH_CACHE_ENTRIES, show_spinner=False)
def _rows(_service: SearchService, store: str, vector: str, name: str, digest: str, _data: bytes, rank: str,
          k: int, method: str, filter_key: str, _filter: SearchFilter | None) -> list[dict[str, object]]:
    # Keyed on the picture's sha256, not its bytes: a rerun need not identify the same pictures again.
    found = _service.identify(load_upload(name, _data), k, method, _filter)
    return identification_rows(name, found, Rank.parse(rank), k)


@st.fragment
def render_batch_identify(service: SearchService, options: QueryOptions) -> None:
    """Several pictures in, one row per picture and candidate taxon out (at the chosen rank).

    A fragment: adding or removing pictures reruns this part only, not the identification beside it.
    """
    with st.expander("Identify several pictures at once", icon=":material/table_view:"):
        uploads = st.file_uploader(f"Pictures (up to {MAX_UPLOAD_MB} MB each)", type=list(UPLOAD_TYPES),
                                   accept_multiple_files=True, key=state.BATCH_UPLOADS, max_upload_size=MAX_UPLOAD_MB)
        if not uploads:
            st.caption(f"The top {BATCH_K} {options.rank.label} taxa of each picture, in pybioclip's columns.")
            return
        rows: list[dict[str, object]] = []
        for upload in uploads:
            data = upload.getvalue()
            try:
                rows += _rows(service, service.store.location, service.vector_name, upload.name,
                              hashlib.sha256(data).hexdigest(), data, options.rank.label, BATCH_K, options.method,
                              repr(options.filter), options.filter)
            except (UploadError, StoreError, ValueError, ModelUnavailableError) as e:
                st.error(f"{upload.name}: {e}" if not isinstance(e, UploadError) else str(e), icon=":material/block:")
        if not rows:
            return
        columns = pybioclip_columns(options.rank)
        st.dataframe(rows, column_order=columns, hide_index=True, width="stretch", key="batch_table")
        with st.container(horizontal=True, key="batch_export"):
            st.download_button("CSV", to_csv(rows, columns), f"{EXPORT_NAME}.csv", CSV_MIME, key="batch_csv",
                               icon=":material/download:", on_click="ignore", type="tertiary")
            st.download_button("JSON", to_json(rows), f"{EXPORT_NAME}.json", JSON_MIME, key="batch_json",
                               icon=":material/download:", on_click="ignore", type="tertiary")
