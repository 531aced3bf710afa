"""The page at ``/`` in a real browser: Playwright driving the system's Chromium (no browser download).

Skipped, with the reason, where Chromium or Playwright is missing; CI installs both (.ci/run).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()),
                shutil.which("chromium"))  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    required = os.environ.get("CNNKIT_REQUIRE_BROWSER") == "1"  # set by .ci/run where Chromium is installed
    give_up = pytest.fail if required else pytest.skip
    if CHROMIUM is None:
        give_up("no Chromium on this machine (CI installs it: apt-get install chromium)")
    try:
        import playwright.sync_api as pw
    except ImportError:
        give_up("playwright is not installed (pip install 'cnnkit[dev]' or pip install playwright)")
    with pw.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def page_server(lenet_run):
    from cnnkit.deploy.app import create_app
    from cnnkit.deploy.server import ServeConfig, ServerThread
    from cnnkit.run import load_run

    with ServerThread(create_app(load_run(lenet_run), ServeConfig(max_batch=8))) as s:
        yield s


def test_upload_shows_the_top1_class_bars_and_gradcam(browser, page_server, digit_files):
    expected = httpx.post(page_server.url + "/predict", files=[("file", (digit_files[2].name,
                          digit_files[2].read_bytes()))], timeout=30).json()["predictions"][0]["top"]  # fmt: skip
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_server.url + "/")
    page.wait_for_function("document.getElementById('model-info').textContent.includes('classes')")
    assert page.is_visible("#canvas")  # a small grey model: drawing is offered
    page.set_input_files("#file", str(digit_files[2]))
    page.wait_for_selector("#top1-line:not([hidden])", timeout=30_000)
    assert page.inner_text("#top1") == expected[0]["class"]
    bars = page.query_selector_all("#bars li")
    assert len(bars) == 5
    assert bars[0].get_attribute("aria-label").startswith(expected[0]["class"] + ":")
    page.wait_for_selector("#cam-box:not([hidden])", timeout=60_000)
    assert page.get_attribute("#cam", "src").startswith("data:image/png;base64,")
    assert not errors


def test_keyboard_reaches_the_controls(browser, page_server):
    page = browser.new_page()
    page.goto(page_server.url + "/")
    page.wait_for_function("document.getElementById('model-info').textContent.includes('classes')")
    seen = []
    for _ in range(8):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("document.activeElement.id"))
    assert {"drop", "file", "classify-drawing", "clear"} <= set(seen)
