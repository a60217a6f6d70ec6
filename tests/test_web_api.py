"""The JSON API, through FastAPI's test client: accounts and tokens, sealed notes, moderator actions,
and refusals that change nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from notebazaar.pipeline import evaluate, ledger
from tests.conftest import CLAIMS
from tests.web_fixtures import (  # noqa: F401  (fixtures)
    FAKE_EVAL,
    INFORMER,
    MODERATOR,
    READER,
    SLUG,
    WebWorld,
    api_token,
    fast_hashing_fixture,
    open_post_id,
    web_fixture,
    web_settings_fixture,
)

GOOD_NOTE = (
    "Nobody will ban gas stoves in existing homes next month: the city council voted only on new homes,"
    " starting next year. Existing homes keep their stoves."
)


PROMPT = "Be careful.\nBe fair. Data: $token, $mark."


def _wallet(world: WebWorld, account_id: int) -> int:
    db = world.db()
    try:
        return ledger.balance(db, ledger.wallet(account_id))
    finally:
        db.close()


def _sign_up(world: WebWorld, handle: str) -> tuple[int, dict[str, str]]:
    response = world.client.post(
        "/api/signup", json={"handle": handle, "password": "correct horse", "community": SLUG}
    )
    assert response.status_code == 201, response.text
    assert response.json()["wallet"] == 100  # the sign-up grant
    return response.json()["account_id"], api_token(world.client, handle, "correct horse")


def test_openapi_documents_the_api(web: WebWorld) -> None:
    paths = web.client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/posts",
        "/api/posts/{post_id}/offers",
        "/api/me/offers",
        "/api/markets/{market_id}/close",
    ):
        assert path in paths
    assert not any(p.startswith("/mod") for p in paths)  # pages are not part of the API


def test_informer_submits_a_note_that_is_bought_and_revealed(web: WebWorld) -> None:
    client = web.client
    alice, alice_auth = _sign_up(web, "alice")
    post_id = open_post_id(client)
    receipt = client.post(
        f"/api/posts/{post_id}/offers",
        headers=alice_auth,
        json={
            "classification": "misleading",
            "text": GOOD_NOTE,
            "sources": ["https://example.org/council"],
            "bid": 5,
            "price": 4,
        },
    )
    assert receipt.status_code == 201, receipt.text
    body = receipt.json()
    assert set(body) >= {"offer_id", "commitment", "salt"} and len(body["salt"]) >= 16
    assert _wallet(web, alice) == 95  # the bid is escrowed

    # Sealed: nobody sees the text, and another informer does not even see the offer.
    assert GOOD_NOTE not in client.get(f"/api/posts/{post_id}").text
    _, bob_auth = _sign_up(web, "bob")
    assert client.get("/api/me/offers", headers=bob_auth).json() == []
    mine = client.get("/api/me/offers", headers=alice_auth).json()
    assert [o["id"] for o in mine] == [body["offer_id"]] and mine[0]["status"] == "sealed"
    assert GOOD_NOTE not in str(mine)

    # Only a moderator may close a market early.
    market_id = body["market_id"]
    assert client.post(f"/api/markets/{market_id}/close", headers=alice_auth).status_code == 403
    mod_auth = api_token(client, *MODERATOR)
    closed = client.post(f"/api/markets/{market_id}/close", headers=mod_auth)
    assert closed.status_code == 200, closed.text
    assert closed.json()["inspections"][0]["bought"] is True

    post = client.get(f"/api/posts/{post_id}").json()
    assert post["market"]["status"] == "settled"
    assert [(n["informer"], n["price"], n["text"]) for n in post["notes"]] == [("alice", 4, GOOD_NOTE)]
    me = client.get("/api/me", headers=alice_auth).json()
    offer = client.get("/api/me/offers", headers=alice_auth).json()[0]
    assert offer["status"] == "bought" and offer["charge"] == 2  # GSP alone in the auction: the reserve
    assert me["earnings"] == {"paid": 4, "attention_charges": 2, "net": 2, "notes_bought": 1}
    assert me["wallet"] == 100 - 2 + 4  # escrow 5, refund 3, paid 4: the books balance for the informer


def test_refused_offers_change_nothing(web: WebWorld) -> None:
    client = web.client
    alice, auth = _sign_up(web, "alice")
    post_id = open_post_id(client)
    url = f"/api/posts/{post_id}/offers"
    note = {"classification": "misleading", "text": "A note.", "sources": [], "bid": 5, "price": 4}
    cases: list[tuple[dict[str, Any], int, str]] = [
        (note | {"bid": "five"}, 422, "bid"),
        (note | {"bid": 101}, 400, "wallet holds 100"),
        (note | {"classification": "maybe"}, 422, "classification"),
        (note | {"text": "   "}, 400, "note text is empty"),
        (note | {"text": "x" * 2001}, 400, "limit is 2000"),
        (note | {"sources": ["s"] * 6}, 400, "6 sources"),
        (note | {"extra": 1}, 422, "extra"),
    ]
    for body, status, message in cases:
        response = client.post(url, headers=auth, json=body)
        assert response.status_code == status, (body, response.text)
        assert message in response.json()["detail"], response.text
    assert client.post(url, json=note).status_code == 401
    assert client.post(url, headers={"Authorization": "Bearer nb_wrong"}, json=note).status_code == 401
    assert client.get("/api/me/offers", headers=auth).json() == []
    assert _wallet(web, alice) == 100


def test_signup_refusals(web: WebWorld) -> None:
    client = web.client
    assert (
        client.post("/api/signup", json={"handle": "x", "password": "short", "community": SLUG}).status_code
        == 422
    )
    taken = client.post(
        "/api/signup", json={"handle": MODERATOR[0], "password": "long enough", "community": SLUG}
    )
    assert taken.status_code == 409 and "taken" in taken.json()["detail"]
    bad = client.post(
        "/api/signup", json={"handle": "bad handle!", "password": "long enough", "community": SLUG}
    )
    assert bad.status_code == 400 and "handle" in bad.json()["detail"]
    nowhere = client.post(
        "/api/signup", json={"handle": "carol", "password": "long enough", "community": "nope"}
    )
    assert nowhere.status_code == 404
    assert client.post("/api/tokens", json={"handle": "carol", "password": "long enough"}).status_code == 403


def test_moderator_settings_prompts_and_eval(
    web: WebWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client = web.client
    mod = api_token(client, *MODERATOR)
    reader = api_token(client, *READER)
    base = f"/api/communities/{SLUG}"
    assert client.get(f"{base}/settings", headers=reader).status_code == 403
    changed = client.patch(f"{base}/settings", headers=mod, json={"reserve": 3, "auction": "first_price"})
    assert changed.status_code == 200 and changed.json()["reserve"] == 3
    refused = client.patch(f"{base}/settings", headers=mod, json={"attention_slots": 0})
    # The schema declares the range (1-100), so the refusal is its 422, naming the field.
    assert refused.status_code == 422 and "attention_slots" in refused.json()["detail"]
    assert client.get(f"{base}/settings", headers=mod).json()["attention_slots"] == 3

    listing = client.get(f"{base}/prompts", headers=mod).json()
    v1 = listing["versions"][0]["id"]
    created = client.post(f"{base}/prompts", headers=mod, json={"text": PROMPT, "note": "shorter"})
    assert created.status_code == 201 and created.json()["version"] == 2
    v2 = created.json()["id"]
    assert "+Be fair." in client.get(f"{base}/prompts/diff/{v1}/{v2}", headers=mod).json()["diff"]
    assert client.post(f"{base}/prompts/{v2}/activate", headers=reader).status_code == 403
    assert client.post(f"{base}/prompts/{v2}/activate", headers=mod).json() == {"active_id": v2}
    assert client.get(f"{base}/prompts", headers=mod).json()["active_id"] == v2

    claims = tmp_path / "claims.jsonl"
    claims.write_text('{"claim": "x", "label": "misleading"}\n')
    # A malformed labelled file is refused with a message naming the line.
    malformed = client.post(
        f"{base}/prompts/{v2}/eval", headers=mod, json={"path": str(claims), "judge_kind": "simple"}
    )
    assert malformed.status_code == 400 and "line 1" in malformed.json()["detail"]
    # The real evaluation runs (the simple judge keeps it quick) and reports the quality keys.
    good = tmp_path / "good.jsonl"
    good.write_text(
        "".join(CLAIMS.read_text(encoding="utf-8").splitlines(keepends=True)[:3]), encoding="utf-8"
    )
    real = client.post(
        f"{base}/prompts/{v2}/eval", headers=mod, json={"path": str(good), "judge_kind": "simple"}
    )
    assert real.status_code == 200, real.text
    assert real.json()["result"]["claims"] == 3 and "logloss_final" in real.json()["table"]

    seen: dict[str, Any] = {}

    def fake_evaluate(path: Path, **kwargs: Any) -> dict[str, Any]:
        seen.update(kwargs, path=path)
        return FAKE_EVAL

    monkeypatch.setattr(evaluate, "evaluate", fake_evaluate)
    monkeypatch.setattr(evaluate, "format_table", lambda rows: f"table of {rows[0][0]}")
    result = client.post(
        f"{base}/prompts/{v2}/eval",
        headers=mod,
        json={"path": str(claims), "judge_kind": "simple", "limit": 2},
    )
    assert result.status_code == 200, result.text
    assert result.json()["result"] == FAKE_EVAL and result.json()["table"] == "table of judge v2 (simple)"
    assert seen["prompt_text"] == PROMPT and seen["limit"] == 2 and seen["path"] == claims
    for path in (str(tmp_path / "missing.jsonl"), str(tmp_path)):
        bad = client.post(f"{base}/prompts/{v2}/eval", headers=mod, json={"path": path})
        assert bad.status_code == 400, bad.text


def test_unpublish_ban_audit_and_ledger(web: WebWorld) -> None:
    client = web.client
    mod = api_token(client, *MODERATOR)
    settled = next(p for p in client.get("/api/posts").json() if p["notes"])
    note = settled["notes"][0]
    assert (
        client.post(f"/api/reveals/{note['id']}/unpublish", headers=mod, json={"reason": ""}).status_code
        == 400
    )
    assert (
        client.post(
            f"/api/reveals/{note['id']}/unpublish", headers=mod, json={"reason": "off topic"}
        ).status_code
        == 200
    )
    assert client.get(f"/api/posts/{settled['id']}").json()["notes"] == []

    informer_auth = api_token(client, *INFORMER)
    informer_id = client.get("/api/me", headers=informer_auth).json()["account_id"]
    banned = client.post(
        f"/api/communities/{SLUG}/bans", headers=mod, json={"account_id": informer_id, "reason": "spam"}
    )
    assert banned.status_code == 201
    refused = client.post(
        f"/api/posts/{open_post_id(client)}/offers",
        headers=informer_auth,
        json={"classification": "misleading", "text": "A note.", "bid": 2, "price": 1},
    )
    assert refused.status_code == 403 and "banned" in refused.json()["detail"]

    actions = [a["action"] for a in client.get(f"/api/communities/{SLUG}/audit", headers=mod).json()]
    assert actions[:2] == ["informer.ban", "note.unpublish"]
    assert client.get(f"/api/communities/{SLUG}/audit", headers=informer_auth).status_code == 403
    books = client.get(f"/api/communities/{SLUG}/ledger", headers=mod).json()
    assert books["ok"] is True and books["minted"] == books["circulating"] > 0
