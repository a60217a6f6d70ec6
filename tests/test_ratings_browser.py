"""Rating a note in a real browser (Debian's Chromium through Playwright): with JavaScript the htmx
buttons swap the note's card in place; without it the same buttons post the form and come back to
the page. The reader's own rating is shown either way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_web_browser import CHROMIUM, LAUNCH_ARGS, _log_in, base_url  # noqa: F401  (fixture)
from tests.web_fixtures import READER, fast_hashing_fixture, web_settings_fixture  # noqa: F401  (fixtures)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (make browser)"
    ),
]


@pytest.fixture
def browser(base_url: str) -> Iterator[Any]:  # noqa: F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium, base_url
        chromium.close()


def _note_on_first_settled_post(page: Any) -> Any:
    page.goto("/")
    return page.locator("article.note").first


@pytest.mark.parametrize("javascript", [True, False])
def test_reader_rates_a_note(browser: Any, tmp_path: Path, javascript: bool) -> None:
    from playwright.sync_api import expect

    chromium, url = browser
    context = chromium.new_context(base_url=url, java_script_enabled=javascript)
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        _log_in(page, *READER)
        note = _note_on_first_settled_post(page)
        note_id = note.get_attribute("id")
        note.locator("button:has-text('Not helpful')").click()
        card = page.locator(f"#{note_id}")
        expect(card.locator(".my-rating")).to_have_text("You rated it not helpful.")
        expect(card.locator("button.chosen")).to_have_text("Not helpful")
        if not javascript:
            expect(page.locator(".flash")).to_contain_text("You rated note")
        page.screenshot(path=str(tmp_path / f"rated-js-{javascript}.png"), full_page=True)
        page.reload()  # stored: still shown after a reload
        expect(page.locator(f"#{note_id} .my-rating")).to_have_text("You rated it not helpful.")
        page.locator(f"#{note_id} button:has-text('Not helpful')").click()  # the same rating again
        if javascript:
            expect(page.locator(f"#{note_id} .error")).to_contain_text("already rated")
        else:
            expect(page.locator("p.error")).to_contain_text("already rated")
    finally:
        context.close()
