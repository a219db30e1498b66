"""A block of HTML whose buttons act, as one element of the page (`st.components.v2`): the result cards,
the closest taxa.

Twelve result cards drawn as widgets (a bordered container, the picture, the names, a breadcrumb of
seven links, three buttons) made about 100 elements for the browser to lay out on every search: most
of the time from a query to its results. Here they are one block of HTML (`ui.views.card_html`, the
pictures inline) that the browser sets in one go. A button names what it asks for (`data-action`:
narrow, detail, alike, identify) and on what (`data-target`); its click comes back as
`{"action": ..., "target": ...}` and the state transitions of `ui.state` run in a callback.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import streamlit as st

from ui import state
from ui.views import DETAILS, IDENTIFY_THIS, LOOK_ALIKES, NARROW

COMPONENT = "tol_clickable_html"
EVENT = "action"  # the trigger a click sends: {"action": ..., "target": ...}

CSS = """
.tol-cards {display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 1rem;}
.tol-card {border: 1px solid rgba(49, 51, 63, 0.2); border-radius: 0.5rem; padding: 0.75rem; min-width: 0;
  font-size: 0.9rem; line-height: 1.3; display: flex; flex-direction: column; gap: 0.35rem;}
.tol-card img {width: 100%; aspect-ratio: 1; object-fit: cover; border-radius: 0.35rem; display: block;}
.tol-no-image {aspect-ratio: 1; display: flex; align-items: center; justify-content: center; color: #6b7280;
  background: #f3f6f2; border-radius: 0.35rem; font-size: 0.8rem;}
.tol-card-text > div {white-space: nowrap; overflow: hidden; text-overflow: ellipsis;}
.tol-card-title {font-weight: 600;}
.tol-card-meta {color: #6b7280; font-size: 0.8rem; font-variant-numeric: tabular-nums;}
.tol-card button {font: inherit; cursor: pointer; color: inherit;}
.tol-crumbs {display: flex; flex-wrap: wrap; column-gap: 0.25rem;}
.tol-crumbs button {border: none; background: none; padding: 0; font-size: 0.78rem; line-height: 1.35;
  color: #4b5563;}
.tol-crumbs button:hover {color: #1f5135; text-decoration: underline;}
.tol-actions {display: flex; flex-wrap: wrap; gap: 0.35rem;}
.tol-actions button {display: inline-flex; align-items: center; gap: 0.25rem; font-size: 0.8rem;
  padding: 0.15rem 0.45rem; border: 1px solid rgba(49, 51, 63, 0.2); border-radius: 0.5rem; background: #fff;}
.tol-actions button:hover {border-color: #2e7d4f; color: #2e7d4f;}
.tol-taxa button {display: block; border: none; background: none; padding: 0.2rem 0; text-align: left;
  font-size: 0.9rem; color: inherit;}
.tol-taxa button:hover {color: #1f5135; text-decoration: underline;}
.tol-icon {font-family: "Material Symbols Rounded"; font-size: 1.05rem; line-height: 1; font-weight: normal;}
@media (max-width: 640px) {
  .tol-cards {gap: 0.35rem;}
  .tol-card {padding: 0.3rem; font-size: 0.78rem;}
  .tol-card .tol-crumbs, .tol-actions .tol-label {display: none;}
  .tol-actions {gap: 0.1rem;}
  .tol-actions button {padding: 0.1rem 0.2rem;}
}
"""

# Called with the data of every run: the HTML is replaced only when it changed (no flicker of the pictures).
JS = """
export default function ({ parentElement, data, setTriggerValue }) {
  const block = parentElement.querySelector(".tol-clickable");
  if (block.tolHtml !== data.html) {
    block.innerHTML = data.html;
    block.tolHtml = data.html;  // a property, not an attribute: the DOM keeps no second copy of the pictures
  }
  block.onclick = (event) => {
    const button = event.target.closest("button[data-action]");
    if (button) setTriggerValue("%s", {action: button.dataset.action, target: button.dataset.target});
  };
}
""" % EVENT

_mount = st.components.v2.component(COMPONENT, html='<div class="tol-clickable"></div>', css=CSS, js=JS,
                                    isolate_styles=False)


def narrow_to(key: str) -> None:
    """Only clade `key` from now on (a breadcrumb's part, a closest taxon): the results, not a detail view."""
    state.open_detail(st.session_state, None)
    state.set_clade(st.session_state, key)
    st.session_state[state.EXCLUDE] = False


HANDLERS: Mapping[str, Callable[[str], None]] = {
    NARROW: narrow_to,
    DETAILS.action: lambda image_id: state.open_detail(st.session_state, image_id),
    LOOK_ALIKES.action: lambda image_id: state.look_alikes_of(st.session_state, image_id),
    IDENTIFY_THIS.action: lambda image_id: state.identify_this(st.session_state, image_id),
}


def on_click(key: str) -> None:
    """Run what a click in the block `key` asked for (an unknown action, from an old page, is ignored)."""
    event: Any = st.session_state[key][EVENT]
    if isinstance(event, dict) and event.get("action") in HANDLERS and event.get("target"):
        HANDLERS[event["action"]](str(event["target"]))


def render_clickable(html: str, key: str) -> None:
    """`html` (trusted: built by `ui.views` with every text escaped) as one element, updated by every run
    under the same `key`; its buttons act through `on_click`."""
    _mount(key=key, data={"html": html}, **{f"on_{EVENT}_change": partial(on_click, key)})
