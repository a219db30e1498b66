"""End to end: `streamlit run ui/app.py` driven by headless Chromium; a text search puts images on the page.

The driving itself is tests/ui/browser.py, which also takes the README's screenshots.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui.browser import CHROMIUM, SCREENSHOT_NAMES, check_tool, serve, take_screenshots
from tests.built_index import BuiltIndex

pytestmark = pytest.mark.slow

TARGET_MS = 300  # issue 13's target for describe with k = 12 on the demo
# What fails here is a regression (a model loaded per query, a full page load, a redraw that never settles):
# on a shared 2-core machine (load ~10) one describe takes 2-4 s, so the target is reported, not enforced.
LIMIT_MS = 8000
PHONE_LIMIT_PX = 4000  # twelve full-width cards stacked took about 8,000 px


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


def test_the_ui_as_a_tool_in_the_browser(server: str, tmp_path: Path, record_property):
    """A shared link, the export, the detail view, no Deploy button, the phone layout, and the time from
    the query to the results (p50 of five describe searches, k = 12)."""
    report = check_tool(server, tmp_path / "tool")
    record_property("describe_p50_ms", round(report.p50_ms, 1))
    record_property("phone_height_px", round(report.phone_height_px))
    print(f"describe k=12, query to results: p50 {report.p50_ms:.0f} ms over {len(report.describe_ms)} runs "
          f"({', '.join(f'{ms:.0f}' for ms in report.describe_ms)}); target {TARGET_MS} ms "
          f"{'met' if report.p50_ms < TARGET_MS else 'NOT met'}; phone page {report.phone_height_px:.0f} px")
    assert report.p50_ms < LIMIT_MS, report.describe_ms
    assert report.phone_height_px < PHONE_LIMIT_PX, report.phone_height_px
