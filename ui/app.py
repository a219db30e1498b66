"""Tree-of-life search in the browser: `streamlit run ui/app.py`.

Three modes over one store: describe (text -> images), look-alikes (image -> images) and
identify (image -> taxa), with a clade filter that follows the tree. The page only lays out;
widgets live in `ui/components`, the search in `embed.search`. Configuration comes from
`TOL_STORE`, `TOL_DB` and `TOL_MODEL` (see `ui/services.py`).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

# `streamlit run ui/app.py` puts ui/ on the path, not the repository root that holds the packages.
ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Sessions run in threads of one process, beside the browser on a laptop: OpenMP threads that spin at the end of
# every op of the model burn the cores these need (one core busy elsewhere: a describe's p50 23 ms, its worst
# 151 ms; waiting passively: 10 and 18 ms, and the same two-thread speed on an idle machine). Read when torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st  # noqa: E402

TITLE = "Tree of life search"


def app() -> None:
    from ui import state
    from ui.components.batch import render_batch_identify
    from ui.components.detail import render_detail
    from ui.components.filters import render_active_filters, render_filters
    from ui.components.map import render_map, render_map_toggle
    from ui.components.modes import render_describe_part, render_identify, render_lookalikes
    from ui.components.query import render_mode
    from ui.components.share import restore_from_url, write_to_url
    from ui.components.sidebar import render_empty_store, render_sidebar
    from ui.services import UiConfig, service_or_error

    st.set_page_config(page_title=TITLE, page_icon=":material/forest:", layout="wide")
    state.init(st.session_state)
    state.keep(st.session_state)
    config = UiConfig.from_env()
    service, error = service_or_error(config)
    counts = render_sidebar(config, service, error)

    st.title(TITLE, anchor=False)
    if service is None or counts is None or counts.is_empty:
        render_empty_store(config, error)
        return
    restore_from_url(service)
    options = render_filters(service)
    with st.container(horizontal=True, vertical_alignment="center"):
        mode = render_mode()
        show_map = render_map_toggle()
    render_active_filters()
    if st.session_state.get(state.DETAIL):
        render_detail(service, options.filter)
    elif show_map:
        render_map(service, options.filter)
    elif mode == state.DESCRIBE:
        render_describe_part(service, options)
        return  # the part writes the URL itself, on its own reruns too
    elif mode == state.LOOKALIKES:
        render_lookalikes(service, options)
    else:
        render_identify(service, options)
        render_batch_identify(service, options)
    write_to_url()


app()
