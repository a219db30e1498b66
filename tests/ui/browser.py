"""Drive the real app: `streamlit run ui/app.py` on a free 127.0.0.1 port, in Debian's headless chromium.

Used by tests/ui/test_browser.py, and to take the README's screenshots from the trained demo:

    TOL_STORE=var/qdrant TOL_DB=var/catalog.db TOL_MODEL=var/models/demo \\
        .venv/bin/python -m tests.ui.browser --out docs/screenshots

playwright's own browsers are never downloaded: chromium is `/usr/bin/chromium` or $TOL_CHROMIUM.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")
CHROMIUM = os.environ.get("TOL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 1400}
START_TIMEOUT_S = 90
RESULT_TIMEOUT_MS = 150_000  # the first search imports torch and loads the model in the server
TEXT = "a photo of Felis catus with common name domestic cat."
K_FOR_SCREENSHOTS = 6  # two rows of cards: the whole page fits the picture
SCREENSHOT_NAMES = ("describe.png", "lookalikes.png", "identify.png")
# Which result card opens look-alikes (among the text search's) and identify (among the look-alikes'),
# counted from 0: on the shipped demo model these show right answers (the README's pictures).
LOOKALIKES_CARD = 0
IDENTIFY_CARD = 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"streamlit did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@contextmanager
def serve(cwd: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """The app served from `cwd` with `env` (TOL_STORE, TOL_DB, TOL_MODEL); yields its URL."""
    port = free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", APP, "--server.address", "127.0.0.1", "--server.port", str(port),
        "--server.headless", "true", "--server.fileWatcherType", "none", "--global.developmentMode", "false",
        "--theme.base", "light", "--client.toolbarMode", "minimal",
    ]
    env = {**env, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
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



def take_screenshots(url: str, out: Path, lookalikes_card: int = LOOKALIKES_CARD,
                     identify_card: int = IDENTIFY_CARD) -> list[Path]:
    """Run a text search, then each mode, checking the page; save one screenshot per mode in `out`.

    Look-alikes starts from result card `lookalikes_card` of the text search, identify from card
    `identify_card` of the look-alikes (both counted from 0).
    """
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
            page.goto(url, wait_until="domcontentloaded")
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
            page.screenshot(path=str(out / "describe.png"))

            page.get_by_role("button", name="Look-alikes").nth(lookalikes_card).click()
            settled(page)
            wait_for_images(page, K_FOR_SCREENSHOTS + 1)  # the query and its look-alikes
            page.screenshot(path=str(out / "lookalikes.png"))

            page.get_by_role("button", name="Identify").nth(identify_card).click()
            settled(page)
            page.get_by_text("Top species taxa").wait_for(timeout=RESULT_TIMEOUT_MS)
            wait_for_images(page, 1)
            settled(page)
            assert page.locator(".tol-row.tol-path").count() == 7  # kingdom .. species
            assert page.locator('[data-testid="stMain"] [data-testid="stImage"] img').count() == 1
            page.screenshot(path=str(out / "identify.png"))
        finally:
            browser.close()
    return [out / name for name in SCREENSHOT_NAMES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshots of each mode of the app, on the store of $TOL_STORE.")
    parser.add_argument("--out", type=Path, required=True, help="folder for describe.png, lookalikes.png, identify.png")
    parser.add_argument("--lookalikes-card", type=int, default=LOOKALIKES_CARD, metavar="N",
                        help=f"text-search result (from 0) whose look-alikes are shown (default {LOOKALIKES_CARD})")
    parser.add_argument("--identify-card", type=int, default=IDENTIFY_CARD, metavar="N",
                        help=f"look-alike (from 0) that is identified (default {IDENTIFY_CARD})")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    with serve(Path.cwd(), dict(os.environ), out / "streamlit.log") as url:
        for path in take_screenshots(url, out, args.lookalikes_card, args.identify_card):
            print(path)
    (out / "streamlit.log").unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
