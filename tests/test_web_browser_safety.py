"""In Chromium: a reloaded receipt submits nothing and shows the salt once, only to its owner; the
pages and the API docs work under the strict content security policy, with nothing from elsewhere."""

from __future__ import annotations

import re
from typing import Any

from tests.browser_fixtures import (  # noqa: F401  (fixtures)
    BROWSER,
    base_url_fixture,
    browser_fixture,
    log_in,
    log_out,
    page_fixture,
)
from tests.test_web_browser import NOTE, POST_SNIPPET
from tests.web_fixtures import INFORMER, READER, fast_hashing_fixture, web_settings_fixture  # noqa: F401

pytestmark = BROWSER


def _watch(page: Any, base_url: str) -> tuple[list[str], list[str]]:
    """Console errors and requests that leave this server, as the page runs."""
    errors: list[str] = []
    elsewhere: list[str] = []
    page.on("console", lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
    page.on("request", lambda r: None if r.url.startswith(base_url) else elsewhere.append(r.url))
    return errors, elsewhere


def test_a_reloaded_receipt_submits_nothing_and_shows_the_salt_once(
    page: Any, base_url: str, tmp_path: Any
) -> None:
    from playwright.sync_api import expect

    log_in(page, *INFORMER)
    wallet = int(page.locator("#wallet").inner_text())
    page.goto("/")
    page.click(f"a:has-text('{POST_SNIPPET}')")
    post_url = page.url
    page.check("input[name=classification][value=misleading]")
    page.fill("textarea[name=text]", NOTE)
    page.fill("input[name=bid]", "5")
    page.fill("input[name=price]", "4")
    page.click("#offer-form button[type=submit]")
    expect(page.locator("#receipt")).to_contain_text("Keep the salt")
    assert re.search(r"/receipts/\d+$", page.url), page.url  # Post/Redirect/Get
    salt = page.input_value("#receipt-salt")
    assert len(salt) == 32
    expect(page.locator("#wallet")).to_have_text(str(wallet - 5))
    page.screenshot(path=str(tmp_path / "receipt.png"), full_page=True)

    page.reload()  # used to POST the note again and escrow its bid twice
    expect(page.locator("#receipt-shown")).to_contain_text("shown once")
    assert page.locator("#receipt-salt").count() == 0 and salt not in page.content()
    expect(page.locator("#wallet")).to_have_text(str(wallet - 5))
    receipt_url = page.url
    page.goto(post_url)
    expect(page.locator("table tbody tr")).to_have_count(1)  # one offer, not two
    log_out(page)

    log_in(page, *READER)
    response = page.goto(receipt_url)
    assert response is not None and response.status == 404
    assert salt not in page.content()


def test_pages_and_api_docs_run_under_the_policy_with_nothing_from_elsewhere(
    page: Any, base_url: str
) -> None:
    from playwright.sync_api import expect

    errors, elsewhere = _watch(page, base_url)
    response = page.goto("/")
    assert response is not None and "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page.wait_for_function("() => window.htmx !== undefined")  # htmx runs under script-src 'self'
    page.select_option("form.filter select[name=community]", "demo")  # no inline handler: htmx does it
    page.wait_for_url(re.compile(r"community=demo"))
    page.click(f"a:has-text('{POST_SNIPPET}')")
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("notebazaar", timeout=20_000)
    expect(page.locator(".opblock-summary-path[data-path='/api/posts']").first).to_be_visible()
    assert elsewhere == [], elsewhere
    violations = [e for e in errors if "Content Security Policy" in e or "Refused to" in e]
    assert violations == [], violations
