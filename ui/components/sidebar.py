"""The side panel's header: which store and model are searched, and what they hold; how to build an empty one."""
from __future__ import annotations

import streamlit as st

from embed.search import SearchService, StoreCounts
from taxonomy import Rank
from ui.services import UiConfig

BUILD_STEPS = """\
This store holds no vectors of **{model}** yet. Build it from a collection, then reload this page:

```bash
# the demo: a generated collection, a tiny model, the build and this app
python -m demo

# or your own collection (a CSV catalog, or one folder per species)
python -m embed build --catalog catalog.csv --images DIR --model {model} --store {store} --db {db}
```

The app reads `TOL_STORE`, `TOL_DB` and `TOL_MODEL` from the environment.
"""


def render_sidebar(config: UiConfig, service: SearchService | None, error: str) -> StoreCounts | None:
    """Store, model and counts; None when the store could not be opened."""
    with st.sidebar:
        st.markdown("## :material/forest: Tree of life")
        st.caption(f"Store `{config.store}`")
        st.caption(f"Model `{config.model}`" + (f" · vector `{service.vector_name}`" if service else ""))
        if service is None:
            st.error(f"The store cannot be opened: {error}")
            return None
        counts = service.counts()
        left, right = st.columns(2)
        left.metric("Images", f"{counts.images:,}")
        right.metric("Species", f"{counts.taxa.get(Rank.SPECIES.label, 0):,}")
        st.caption(" · ".join(f"{n:,} {label}" for label, n in counts.taxa.items() if label != Rank.SPECIES.label
                              and n) or "no taxa")
        if service.catalog is None:
            st.caption(":material/warning: No catalog found: thumbnails cannot be shown.")
        st.divider()
    return counts


def render_empty_store(config: UiConfig, error: str = "") -> None:
    """What to do when there is nothing to search: the build commands, not an error."""
    st.info(":material/construction: Nothing to search yet." if not error else f"The store cannot be opened: {error}")
    st.markdown(BUILD_STEPS.format(model=config.model, store=config.store, db=config.db))
