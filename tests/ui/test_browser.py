"""End to end: `streamlit run ui/app.py` on a free local port, driven by headless Chromium (playwright).

A text search must put result images on the page; each mode is then saved as a screenshot to
docs/screenshots/ (describe.png, lookalikes.png, identify.png), the pictures the README shows.
Debian's chromium is used (`/usr/bin/chromium`, or $TOL_CHROMIUM); playwright's own browsers
are never downloaded. The server listens on 127.0.0.1 only.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui.built_index import BuiltIndex
from tests.ui.conftest import APP

CHROMIUM = os.environ.get("TOL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1440, "height": 1400}
START_TIMEOUT_S = 90
RESULT_TIMEOUT_MS = 150_000  # the first search imports torch and loads the model in the server
TEXT = "a photo of Felis catus with common name domestic cat."
K_FOR_SCREENSHOTS = 6  # two rows of cards: the whole page fits the picture

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"streamlit did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def server(built_index: BuiltIndex, tmp_path: Path) -> Iterator[str]:
    """The app served from its own copy of the built store; yields its URL."""
    built_index.store_copy(tmp_path / "var" / "qdrant")
    port = free_port()
    # The server runs in tmp_path with the store at its default place, as `python -m embed build` leaves it.
    env = {**os.environ, **built_index.env(Path("var/qdrant")), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    log = tmp_path / "streamlit.log"
    command = [
        sys.executable, "-m", "streamlit", "run", APP, "--server.address", "127.0.0.1", "--server.port", str(port),
        "--server.headless", "true", "--server.fileWatcherType", "none", "--global.developmentMode", "false",
        "--theme.base", "light", "--client.toolbarMode", "minimal",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_images(page, count: int) -> None:
    """At least `count` result images on the page, every one of them loaded."""
    page.wait_for_function(
        """n => {
            const imgs = [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stImage"] img')];
            return imgs.length >= n && imgs.every(i => i.complete && i.naturalWidth > 0);
        }""",
        arg=count, timeout=RESULT_TIMEOUT_MS,
    )
    page.wait_for_timeout(600)  # let the layout settle before a screenshot


def settled(page) -> None:
    """Wait until the script run is over: no 'running' indicator, no element left from the previous run."""
    page.mouse.move(0, 0)  # no tooltip in the picture
    page.wait_for_timeout(300)  # the click's rerun has started
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
                 && !document.querySelector('[data-stale="true"]')""",
        timeout=RESULT_TIMEOUT_MS)


@pytest.mark.skipif(not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists(), reason=f"no chromium at {CHROMIUM}")
def test_text_search_in_the_browser_and_screenshots(server: str):
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
            page.goto(server, wait_until="domcontentloaded")
            page.get_by_text("Filter by clade").wait_for(timeout=RESULT_TIMEOUT_MS)

            # Fewer results make a picture that shows the whole page.
            slider = page.get_by_role("slider", name="Results")
            slider.focus()
            for _ in range((12 - K_FOR_SCREENSHOTS) // 3):
                slider.press("ArrowLeft")
            settled(page)
            page.get_by_role("slider", name="At most per species").press("ArrowRight")  # one per species
            settled(page)

            box = page.get_by_placeholder("a photo of a striped cat", exact=False)
            box.fill(TEXT)
            box.press("Enter")
            wait_for_images(page, K_FOR_SCREENSHOTS)
            sources = page.locator('[data-testid="stMain"] [data-testid="stImage"] img').evaluate_all(
                "imgs => imgs.map(i => i.getAttribute('src'))")
            assert len(sources) == K_FOR_SCREENSHOTS
            assert all("/media/" in src for src in sources), sources  # served by streamlit from memory, not files
            assert page.get_by_text("In these results").is_visible()
            page.screenshot(path=str(SCREENSHOTS / "describe.png"))

            page.get_by_role("button", name="Look-alikes").nth(1).click()
            settled(page)
            wait_for_images(page, K_FOR_SCREENSHOTS + 1)  # the query and its look-alikes
            page.screenshot(path=str(SCREENSHOTS / "lookalikes.png"))

            page.get_by_role("button", name="Identify").nth(2).click()
            settled(page)
            page.get_by_text("Top species taxa").wait_for(timeout=RESULT_TIMEOUT_MS)
            wait_for_images(page, 1)
            settled(page)
            assert page.locator(".tol-row.tol-path").count() == 7  # kingdom .. species
            assert page.locator('[data-testid="stMain"] [data-testid="stImage"] img').count() == 1
            page.screenshot(path=str(SCREENSHOTS / "identify.png"))
        finally:
            browser.close()
    for name in ("describe.png", "lookalikes.png", "identify.png"):
        assert (SCREENSHOTS / name).stat().st_size > 10_000
