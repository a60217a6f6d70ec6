"""Fixtures and helpers for the browser tests: the app under uvicorn on 127.0.0.1, and Debian's
Chromium driven by Playwright (no browser download: ``executable_path`` is /usr/bin/chromium).

Where Chromium is missing (``make test`` could not install it: not root, or no apt-get), every
browser test is skipped with a message that says why and how to get it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from notebazaar.pipeline.judge.simple import SimpleJudge
from notebazaar.web.app import create_app
from tests.web_fixtures import seeded_db

CHROMIUM = Path("/usr/bin/chromium")
SKIP_REASON = (
    "browser tests skipped: Debian's Chromium is not at /usr/bin/chromium; installing it needs root"
    " and apt-get (run `sudo make browser`, then `make test` again)"
)
BROWSER = [pytest.mark.browser, pytest.mark.skipif(not CHROMIUM.exists(), reason=SKIP_REASON)]
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
PHONE = {"width": 390, "height": 844}


@pytest.fixture(name="base_url")
def base_url_fixture(tmp_path: Path, web_settings: Any, fast_hashing: None) -> Iterator[str]:
    """The app under uvicorn in a background thread, on a free port; stopped after the test."""
    db_path = tmp_path / "browser.db"
    seeded_db(db_path, web_settings)
    app = create_app(db_path, web_settings, judge=SimpleJudge(), key="browser-test-secret")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn stopped while starting"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(20)


@pytest.fixture(name="browser")
def browser_fixture(base_url: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


def new_page(
    browser: Any, base_url: str, *, viewport: dict[str, int] | None = None, javascript: bool = True
) -> Any:
    context = browser.new_context(
        base_url=base_url, viewport=viewport or {"width": 1280, "height": 900}, java_script_enabled=javascript
    )
    context.set_default_timeout(15_000)
    return context.new_page()


@pytest.fixture(name="page")
def page_fixture(browser: Any, base_url: str) -> Iterator[Any]:
    page = new_page(browser, base_url)
    yield page
    page.context.close()


def log_in(page: Any, handle: str, password: str) -> None:
    page.goto("/login")
    page.fill("input[name=handle]", handle)
    page.fill("input[name=password]", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("text=Log out")


def log_out(page: Any) -> None:
    page.click("button:has-text('Log out')")
    page.wait_for_selector("a:has-text('Log in')")


def answer_dialogs(page: Any, *, accept: bool = True) -> list[str]:
    """Answer the browser's confirmation dialogs from now on; the questions asked, in order."""
    asked: list[str] = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.on("dialog", answer)
    return asked
