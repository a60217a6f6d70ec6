"""Rating a note in a real browser (Debian's Chromium through Playwright): with JavaScript the htmx
buttons swap the note's card in place; without it the same buttons post the form and come back to
the page. The reader's own rating is shown either way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser_fixtures import (  # noqa: F401  (fixtures)
    BROWSER,
    base_url_fixture,
    browser_fixture,
    log_in,
    new_page,
)
from tests.web_fixtures import READER, fast_hashing_fixture, web_settings_fixture  # noqa: F401  (fixtures)

pytestmark = BROWSER


@pytest.mark.parametrize("javascript", [True, False])
def test_reader_rates_a_note(browser: Any, base_url: str, tmp_path: Path, javascript: bool) -> None:
    from playwright.sync_api import expect

    page = new_page(browser, base_url, javascript=javascript)
    try:
        log_in(page, *READER)
        page.goto("/")
        note = page.locator("article.note").first
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
        page.context.close()
