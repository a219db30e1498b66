"""Drive the real app: `streamlit run ui/app.py` on a free 127.0.0.1 port, in Debian's headless chromium.

Used by tests/ui/test_browser.py, and to take the README's screenshots from the trained demo:

    TOL_STORE=var/qdrant TOL_DB=var/catalog.db TOL_MODEL=var/models/demo \\
        .venv/bin/python -m tests.ui.browser --out docs/screenshots

playwright's own browsers are never downloaded: chromium is `/usr/bin/chromium` or $TOL_CHROMIUM.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

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
PHONE = {"width": 390, "height": 844}
TIMED_K = 12
TIMED_QUERIES = ("a photo of a bird.", "a photo of a fish.", "a plant with red flowers.", "a photo of a beetle.",
                 "a photo of a mammal.", "a mushroom in a forest.", "a photo of a frog.")
QUIET_MS = 400  # no change on the page for this long: the results are drawn
# The page's pictures: a query image or a detail view's picture (st.image), then the result cards' thumbnails.
RESULT_IMAGES = '[data-testid="stMain"] [data-testid="stImage"] img, [data-testid="stMain"] .tol-card img'
CARD_BUTTON = '.tol-card button[data-action="%s"]'  # a card's action: detail, alike, identify, narrow
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
    ]  # the theme and the toolbar come from ui/.streamlit/config.toml, as for every start of the app
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
        """([n, selector]) => {
            const imgs = [...document.querySelectorAll(selector)];
            return imgs.length >= n && imgs.every(i => i.complete && i.naturalWidth > 0);
        }""",
        arg=[count, RESULT_IMAGES], timeout=RESULT_TIMEOUT_MS,
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



@dataclass
class ToolReport:
    """What `check_tool` measured: query-to-results times (ms) and the phone page's height (px)."""

    describe_ms: list[float] = field(default_factory=list)
    phone_height_px: float = 0.0

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.describe_ms)


# Records, in the page's own clock, when Enter is pressed in the text box and when the page last changed
# (a node, an attribute, an image loaded): the results are drawn at the last change before a quiet spell.
WATCH = """() => {
    window.__tolLast = performance.now();
    const mark = () => { window.__tolLast = performance.now(); };
    new MutationObserver(mark).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                      characterData: true});
    document.addEventListener('load', mark, true);
    document.addEventListener('keydown', e => { if (e.key === 'Enter') window.__tolStart = performance.now(); },
                              true);
}"""
DRAWN = """([n, quiet]) => {
    const imgs = [...document.querySelectorAll('%s')];
    return imgs.length === n && imgs.every(i => i.complete && i.naturalWidth > 0)
        && !document.querySelector('[data-testid="stStatusWidget"]')
        && !document.querySelector('[data-stale="true"]')
        && performance.now() - window.__tolLast > quiet;
}""" % RESULT_IMAGES


def timed_search(page, text: str, k: int) -> float:
    """Type `text`, press Enter; ms from the key press to the last change of the page that drew `k` results."""
    box = page.get_by_placeholder("a photo of a striped cat", exact=False)
    box.fill(text)
    page.evaluate("() => { window.__tolStart = null; }")
    box.press("Enter")
    page.wait_for_function(DRAWN, arg=[k, QUIET_MS], timeout=RESULT_TIMEOUT_MS, polling=50)
    return page.evaluate("() => window.__tolLast - window.__tolStart")


def query_of(page) -> dict[str, str]:
    return {name: values[-1] for name, values in parse_qs(urlsplit(page.url).query).items()}


def check_tool(url: str, out: Path, kingdom: str = "Animalia", timed_runs: int = 5) -> ToolReport:
    """The UI as a tool, in the browser: a link restores a search and the URL follows it, the export
    downloads the results, the detail view shows the whole image and its record, no Deploy button,
    query-to-results times, and the phone layout. Raises AssertionError on the first thing wrong."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    report = ToolReport()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1, accept_downloads=True)
            link = {"mode": "describe", "q": TEXT, "within": kingdom, "rank": "genus", "k": "6"}
            page.goto(f"{url}/?{urlencode(link)}", wait_until="domcontentloaded")
            wait_for_images(page, 6)
            settled(page)
            assert page.locator(RESULT_IMAGES).count() == 6
            assert page.get_by_placeholder("a photo of a striped cat", exact=False).input_value() == TEXT
            crumbs = page.locator(CARD_BUTTON % "narrow").all_inner_texts()
            kingdoms = {c.split()[0] for c in crumbs if c.strip() and c.split()[0] in ("Animalia", "Plantae", "Fungi")}
            assert kingdoms == {kingdom}, kingdoms
            assert query_of(page) == link, page.url
            assert page.get_by_role("button", name="Deploy").count() == 0

            with page.expect_download() as download:
                page.get_by_role("button", name="CSV").click()
            rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
            assert len(rows) == 6 and list(rows[0]) == ["id", "path", "lineage", "score", "split", "source",
                                                        "license"], rows[:1]
            assert all(r["lineage"].split("/")[0] == kingdom and r["path"] and r["license"] for r in rows), rows

            page.get_by_role("button", name="Details").first.click()
            page.get_by_text("Catalog record").wait_for(timeout=RESULT_TIMEOUT_MS)
            settled(page)
            wait_for_images(page, 7)  # the whole picture and six look-alikes
            table = page.locator('[data-testid="stTable"]').inner_text()
            first_id = rows[0]["id"]  # the first card is the first row
            assert first_id in table and "sha256" in table and rows[0]["license"] in table, table
            natural = page.locator(RESULT_IMAGES).first.evaluate("i => [i.naturalWidth, i.naturalHeight]")
            caption = page.locator('[data-testid="stMain"] [data-testid="stImageCaption"]').first.inner_text()
            assert caption.endswith(f"{natural[0]}×{natural[1]} px"), (caption, natural)  # uncropped, full size
            page.screenshot(path=str(out / "detail.png"))
            page.get_by_role("button", name="Back to the results").click()
            settled(page)
            wait_for_images(page, 6)

            # Timing: describe with k = 12 on the whole collection, from Enter to the results drawn.
            page.goto(f"{url}/?{urlencode({'mode': 'describe', 'k': str(TIMED_K)})}", wait_until="domcontentloaded")
            page.get_by_text("Filter by clade").wait_for(timeout=RESULT_TIMEOUT_MS)
            settled(page)
            page.evaluate(WATCH)
            timed_search(page, TEXT, TIMED_K)  # burn-in: the server's first text encoding
            for text in TIMED_QUERIES[:timed_runs]:
                report.describe_ms.append(timed_search(page, text, TIMED_K))
            assert query_of(page)["q"] == TIMED_QUERIES[timed_runs - 1]
            # Describe reruns on its own (a fragment); a breadcrumb click in it redraws the side panel too.
            page.locator(CARD_BUTTON % "narrow").first.click()  # the first card's kingdom
            page.get_by_role("button", name="Clear the clade filter").wait_for(timeout=RESULT_TIMEOUT_MS)
            settled(page)
            assert query_of(page).get("within"), page.url
            page.close()

            phone = browser.new_page(viewport=PHONE, device_scale_factor=2)
            phone.goto(f"{url}/?{urlencode({'q': TEXT})}", wait_until="domcontentloaded")
            wait_for_images(phone, state_default_k())
            settled(phone)
            report.phone_height_px = phone.locator('[data-testid="stMainBlockContainer"]').evaluate(
                "e => e.getBoundingClientRect().height")
            rows_of_cards = phone.locator(RESULT_IMAGES).evaluate_all(
                "imgs => new Set(imgs.map(i => Math.round(i.getBoundingClientRect().top))).size")
            assert rows_of_cards == state_default_k() // 3, rows_of_cards  # three cards a row, not one
            phone.screenshot(path=str(out / "phone.png"), full_page=True)
        finally:
            browser.close()
    return report


def state_default_k() -> int:
    from ui.state import DEFAULT_K

    return DEFAULT_K


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
            sources = page.locator(RESULT_IMAGES).evaluate_all("imgs => imgs.map(i => i.getAttribute('src'))")
            assert len(sources) == K_FOR_SCREENSHOTS
            assert all(src.startswith("data:image/jpeg;base64,") for src in sources), [s[:40] for s in sources]
            assert page.get_by_text("In these results").is_visible()
            page.screenshot(path=str(out / "describe.png"))

            page.locator(CARD_BUTTON % "alike").nth(lookalikes_card).click()
            settled(page)
            wait_for_images(page, K_FOR_SCREENSHOTS + 1)  # the query and its look-alikes
            page.screenshot(path=str(out / "lookalikes.png"))

            page.locator(CARD_BUTTON % "identify").nth(identify_card).click()
            settled(page)
            page.get_by_text("Top species taxa").wait_for(timeout=RESULT_TIMEOUT_MS)
            wait_for_images(page, 1)
            settled(page)
            assert page.locator(".tol-row.tol-path").count() == 7  # kingdom .. species
            assert page.locator(RESULT_IMAGES).count() == 1
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
    out.mkdir(parents=True, exist_ok=True)
    with serve(Path.cwd(), dict(os.environ), out / "streamlit.log") as url:
        for path in take_screenshots(url, out, args.lookalikes_card, args.identify_card):
            print(path)
    (out / "streamlit.log").unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
