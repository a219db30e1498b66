"""The query: the mode, a text with examples from the store, or an image uploaded or picked from the collection."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import streamlit as st

from embed.search import SearchService, TextSearch
from index.store import SearchFilter
from ui import state
from ui.services import thumbnail
from ui.uploads import MAX_UPLOAD_MB, UPLOAD_TYPES, UploadError, load_upload
from ui.views import examples, option_label, short_label

if TYPE_CHECKING:
    from PIL import Image

PREVIEW_PX = 256


@dataclass(frozen=True)
class ImageQuery:
    """A query image: a collection image (`image_id`, its stored vector is used) or an upload (`image`)."""

    label: str
    image_id: str | None = None
    image: "Image.Image | None" = None
    preview: "bytes | Image.Image | None" = None

    @property
    def query(self) -> "str | Image.Image":
        return self.image_id if self.image_id is not None else self.image  # type: ignore[return-value]


def _close_detail() -> None:
    state.open_detail(st.session_state, None)
    st.session_state[state.MAP] = False


def render_mode() -> str:
    """Describe, look-alikes or identify (choosing one closes an image's detail view and the map)."""
    mode = st.segmented_control(
        "Mode", state.MODES, key=state.MODE, required=True, label_visibility="collapsed", on_change=_close_detail,
        format_func=lambda m: f"{state.MODE_LABELS[m]}  ·  {state.MODE_HELP[m]}",
    )
    return mode or state.DESCRIBE


def _on_example() -> None:
    state.use_example(st.session_state, st.session_state.get(state.EXAMPLE))


@st.cache_data(show_spinner=False, max_entries=8)
def _examples(_service: SearchService, store: str, model: str) -> list[tuple[str, str]]:
    return [(e.label, e.text) for e in examples(_service)]


def render_text_query(service: SearchService) -> str | None:
    """A text box and example texts from the taxa of the store; the text, or None when empty."""
    offered = dict(_examples(service, service.store.location, service.vector_name))
    text = st.text_input(
        "Describe what you are looking for", key=state.TEXT, icon=":material/search:",
        placeholder="a photo of a striped cat, Felis catus, a horsetail…",
    )
    if offered:
        by_text = {t: label for label, t in offered.items()}
        st.pills("Try", list(by_text), key=state.EXAMPLE, format_func=by_text.get, on_change=_on_example)
    return text.strip() or None


def render_reading(found: TextSearch, text: str) -> None:
    """What the text was read as: the taxon searched with (a choice when the name is ambiguous), one click
    to keep only the images labelled inside it; or a note that a text naming nothing matched weakly."""
    taxon, reading = found.taxon, found.reading
    if taxon is None:
        if found.weak:
            st.warning(f"“{reading.text}” names no taxon here, and nothing in the store matches it well: "
                       "these results are likely unrelated.", icon=":material/help:")
        return
    understood, narrow = st.columns((4, 1.4), vertical_alignment="center")
    with understood:
        if reading.is_ambiguous:
            keys = [t.key for t in reading.taxa]
            by_key = {t.key: t for t in reading.taxa}
            st.radio(f"“{reading.text}” names {len(keys)} taxa; searching", keys, key=state.meaning_key(text),
                     index=keys.index(taxon.key), format_func=lambda k: by_key[k].describe(), horizontal=False)
        else:
            st.markdown(f"Searching **{taxon.rank.label} *{taxon.name}***"
                        + (f" ({taxon.common_name})" if taxon.common_name else "")
                        + f" with its own vector · {' › '.join(n for n in taxon.key.split('/')[:-1] if n)}")
    with narrow:
        st.button(f"Only images inside {taxon.name}", icon=":material/filter_alt:", key="narrow_to_taxon",
                  on_click=state.set_clade, args=(st.session_state, taxon.key),
                  help="Keep only the images labelled inside this taxon (the clade filter)")


def _picker(service: SearchService, search_filter: SearchFilter | None) -> ImageQuery | None:
    hits = {h.id: h for h in service.sample_images(search_filter)}
    picked = st.session_state.get(state.PICKED)
    if picked and picked not in hits:
        hit = service.image(picked)
        if hit is None:
            st.session_state[state.PICKED] = None
        else:
            hits = {hit.id: hit, **hits}
    if not hits:
        st.info("No collection image matches the filter.")
        return None
    chosen = st.selectbox("Collection image", list(hits), key=state.PICKED, placeholder="Choose an image…",
                          format_func=lambda i: option_label(hits[i]))
    if chosen is None:
        return None
    hit = hits[chosen]
    return ImageQuery(label=short_label(hit), image_id=hit.id, preview=thumbnail(hit.root, hit.path, PREVIEW_PX))


def _uploader() -> ImageQuery | None:
    upload = st.file_uploader(
        f"Upload a picture (up to {MAX_UPLOAD_MB} MB)", type=list(UPLOAD_TYPES), key=state.UPLOAD,
        max_upload_size=MAX_UPLOAD_MB,
    )
    if upload is None:
        return None
    try:
        image = load_upload(upload.name, upload.getvalue())
    except UploadError as e:
        st.error(str(e), icon=":material/block:")
        return None
    return ImageQuery(label=upload.name, image=image, preview=image)


def render_image_query(service: SearchService, search_filter: SearchFilter | None,
                       preview_width: int | str = PREVIEW_PX) -> ImageQuery | None:
    """Upload or pick an image; shows it and returns it (None until there is one)."""
    source = st.radio("Image", state.SOURCES, key=state.SOURCE, horizontal=True,
                      format_func=state.SOURCE_LABELS.get, label_visibility="collapsed")
    query = _picker(service, search_filter) if source == state.FROM_COLLECTION else _uploader()
    if query is not None and query.preview is not None:
        st.image(query.preview, caption=query.label, width=preview_width)
    return query
