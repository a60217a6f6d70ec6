"""Sub-markets on the surfaces: listed on the post page, the JSON API, Discord's market embed and
``market show``; informers offer into one by market id (web API, Reddit's ``note market <id>``)."""

from __future__ import annotations

import pytest

from notebazaar.pipeline import community, market, records
from notebazaar.pipeline.market import market_view
from tests.web_fixtures import (  # noqa: F401  (fixtures)
    INFORMER,
    WebWorld,
    api_token,
    fast_hashing_fixture,
    log_in,
    open_post_id,
    web_fixture,
    web_settings_fixture,
)

NOTE = {"classification": "misleading", "text": "That study was retracted in 2021.", "bid": 3, "price": 4}


def _sub_market(web: WebWorld, post_id: int) -> tuple[int, int]:
    db = web.db()
    try:
        top = db.execute("SELECT id FROM markets WHERE post_id = ? AND parent_offer_id IS NULL", [post_id])
        market_id = int(top.fetchone()[0])
        author = community.create_account(db, "sealer")
        community.mint(db, author, 100, key="test:sealer")
        parent = market.submit_offer(
            db,
            market_id,
            author,
            classification="misleading",
            text="SEALEDPARENT the claim is false",
            bid=2,
            price=3,
            teaser="Nature, 2019 study",
        ).offer_id
        sub_id = market.open_market(db, post_id, parent_offer_id=parent, budget=10, window_seconds=600)
        return sub_id, parent
    finally:
        db.close()


def test_post_page_and_api_list_sub_markets_and_take_offers(web: WebWorld) -> None:
    client = web.client
    post_id = open_post_id(client)
    sub_id, parent = _sub_market(web, post_id)
    page = client.get(f"/posts/{post_id}").text
    assert f'id="sub-market-{sub_id}"' in page and "Nature, 2019 study" in page
    assert "SEALEDPARENT" not in page
    listed = client.get(f"/api/posts/{post_id}").json()["sub_markets"]
    assert [(s["id"], s["parent_offer_id"], s["open"]) for s in listed] == [(sub_id, parent, True)]
    auth = api_token(client, *INFORMER)
    receipt = client.post(f"/api/markets/{sub_id}/offers", headers=auth, json=NOTE)
    assert receipt.status_code == 201, receipt.text
    assert receipt.json()["market_id"] == sub_id
    missing = client.post("/api/markets/999999/offers", headers=auth, json=NOTE)
    assert missing.status_code == 404
    db = web.db()
    try:
        view = market_view(db, int(client.get(f"/api/posts/{post_id}").json()["market"]["id"]))
    finally:
        db.close()
    assert [s["id"] for s in view["sub_markets"]] == [sub_id] and view["sub_markets"][0]["offers"] == 1


def test_informer_sees_an_offer_a_sub_market_discredited_in_its_track_record(web: WebWorld) -> None:
    client = web.client
    auth = api_token(client, *INFORMER)
    post_id = open_post_id(client)
    parent = client.post(f"/api/posts/{post_id}/offers", headers=auth, json=NOTE).json()["offer_id"]
    db = web.db()
    try:  # its sub-market settled holding the offer more likely unreliable than not
        sub_id = market.open_market(db, post_id, parent_offer_id=parent, budget=10, window_seconds=600)
        db.execute("UPDATE markets SET status = 'settled', prior = 0.2, belief = 0.8 WHERE id = ?", [sub_id])
        records.count_discredit(db, sub_id)  # what settlement calls when it settles a sub-market
        db.conn.commit()
    finally:
        db.close()
    me = client.get("/api/me", headers=auth).json()["track_record"]
    assert (me["right"], me["wrong"], me["discredited"]) == (0, 1, 1) and me["reliability"] < 0.5
    log_in(client, *INFORMER)
    assert "counting 1 offer a sub-market discredited" in client.get("/me").text


def test_reddit_note_market_subject_names_a_market() -> None:
    from notebazaar.bot.reddit import messages

    body = "classification: misleading\nbid: 3\nprice: 5\n\nThat study was retracted."
    command = messages.parse_command("note market #17", body)
    assert isinstance(command, messages.NoteCommand) and command.target == "market:17"
    assert messages.parse_command("Note Market 4", body).target == "market:4"  # type: ignore[union-attr]
    with pytest.raises(messages.MessageFormatError):
        messages.parse_command("note market x", body)


def test_discord_market_embed_lists_open_sub_markets() -> None:
    from notebazaar.bot.discord import render

    view = {
        "market": {"id": 1, "status": "closing", "closes_at": 0, "budget": 80},
        "post": {"url": None},
        "budget_left": 56,
        "offers": [],
        "inspections": [],
        "reveals": [],
        "sub_markets": [
            {
                "id": 7,
                "parent_offer_id": 3,
                "teaser": "Nature, 2019",
                "open": True,
                "budget": 24,
                "seconds_left": 600,
            },
            {"id": 8, "parent_offer_id": 4, "teaser": "", "open": False, "budget": 20, "seconds_left": 0},
        ],
    }
    fields = {f.name: f.value for f in render.market_embed(view).fields}
    assert "market #7 about offer #3: Nature, 2019" in fields["Open sub-markets"]
    assert "#8" not in fields["Open sub-markets"]
