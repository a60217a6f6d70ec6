"""Retries move no money twice: ``Idempotency-Key`` on every API call that changes something; replace
is atomic; a post and its market are made in one transaction."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.routing import APIRoute

from notebazaar.pipeline import ledger, market
from notebazaar.pipeline.errors import MarketClosed
from notebazaar.web import api, idempotency
from tests.test_core_helpers import snapshot
from tests.web_fixtures import (  # noqa: F401  (fixtures)
    MODERATOR,
    SLUG,
    WebWorld,
    api_token,
    fast_hashing_fixture,
    open_post_id,
    web_fixture,
    web_settings_fixture,
)

NOTE = {"classification": "misleading", "text": "A sealed note about stoves.", "bid": 5, "price": 4}


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def _state(world: WebWorld) -> dict[str, list[tuple[Any, ...]]]:
    db = world.db()
    try:
        return {k: v for k, v in snapshot(db).items() if k != "idempotency_keys"}
    finally:
        db.close()


def _informer(world: WebWorld, handle: str = "retrier") -> dict[str, str]:
    signed = world.client.post(
        "/api/signup", json={"handle": handle, "password": "retry-password", "community": SLUG}
    )
    assert signed.status_code == 201, signed.text
    return api_token(world.client, handle, "retry-password")


def test_a_retried_call_gets_the_first_answer_and_moves_nothing(web: WebWorld) -> None:
    client = web.client
    auth = _informer(web)
    post_id = open_post_id(client)
    calls: list[tuple[str, dict[str, Any]]] = [
        (f"/api/posts/{post_id}/fund", {"amount": 7}),
        (f"/api/posts/{post_id}/offers", NOTE),
        ("/api/posts", {"community": SLUG, "text": "Is the moon made of cheese?"}),
    ]
    for url, body in calls:
        key = _key()
        first = client.post(url, headers=auth | key, json=body)
        assert first.status_code in (200, 201), first.text
        after_first = _state(web)
        again = client.post(url, headers=auth | key, json=dict(reversed(list(body.items()))))
        assert (again.status_code, again.json()) == (first.status_code, first.json()), url
        assert again.headers["Idempotent-Replayed"] == "true"
        assert _state(web) == after_first, f"{url}: the retry changed something"
        other = client.post(url, headers=auth | key, json=body | {"text": "something else"})
        if url.endswith("/fund"):
            other = client.post(url, headers=auth | key, json={"amount": 8})
        assert other.status_code == 409 and "Idempotency-Key" in other.json()["detail"], url
        assert _state(web) == after_first
        fresh = client.post(url, headers=auth | _key(), json=body)  # a new key is a new request
        assert fresh.status_code in (200, 201) and _state(web) != after_first


def test_withdraw_replace_and_sign_up_take_a_key_too(web: WebWorld) -> None:
    client = web.client
    auth = _informer(web)
    post_id = open_post_id(client)
    offer_id = client.post(f"/api/posts/{post_id}/offers", headers=auth, json=NOTE).json()["offer_id"]
    key = _key()
    replaced = client.post(f"/api/offers/{offer_id}/replace", headers=auth | key, json=NOTE | {"bid": 6})
    assert replaced.status_code == 201 and replaced.json()["replaced"] == offer_id
    before = _state(web)
    again = client.post(f"/api/offers/{offer_id}/replace", headers=auth | key, json=NOTE | {"bid": 6})
    assert again.json() == replaced.json() and _state(web) == before  # not "offer is replaced" (409)
    new_id = replaced.json()["offer_id"]
    key = _key()
    withdrawn = client.post(f"/api/offers/{new_id}/withdraw", headers=auth | key)
    assert withdrawn.status_code == 200
    assert client.post(f"/api/offers/{new_id}/withdraw", headers=auth | key).json() == withdrawn.json()
    signup = {"handle": "twice", "password": "twice-password", "community": SLUG}
    key = _key()
    first = client.post("/api/signup", headers=key, json=signup)
    second = client.post("/api/signup", headers=key, json=signup)
    assert first.status_code == second.status_code == 201 and first.json() == second.json()


def test_a_bad_key_is_refused_and_a_stored_answer_holds_no_salt(web: WebWorld) -> None:
    client = web.client
    auth = _informer(web)
    post_id = open_post_id(client)
    short = client.post(f"/api/posts/{post_id}/offers", headers=auth | {"Idempotency-Key": "1"}, json=NOTE)
    assert short.status_code == 422 and short.json()["error"] == "invalid"
    key = _key()
    receipt = client.post(f"/api/posts/{post_id}/offers", headers=auth | key, json=NOTE).json()
    db = web.db()
    try:
        stored = b"".join(
            bytes(str(v), "utf-8") if not isinstance(v, bytes) else v
            for row in snapshot(db)["idempotency_keys"]
            for v in row
        )
    finally:
        db.close()
    assert receipt["salt"].encode() not in stored and key["Idempotency-Key"].encode() not in stored
    # The answer is still there for the client that holds the key.
    replay = client.post(f"/api/posts/{post_id}/offers", headers=auth | key, json=NOTE)
    assert replay.json()["salt"] == receipt["salt"]


def test_every_api_call_that_changes_something_takes_the_key(web: WebWorld) -> None:
    """New endpoints get it by declaring the one dependency (docs/web.md): this keeps them honest."""
    routes = [r for r in api.router.routes if isinstance(r, APIRoute)]
    changing = [r for r in routes if r.methods & {"POST", "PUT", "PATCH", "DELETE"}]
    assert len(changing) >= 12
    for route in changing:
        calls = {d.call for d in route.dependant.dependencies}
        if route.path.endswith("/eval"):
            continue  # evaluation runs in shadow: it changes nothing
        assert idempotency.once in calls, f"{route.path} does not take an Idempotency-Key"
    schema = web.client.get("/openapi.json").json()
    fund = schema["paths"]["/api/posts/{post_id}/fund"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in fund["parameters"])


def test_replace_is_atomic_when_the_new_offer_is_refused(
    web: WebWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The market closes between the withdrawal and the new submission: the old offer stays sealed
    with its bid escrowed (withdraw-then-submit used to lose it)."""
    client = web.client
    auth = _informer(web)
    post_id = open_post_id(client)
    offer_id = client.post(f"/api/posts/{post_id}/offers", headers=auth, json=NOTE).json()["offer_id"]
    before = _state(web)
    real_submit = market.submit_offer

    def closing_meanwhile(*args: Any, **kwargs: Any) -> Any:
        raise MarketClosed("market 1's bidding window has ended")

    monkeypatch.setattr(market, "submit_offer", closing_meanwhile)
    refused = client.post(f"/api/offers/{offer_id}/replace", headers=auth, json=NOTE | {"bid": 6})
    monkeypatch.setattr(market, "submit_offer", real_submit)
    assert refused.status_code == 409 and "window has ended" in refused.json()["detail"]
    assert _state(web) == before
    mine = client.get("/api/me/offers", headers=auth).json()
    assert [(o["id"], o["status"]) for o in mine] == [(offer_id, "sealed")]


def test_a_post_and_its_market_are_one_transaction(web: WebWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    client = web.client
    auth = _informer(web)
    before = _state(web)

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise MarketClosed("no market today")

    monkeypatch.setattr(market, "open_market", refused)
    answer = client.post("/api/posts", headers=auth, json={"community": SLUG, "text": "Half a post?"})
    assert answer.status_code == 409
    assert _state(web) == before  # no post without its market


def test_the_answer_survives_with_the_money_or_not_at_all(
    web: WebWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer is stored in the transaction that moved the money: if storing fails, nothing moved."""
    client = web.client
    auth = _informer(web)
    post_id = open_post_id(client)
    before = _state(web)
    db = web.db()
    wallet_id = int(db.execute("SELECT id FROM accounts WHERE handle = 'retrier'").fetchone()[0])
    db.close()

    def broken_store(self: idempotency.Once, answer: Any) -> None:
        raise RuntimeError("disk gone")

    monkeypatch.setattr(idempotency.Once, "_store", broken_store)
    client_no_raise = type(client)(client.app, raise_server_exceptions=False)
    failed = client_no_raise.post(f"/api/posts/{post_id}/fund", headers=auth | _key(), json={"amount": 9})
    assert failed.status_code == 500 and failed.json()["error"] == "internal"
    assert _state(web) == before
    db = web.db()
    try:
        assert ledger.balance(db, ledger.wallet(wallet_id)) == 100
    finally:
        db.close()
