"""Every page on a 390 px phone, in Chromium: nothing wider than the screen, no label or button
broken mid-word; destructive actions ask first, with and without JavaScript; a signed-out visitor
is told what a sealed note is; market numbers are explained in words (issue 15)."""

from __future__ import annotations

from typing import Any

from tests.browser_fixtures import (  # noqa: F401  (fixtures)
    BROWSER,
    PHONE,
    answer_dialogs,
    base_url_fixture,
    browser_fixture,
    log_in,
    log_out,
    new_page,
    page_fixture,
)
from tests.web_fixtures import (  # noqa: F401  (fixtures)
    INFORMER,
    MODERATOR,
    fast_hashing_fixture,
    web_settings_fixture,
)

pytestmark = BROWSER
NOTE = "Existing homes keep their gas stoves: the council voted only on new homes, starting next year."

# What the page measures: how far the document reaches past the viewport, and every word of a
# label, button or heading that the browser laid out on more than one line.
MEASURE = """() => {
  const overflow = document.documentElement.scrollWidth - window.innerWidth;
  const broken = [];
  const labels = "button, .button, label, th, dt, summary, h1, h2, h3, .tag, nav a, .top .who, legend";
  for (const el of document.querySelectorAll(labels)) {
    if (!el.getClientRects().length) continue;  // not displayed
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.parentElement.closest("input, textarea, select, option")) continue;
      const re = /\\S+/g;
      for (let m = re.exec(node.data); m; m = re.exec(node.data)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const rects = [...range.getClientRects()].filter(r => r.width > 0);
        const tops = new Set(rects.map(r => Math.round(r.top)));
        if (tops.size > 1) broken.push(m[0]);
      }
    }
  }
  const wide = [...document.querySelectorAll("body *")]
    .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest("pre, .scroll"))
    .map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className ? "." + e.className : ""))
    .slice(0, 8);
  return {overflow, broken, wide};
}"""


def _check(page: Any, url: str, problems: dict[str, Any]) -> None:
    if url:
        response = page.goto(url)
        assert response is not None and response.status < 500, url
    found = page.evaluate(MEASURE)
    if found["overflow"] > 0 or found["broken"] or found["wide"]:
        problems[url or page.url] = found


def test_every_page_fits_a_phone(browser: Any, base_url: str) -> None:
    page = new_page(browser, base_url, viewport=PHONE)
    problems: dict[str, Any] = {}
    for url in ("/", "/login", "/signup", "/posts/999"):
        _check(page, url, problems)
    page.goto("/")
    posts = page.eval_on_selector_all(
        "section.post a[href^='/posts/']", "els => els.map(e => e.getAttribute('href'))"
    )
    for url in sorted(set(posts)):
        _check(page, url, problems)

    # An informer: a sealed offer (so the dashboard has a row to withdraw), its receipt, tokens.
    log_in(page, *INFORMER)
    open_post = next(u for u in sorted(set(posts)) if page.goto(u) and page.locator("#offer-form").count())
    _check(page, "", problems)
    page.check("input[name=classification][value=not_misleading]")
    page.fill("textarea[name=text]", NOTE)
    page.fill("input[name=bid]", "3")
    page.fill("input[name=price]", "2")
    page.click("#offer-form button[type=submit]")
    page.wait_for_selector("#receipt")
    _check(page, "", problems)  # the receipt
    for url in ("/me", "/me/tokens", "/me/password", open_post):
        _check(page, url, problems)
    page.goto("/me/tokens")
    page.fill("input[name=label]", "my phone's note-writing bot")
    page.click("form.card button[type=submit]")
    page.wait_for_selector("#new-token")
    _check(page, "", problems)
    log_out(page)

    # A moderator: the console, its prompt pages, a diff, and (without JavaScript) a confirmation page.
    log_in(page, *MODERATOR)
    for url in (
        "/mod/demo",
        "/mod/demo/prompts",
        "/mod/demo/prompts/1",
        "/mod/demo/prompts/diff?old=1&new=1",
    ):
        _check(page, url, problems)
    page.context.close()
    assert problems == {}, problems
    plain = new_page(browser, base_url, viewport=PHONE, javascript=False)
    log_in(plain, *MODERATOR)
    plain.goto("/mod/demo")
    plain.locator("form[action$='/bans'] input[name=reason]").fill("testing the confirmation page")
    plain.click("form[action$='/bans'] button[type=submit]")
    plain.wait_for_selector("#confirm")
    _check(plain, "", problems)
    plain.context.close()
    assert problems == {}, problems


def test_destructive_actions_ask_first_with_and_without_javascript(browser: Any, base_url: str) -> None:
    from playwright.sync_api import expect

    page = new_page(browser, base_url)
    log_in(page, *INFORMER)
    page.goto("/")
    page.click("section.post:has-text('ban gas stoves') p.post-text a")
    page.check("input[name=classification][value=not_misleading]")
    page.fill("textarea[name=text]", NOTE)
    page.fill("input[name=bid]", "3")
    page.fill("input[name=price]", "2")
    page.click("#offer-form button[type=submit]")
    offer_id = page.inner_text("#receipt-offer")
    page.goto("/me")
    row = page.locator(f"#offer-{offer_id}")
    asked = answer_dialogs(page, accept=False)
    row.locator("button:has-text('Withdraw')").click()
    expect(row.locator("td.status")).to_have_text("sealed")  # dismissed: nothing happened
    assert asked and asked[0].startswith(f"Withdraw offer {offer_id}?")
    page.context.close()

    page = new_page(browser, base_url)
    log_in(page, *INFORMER)
    page.goto("/me")
    asked = answer_dialogs(page, accept=True)
    page.locator(f"#offer-{offer_id} button:has-text('Withdraw')").click()
    expect(page.locator(".flash")).to_contain_text(f"Offer {offer_id} withdrawn")
    expect(page.locator(f"#offer-{offer_id} td.status")).to_have_text("withdrawn")
    assert len(asked) == 1
    page.context.close()

    # Without JavaScript the server asks: Cancel changes nothing, Yes closes the market.
    plain = new_page(browser, base_url, javascript=False)
    log_in(plain, *MODERATOR)
    plain.goto("/mod/demo")
    market = plain.locator("#markets tr:has-text('ban gas stoves')")
    market_id = market.locator("td").first.inner_text()
    market.locator("button:has-text('Close now')").click()
    expect(plain.locator("#confirm h1")).to_have_text(f"Close market {market_id} now?")
    plain.click("#confirm-cancel")
    expect(plain.locator(f"#market-{market_id} td.status")).to_have_text("open")
    plain.locator(f"#market-{market_id} button:has-text('Close now')").click()
    plain.click("#confirm-form button[type=submit]")
    expect(plain.locator(".flash")).to_contain_text(f"Market {market_id} closed")

    # Unpublish carries its reason through the confirmation page.
    note = plain.locator("#notes tbody tr").first
    note_id = note.locator("td").first.inner_text()
    note.locator("input[name=reason]").fill("duplicate of another note")
    note.locator("button:has-text('Unpublish')").click()
    expect(plain.locator("#confirm h1")).to_have_text(f"Unpublish note {note_id}?")
    plain.click("#confirm-form button[type=submit]")
    expect(plain.locator(f"#reveal-{note_id}")).to_contain_text("unpublished: duplicate of another note")

    # Activating a prompt version asks too.
    plain.goto("/mod/demo/prompts/1")
    plain.fill("#edit-form textarea[name=text]", "A short prompt for a test. Data: $token, $mark.")
    plain.click("#edit-form button[type=submit]")
    plain.click("#activate-form button[type=submit]")
    expect(plain.locator("#confirm h1")).to_contain_text("the judge prompt of")
    plain.click("#confirm-form button[type=submit]")
    expect(plain.locator(".flash")).to_contain_text("is now the active judge prompt")
    plain.context.close()


def test_a_signed_out_visitor_is_told_what_a_sealed_note_is_in_plain_words(page: Any) -> None:
    from playwright.sync_api import expect

    page.goto("/")
    explainer = page.locator("#what-is-a-sealed-note")
    expect(explainer).to_be_visible()
    expect(explainer).to_contain_text("no reader, moderator or other writer can see it")
    page.click("section.post:has-text('Arctic sea ice') p.post-text a")
    expect(page.locator("#what-is-a-sealed-note")).to_be_visible()
    # A settled market says what the notes did in words; the numbers wait behind "details".
    expect(page.locator("#market-effect")).to_contain_text("likely to be misled by this post")
    expect(page.locator("#market-effect")).to_contain_text("%")
    numbers = page.locator("#market-numbers")
    expect(numbers.locator("text=credits/nat")).to_be_hidden()
    expect(page.locator("#market")).not_to_contain_text("P(misleading)", use_inner_text=True)
    numbers.locator("summary").click()
    expect(numbers.locator("text=credits/nat")).to_be_visible()
    expect(numbers).to_contain_text("P(misleading)")
    expect(numbers).to_contain_text("how many notes the judge reads")
    log_in(page, *INFORMER)
    page.goto("/")
    expect(page.locator("#what-is-a-sealed-note")).to_have_count(0)


def test_a_prompt_edited_in_the_browser_diffs_by_its_real_changes(page: Any) -> None:
    from playwright.sync_api import expect

    log_in(page, *MODERATOR)
    page.goto("/mod/demo/prompts/1")
    text = page.input_value("#edit-form textarea[name=text]")
    lines = text.split("\n")
    assert len(lines) > 20
    lines[5] = lines[5] + " Be brief."
    page.fill("#edit-form textarea[name=text]", "\n".join(lines))  # the browser posts it with CRLF
    page.click("#edit-form button[type=submit]")
    expect(page.locator(".flash")).to_contain_text("Saved as version 2")
    page.goto("/mod/demo/prompts")
    page.select_option("select[name=old]", label="v1")
    page.select_option("select[name=new]", label="v2")
    page.click("form.row button[type=submit]")
    expect(page.locator("#diff-result h2")).to_have_text("Diff v1 → v2")
    assert page.locator("pre.diff span.add").count() == 1
    assert page.locator("pre.diff span.del").count() == 1
    expect(page.locator("pre.diff span.add")).to_contain_text("Be brief.")
