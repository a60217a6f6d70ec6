"""A new automatic writer earns its room: the community's cap on its offers a day, raised by its
track record; and the JSON API's reward rows and writer registration."""

from __future__ import annotations

import time

import pytest
from sqlite_utils import Database

from notebazaar.pipeline import community, market
from notebazaar.pipeline.errors import LimitExceeded
from notebazaar.pipeline.settlement import close_market
from tests.test_core_helpers import ScriptedJudge, make_market
from tests.web_fixtures import (  # noqa: F401  (fixtures)
    SLUG,
    WebWorld,
    api_token,
    fast_hashing_fixture,
    open_post_id,
    web_fixture,
    web_settings_fixture,
)


def _offer(db: Database, market_id: int, informer: int, text: str, now: float | None = None) -> int:
    return market.submit_offer(
        db, market_id, informer, classification="misleading", text=text, bid=3, price=5, now=now
    ).offer_id


def test_a_writers_daily_cap_grows_with_its_track_record(db: Database) -> None:
    com_id, _, (writer, human, _) = make_market(db, slots=3, informers=3)
    community.update_settings(db, com_id, {"writer_offers_per_day": 2, "writer_offers_per_right_note": 1})
    community.register_writer(db, writer)
    community.register_writer(db, writer)  # idempotent
    posts = [community.add_post(db, com_id, f"claim number {n} about the flood") for n in range(4)]
    markets = [market.open_market(db, p) for p in posts]
    now = time.time()
    _offer(db, markets[0], writer, "DECISIVE one", now)
    withdrawn = _offer(db, markets[1], writer, "DECISIVE two", now)
    market.withdraw_offer(db, withdrawn, writer)  # a withdrawal gives back the escrow, not the room
    before = db.execute("SELECT COUNT(*) FROM offers").fetchone()[0]
    with pytest.raises(LimitExceeded, match=r"made 2 offers in core in the last 24 hours; its cap is 2"):
        _offer(db, markets[2], writer, "DECISIVE three", now)
    assert db.execute("SELECT COUNT(*) FROM offers").fetchone()[0] == before  # nothing half-written
    for n in range(3):  # humans have no such cap
        _offer(db, markets[n], human, f"human note {n}", now)

    # One right note (bought, classification = resolution) raises the cap by one.
    close_market(db, markets[0], ScriptedJudge({"DECISIVE": 0.95}), force=True)
    market.resolve_post(db, posts[0], "misleading")
    com = community.get_community(db, com_id)
    assert market.writer_daily_cap(db, writer, com) == 3
    _offer(db, markets[2], writer, "DECISIVE three", now)
    with pytest.raises(LimitExceeded):
        _offer(db, markets[3], writer, "DECISIVE four", now)
    # A day later the room is back.
    later = market.open_market(db, community.add_post(db, com_id, "a new day, a new claim"), now=now + 86_401)
    _offer(db, later, writer, "DECISIVE five", now + 86_402)


def test_api_rewards_and_writer_registration(web: WebWorld) -> None:
    client = web.client
    signup = client.post(
        "/api/signup", json={"handle": "bot", "password": "correct horse", "community": SLUG}
    )
    assert signup.status_code == 201, signup.text
    bot = signup.json()["account_id"]
    headers = api_token(client, "bot", "correct horse")
    other = client.post("/api/signup", json={"handle": "eve", "password": "correct horse", "community": SLUG})
    eve_headers = api_token(client, "eve", "correct horse")
    assert other.status_code == 201

    registered = client.post("/api/me/writer", headers=headers)
    assert registered.status_code == 200 and registered.json()["writer"] is True
    assert registered.json()["caps"] == {SLUG: 5}  # a new writer: the community's base cap
    post_id = open_post_id(client)
    note = {"classification": "misleading", "text": "SECRET-writer-note", "bid": 2, "price": 3}
    receipt = client.post(f"/api/posts/{post_id}/offers", headers=headers, json=note)
    assert receipt.status_code == 201, receipt.text
    client.post(f"/api/posts/{post_id}/offers", headers=eve_headers, json=note | {"text": "eve's"})

    rows = client.get("/api/me/rewards", headers=headers)
    assert rows.status_code == 200
    body = rows.json()
    assert [r["offer_id"] for r in body] == [receipt.json()["offer_id"]]  # never anyone else's
    assert body[0]["commitment"] == receipt.json()["commitment"] and body[0]["informer"] == "bot"
    assert body[0]["outcome"] == "sealed" and body[0]["final"] is False and body[0]["reward"] == 0
    assert "SECRET-writer-note" not in rows.text
    assert client.get("/api/me/rewards", headers=headers, params={"since": time.time() + 60}).json() == []
    assert client.get("/api/me/rewards").status_code == 401
    assert client.get("/api/me/rewards", headers=headers, params={"since": "soon"}).status_code == 422
    db = web.db()
    try:
        assert community.is_writer(db, bot) and not community.is_writer(db, other.json()["account_id"])
    finally:
        db.close()
    assert "/api/me/rewards" in client.get("/openapi.json").json()["paths"]
