"""End to end: `streamlit run ui/app.py` driven by headless Chromium; a text search puts images on the page.

The driving itself is tests/ui/browser.py, which also takes the README's screenshots.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui.browser import CHROMIUM, SCREENSHOT_NAMES, serve, take_screenshots
from tests.ui.built_index import BuiltIndex

pytestmark = pytest.mark.slow


@pytest.fixture
def server(built_index: BuiltIndex, tmp_path: Path) -> Iterator[str]:
    """The app served from its own copy of the built store; yields its URL."""
    built_index.store_copy(tmp_path / "var" / "qdrant")
    # The server runs in tmp_path with the store at its default place, as `python -m embed build` leaves it.
    with serve(tmp_path, {**os.environ, **built_index.env(Path("var/qdrant"))}, tmp_path / "streamlit.log") as url:
        yield url


def test_text_search_in_the_browser_and_screenshots(server: str, tmp_path: Path):
    assert Path(CHROMIUM).exists(), f"no chromium at {CHROMIUM}: install Debian's chromium (make test does)"
    shots = take_screenshots(server, tmp_path / "screenshots")
    assert [p.name for p in shots] == list(SCREENSHOT_NAMES)
    for path in shots:
        assert path.stat().st_size > 10_000, path
