"""The web app in a real browser: Debian's Chromium driven by Playwright, against uvicorn on 127.0.0.1.

Two flows: an informer signs up and submits a sealed note, a moderator closes the market, a reader
sees the revealed note under the post; and a moderator edits a judge prompt, evaluates and activates
it. The SimpleJudge keeps the purchase predictable (see tests/web_fixtures.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from notebazaar.pipeline import evaluate
from tests.browser_fixtures import (  # noqa: F401  (fixtures)
    BROWSER,
    answer_dialogs,
    base_url_fixture,
    browser_fixture,
    log_in,
    log_out,
    page_fixture,
)
from tests.web_fixtures import (  # noqa: F401  (fixtures)
    FAKE_EVAL,
    MODERATOR,
    READER,
    fast_hashing_fixture,
    web_settings_fixture,
)

pytestmark = BROWSER
NOTE = (
    "Nobody will ban gas stoves in existing homes next month: the city council voted only on new homes,"
    " starting next year. Existing homes keep their stoves."
)
POST_SNIPPET = "ban gas stoves"


def test_informer_note_is_bought_and_a_reader_sees_it(page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    # An informer signs up and gets the sign-up grant.
    page.goto("/signup")
    page.fill("input[name=handle]", "zoe")
    page.fill("input[name=password]", "zoe-password")
    page.select_option("select[name=community]", "demo")
    page.click("#signup-form button[type=submit]")
    expect(page.locator("#dash-wallet")).to_have_text("100")
    page.screenshot(path=str(tmp_path / "dashboard-new.png"), full_page=True)

    # It opens an open post, sees time left, and submits a sealed note.
    page.goto("/")
    page.click(f"a:has-text('{POST_SNIPPET}')")
    expect(page.locator("#market-status")).to_have_text("open")
    expect(page.locator("#time-left")).to_contain_text("min")
    page.check("input[name=classification][value=misleading]")
    page.fill("textarea[name=text]", NOTE)
    page.fill("textarea[name=sources]", "https://example.org/city-council-minutes")
    page.fill("input[name=bid]", "5")
    page.fill("input[name=price]", "4")
    page.click("#offer-form button[type=submit]")
    expect(page.locator("#receipt")).to_contain_text("Keep the salt")
    assert len(page.input_value("#receipt-salt")) >= 16
    assert len(page.input_value("#receipt-commitment")) == 64
    page.screenshot(path=str(tmp_path / "receipt.png"), full_page=True)

    page.goto("/me")
    expect(page.locator("#my-offers tbody tr").first).to_contain_text("sealed")
    assert NOTE not in page.content()  # a sealed note is never shown, not even to its informer
    log_out(page)

    # A moderator closes the market now.
    log_in(page, *MODERATOR)
    page.click("#nav-console")
    row = page.locator(f"#markets tr:has-text('{POST_SNIPPET}')")
    questions = answer_dialogs(page)
    row.locator("button:has-text('Close now')").click()
    expect(page.locator(".flash")).to_contain_text("1 bought")
    assert questions and "cannot be undone" in questions[0]  # the browser asked first
    page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
    log_out(page)

    # A reader sees the revealed note under the post, with its informer and price.
    log_in(page, *READER)
    page.goto("/")
    post = page.locator(f"section.post:has-text('{POST_SNIPPET}')")
    note = post.locator("article.note")
    expect(note).to_contain_text("Nobody will ban gas stoves")
    expect(note).to_contain_text("zoe")
    expect(note).to_contain_text("bought for 4 credits")
    page.screenshot(path=str(tmp_path / "feed.png"), full_page=True)
    post.locator("a.post-link, p.post-text a").first.click()
    expect(page.locator("#market-status")).to_have_text("settled")
    expect(page.locator("#notes")).to_contain_text("Nobody will ban gas stoves")
    page.screenshot(path=str(tmp_path / "post-settled.png"), full_page=True)


def test_moderator_edits_evaluates_and_activates_a_prompt(
    page: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    monkeypatch.setattr(evaluate, "evaluate", lambda path, **kwargs: FAKE_EVAL)
    monkeypatch.setattr(evaluate, "format_table", lambda rows: f"{rows[0][0]}\nlogloss_final 0.5")
    claims = tmp_path / "labelled.jsonl"
    claims.write_text('{"claim": "x", "label": "misleading"}\n')

    # A reader is kept out of the console.
    log_in(page, *READER)
    response = page.goto("/mod/demo")
    assert response is not None and response.status == 403
    expect(page.locator("h1")).to_contain_text("Not allowed")
    log_out(page)

    log_in(page, *MODERATOR)
    page.goto("/mod/demo")
    page.click("#prompts-link")
    expect(page.locator("#active-version")).to_have_text("judge v1")
    page.click("#version-1 a >> nth=0")
    page.fill(
        "#edit-form textarea[name=text]",
        "You are a careful judge.\nCite the note's evidence. Data: $token, $mark.",
    )
    page.fill("#edit-form input[name=note]", "shorter prompt")
    page.click("#edit-form button[type=submit]")
    expect(page.locator(".flash")).to_contain_text("Saved as version 2")

    # Evaluate through htmx: the result table is swapped into the page.
    page.fill("#eval-form input[name=path]", str(claims))
    page.select_option("#eval-form select[name=judge_kind]", "simple")
    page.click("#eval-form button[type=submit]")
    expect(page.locator("#eval-result pre")).to_contain_text("judge v2 (simple)")
    expect(page.locator("#eval-result")).to_contain_text("purchase_precision")
    page.screenshot(path=str(tmp_path / "prompt-eval.png"), full_page=True)

    questions = answer_dialogs(page)
    page.click("#activate-form button[type=submit]")
    expect(page.locator(".flash")).to_contain_text("Version 2 is now the active judge prompt")
    expect(page.locator("#active-version")).to_have_text("judge v2")
    assert questions and "judge prompt of" in questions[0]
    page.screenshot(path=str(tmp_path / "prompts.png"), full_page=True)

    page.goto("/mod/demo#audit")
    expect(page.locator("#audit")).to_contain_text("prompt.activate")
