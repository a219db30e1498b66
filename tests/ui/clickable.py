"""The app's clickable blocks (`ui.components.clickable`: the result cards, the closest taxa) under AppTest.

AppTest has no element type for a custom component: it keeps one as an `UnknownElement` holding the
component's proto, whose data is the block's HTML. A click here is what the browser sends for one:
a trigger value for the component's events widget, in the widget states of the next run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser

from streamlit.components.v2.bidi_component.main import _make_trigger_id
from streamlit.testing.v1 import AppTest

from ui.components.clickable import EVENT


@dataclass
class Button:
    action: str
    target: str
    label: str = ""


@dataclass
class Card:
    """A result card: its image, whether it shows a picture, its buttons (breadcrumb parts, then actions)."""

    id: str
    picture: str = ""  # the <img> source
    buttons: list[Button] = field(default_factory=list)

    def crumbs(self) -> list[Button]:
        return [b for b in self.buttons if b.action == "narrow"]


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cards: list[Card] = []
        self.buttons: list[Button] = []
        self._button: Button | None = None
        self._in_label = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if "tol-card" in values.get("class", "").split():
            self.cards.append(Card(values["data-id"]))
        elif tag == "img" and self.cards:
            self.cards[-1].picture = values.get("src", "")
        elif tag == "span" and values.get("class") == "tol-label":
            self._in_label = True
        elif tag == "button":
            self._button = Button(values["data-action"], values["data-target"])
            self.buttons.append(self._button)
            if self.cards:
                self.cards[-1].buttons.append(self._button)

    def handle_data(self, data: str) -> None:
        if self._button is not None and self._in_label:
            self._button.label += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "span":
            self._in_label = False
        elif tag == "button":
            self._button = None


def block(at: AppTest, key: str):
    """The clickable block keyed `key` on the page, or None."""
    return next((e for e in at.get("bidi_component") if e.key == key), None)


def block_html(at: AppTest, key: str) -> str:
    element = block(at, key)
    return json.loads(element.proto.json)["html"] if element is not None else ""


def read(at: AppTest, key: str) -> _Reader:
    reader = _Reader()
    reader.feed(block_html(at, key))
    return reader


def cards(at: AppTest, key: str) -> list[Card]:
    return read(at, key).cards


def buttons(at: AppTest, key: str) -> list[Button]:
    return read(at, key).buttons


def send_click(at: AppTest, key: str, action: str, target: str) -> AppTest:
    """Send what the browser sends for a click on a button of block `key` (offered or not), and run."""
    states = at._tree.get_widget_states()  # what AppTest's own run sends, and the click
    clicked = states.widgets.add()
    clicked.id = _make_trigger_id(block(at, key).proto.id, "events")
    clicked.json_trigger_value = json.dumps([{"event": EVENT, "value": {"action": action, "target": target}}])
    at._run(states)
    assert not at.exception, at.exception
    return at


def click(at: AppTest, key: str, action: str, target: str) -> AppTest:
    """Click the button of block `key` that asks for `action` on `target` (it must be on the page), and run."""
    assert block(at, key) is not None, f"no block {key!r} on the page"
    assert any(b.action == action and b.target == target for b in buttons(at, key)), (key, action, target)
    return send_click(at, key, action, target)
