"""Accounts on the web and the API: revocable sessions, rate-limited password guessing, the same
work for unknown handles, common passwords refused, password change, and bans at the surfaces
(issue 15)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from notebazaar.pipeline import community, ledger
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.judge.simple import SimpleJudge
from notebazaar.web import auth
from notebazaar.web.app import create_app
from notebazaar.web.deps import client_address
from tests.web_fixtures import (  # noqa: F401  (fixtures)
    INFORMER,
    MODERATOR,
    READER,
    SLUG,
    WebWorld,
    api_token,
    csrf_of,
    fast_hashing_fixture,
    log_in,
    open_post_id,
    seeded_db,
    web_fixture,
    web_settings_fixture,
)

COOKIE = "notebazaar_session"


def _signed_in(client: TestClient) -> bool:
    return client.get("/me", follow_redirects=False).status_code == 200


def _with_cookie(web: WebWorld, cookie: str) -> TestClient:
    """A second browser that presents a copy of a saved session cookie."""
    other = TestClient(web.client.app)
    other.cookies.set(COOKIE, cookie)
    return other


def test_logout_ends_the_session_on_the_server(web: WebWorld) -> None:
    client = web.client
    log_in(client, *INFORMER)
    saved = client.cookies[COOKIE]
    assert _signed_in(_with_cookie(web, saved))  # the copy works while the session lives
    client.post("/logout", data={"csrf_token": csrf_of(client, "/me")})
    assert not _signed_in(client)
    assert not _signed_in(_with_cookie(web, saved))  # ...and not after logout
    db = web.db()
    try:
        assert db["sessions"].count == 0
    finally:
        db.close()


def test_signing_in_as_someone_else_ends_the_first_session(web: WebWorld) -> None:
    client = web.client
    log_in(client, *INFORMER)
    saved = client.cookies[COOKIE]
    log_in(client, *READER)  # the same browser, without logging out
    assert not _signed_in(_with_cookie(web, saved))  # the informer's session is gone on the server
    db = web.db()
    try:
        [handle] = [
            r[0] for r in db.execute("SELECT a.handle FROM sessions s JOIN accounts a ON a.id = s.account_id")
        ]
    finally:
        db.close()
    assert handle == READER[0]


def test_the_session_cookie_is_secure_only_when_configured(tmp_path: Path, fast_hashing: None) -> None:
    for https_only in (False, True):
        settings = Settings(web={"https_only": https_only})
        db_path = tmp_path / f"{https_only}.db"
        seeded_db(db_path, settings)
        app = create_app(db_path, settings, judge=SimpleJudge(), key="k")
        with TestClient(app, base_url="https://testserver") as client:
            page = client.get("/login")
            cookie = page.headers["set-cookie"]
            assert cookie.startswith(COOKIE) and ("; secure" in cookie.lower()) is https_only, cookie


@pytest.mark.parametrize(
    ("host", "counted_as"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("testclient", "testclient"),
    ],
)
def test_the_login_limit_counts_an_ipv6_visitor_by_its_64(host: str, counted_as: str) -> None:
    request = MagicMock(client=MagicMock(host=host))
    assert client_address(request) == counted_as


def test_a_password_change_ends_every_session_and_keeps_this_one(web: WebWorld) -> None:
    client = web.client
    log_in(client, *INFORMER)
    elsewhere = TestClient(web.client.app)
    log_in(elsewhere, *INFORMER)
    assert _signed_in(elsewhere)
    token = csrf_of(client, "/me/password")
    form = {"current": INFORMER[1], "new": "a new and longer passphrase", "csrf_token": token}
    mismatch = client.post("/me/password", data=form | {"confirm": "something else"})
    assert mismatch.status_code == 400 and "differ" in mismatch.text
    common = client.post("/me/password", data=form | {"new": "password123", "confirm": "password123"})
    assert common.status_code == 400 and "too common" in common.text
    wrong = client.post("/me/password", data=form | {"current": "not it at all", "confirm": form["new"]})
    assert wrong.status_code == 403 and "current password is wrong" in wrong.text
    assert _signed_in(elsewhere)  # refused changes end nothing

    done = client.post("/me/password", data=form | {"confirm": form["new"]})
    assert done.status_code == 200 and "Password changed. 1 other session signed out." in done.text
    assert _signed_in(client) and not _signed_in(elsewhere)
    log_in(elsewhere, INFORMER[0], "a new and longer passphrase")
    with pytest.raises(AssertionError):
        log_in(TestClient(web.client.app), *INFORMER)  # the old password is gone


def test_the_api_changes_a_password_and_signs_out_the_browser(web: WebWorld) -> None:
    client = web.client
    headers = api_token(client, *READER)
    log_in(client, *READER)
    body = {"current_password": READER[1], "new_password": "letmein1"}
    refused = client.post("/api/me/password", headers=headers, json=body)
    assert refused.status_code == 400 and "too common" in refused.json()["detail"]
    body["new_password"] = "seven purple elephants dancing"
    changed = client.post("/api/me/password", headers=headers, json=body)
    assert changed.status_code == 200 and changed.json()["sessions_ended"] == 1
    assert not _signed_in(client)
    assert client.get("/api/me", headers=headers).status_code == 200  # tokens are revoked one by one


@pytest.mark.parametrize("password", ["password", "password1", "qwertyuiop", "iloveyou1", "P@ssw0rd"])
def test_sign_up_refuses_common_passwords(web: WebWorld, password: str) -> None:
    response = web.client.post(
        "/api/signup", json={"handle": "newbie", "password": password, "community": SLUG}
    )
    assert response.status_code == 400 and "too common" in response.json()["detail"]
    page = web.client.post(
        "/signup",
        data={
            "handle": "newbie",
            "password": password,
            "community": SLUG,
            "csrf_token": csrf_of(web.client, "/signup"),
        },
    )
    assert page.status_code == 400 and "too common" in page.text


def test_a_password_that_is_the_handle_is_refused() -> None:
    with pytest.raises(Exception, match="too common"):
        auth.check_new_password("quentin-tarantula", "quentin-tarantula")
    assert auth.check_new_password("mauve hedgehog orbit", "quentin") == "mauve hedgehog orbit"


@pytest.fixture
def throttled(tmp_path: Path, fast_hashing: None) -> Iterator[WebWorld]:
    settings = Settings(
        web={"login_rate_per_handle": "3 per 10 minutes", "login_rate_per_address": "6/minute"}
    )
    db_path = tmp_path / "throttled.db"
    seeded_db(db_path, settings)
    with TestClient(create_app(db_path, settings, judge=SimpleJudge(), key="k")) as client:
        yield WebWorld(db_path, settings, client)


def _login(client: TestClient, handle: str, password: str) -> Any:
    return client.post(
        "/login", data={"handle": handle, "password": password, "csrf_token": csrf_of(client, "/login")}
    )


def test_logins_are_rate_limited_per_handle(throttled: WebWorld) -> None:
    client = throttled.client
    for _ in range(3):
        assert _login(client, READER[0], "wrong guess here").status_code == 401
    blocked = _login(client, READER[0], READER[1])  # even the right password, once over the limit
    assert blocked.status_code == 429 and "too many login attempts" in blocked.text
    assert int(blocked.headers["Retry-After"]) > 0
    api = client.post("/api/tokens", json={"handle": READER[0], "password": READER[1]})
    assert api.status_code == 429 and api.json()["error"] == "rate_limited" and "Retry-After" in api.headers
    assert _login(client, INFORMER[0], INFORMER[1]).status_code == 200  # another handle is not blocked


def test_token_requests_are_rate_limited_per_address_even_for_unknown_handles(throttled: WebWorld) -> None:
    client = throttled.client
    answers = [
        client.post("/api/tokens", json={"handle": f"nobody{i}", "password": "guess guess"}).status_code
        for i in range(6)
    ]
    assert answers == [403] * 6
    refused = client.post("/api/tokens", json={"handle": MODERATOR[0], "password": MODERATOR[1]})
    assert refused.status_code == 429 and "your address" in refused.json()["detail"]


def test_unknown_handles_cost_the_same_argon2_work(web: WebWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    verified: list[str] = []
    hasher = auth._hasher

    class Counting(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            verified.append(str(hash).split("$")[3])  # the cost parameters: m=...,t=...,p=...
            return hasher.verify(hash, password)

    monkeypatch.setattr(
        auth,
        "_hasher",
        Counting(time_cost=hasher.time_cost, memory_cost=hasher.memory_cost, parallelism=hasher.parallelism),
    )
    db = web.db()
    try:
        community.create_account(db, "passwordless")  # a bot's account: no password at all
        for handle in (READER[0], "no-such-handle", "passwordless", "bad handle!"):
            with pytest.raises(Exception, match="wrong handle or password"):
                auth.log_in(db, handle, "a wrong password")
    finally:
        db.close()
    assert len(verified) == 4 and len(set(verified)) == 1  # one verify each, at the same cost


def test_a_banned_reader_cannot_post_or_fund(web: WebWorld) -> None:
    client = web.client
    mod, reader = api_token(client, *MODERATOR), api_token(client, *READER)
    reader_id = client.get("/api/me", headers=reader).json()["account_id"]
    moderator_id = client.get("/api/me", headers=mod).json()["account_id"]
    post_id = open_post_id(client)
    assert client.post(f"/api/posts/{post_id}/fund", headers=reader, json={"amount": 5}).status_code == 200
    self_ban = client.post(
        f"/api/communities/{SLUG}/bans", headers=mod, json={"account_id": moderator_id, "reason": "oops"}
    )
    assert self_ban.status_code == 403 and "yourself" in self_ban.json()["detail"]
    banned = client.post(
        f"/api/communities/{SLUG}/bans", headers=mod, json={"account_id": reader_id, "reason": "spam"}
    )
    assert banned.status_code == 201
    wallet = client.get("/api/me", headers=reader).json()["wallet"]
    fund = client.post(f"/api/posts/{post_id}/fund", headers=reader, json={"amount": 5})
    assert fund.status_code == 403 and "banned" in fund.json()["detail"]
    post = client.post("/api/posts", headers=reader, json={"community": SLUG, "text": "Spam spam spam."})
    assert post.status_code == 403 and "banned" in post.json()["detail"]
    assert client.get("/api/me", headers=reader).json()["wallet"] == wallet

    log_in(client, *READER)
    token = csrf_of(client, f"/posts/{post_id}")
    page_post = client.post("/posts", data={"community": SLUG, "text": "Spam again.", "csrf_token": token})
    assert page_post.status_code == 403 and "banned" in page_post.text
    page_fund = client.post(f"/posts/{post_id}/fund", data={"amount": "5", "csrf_token": token})
    assert page_fund.status_code == 403 and "banned" in page_fund.text

    lifted = client.delete(f"/api/communities/{SLUG}/bans/{reader_id}", headers=mod)
    assert lifted.status_code == 200 and lifted.json()["banned"] is False
    assert client.post(f"/api/posts/{post_id}/fund", headers=reader, json={"amount": 5}).status_code == 200
    again = client.delete(f"/api/communities/{SLUG}/bans/{reader_id}", headers=mod)
    assert again.status_code == 404
    db = web.db()
    try:
        assert ledger.check(db).ok
    finally:
        db.close()


def test_the_console_bans_with_a_confirmation_and_unbans(web: WebWorld) -> None:
    client = web.client
    db = web.db()
    try:
        informer = int(community.get_account(db, INFORMER[0])["id"])
    finally:
        db.close()
    log_in(client, *MODERATOR)
    token = csrf_of(client, f"/mod/{SLUG}")
    form = {"account": str(informer), "reason": "spam", "csrf_token": token}
    asked = client.post(f"/mod/{SLUG}/bans", data=form)
    assert (
        asked.status_code == 200
        and "Ban demo_informer from" in asked.text
        and 'id="confirm-form"' in asked.text
    )
    assert 'name="reason" value="spam"' in asked.text and 'name="confirm" value="yes"' in asked.text
    assert "banned: spam" not in client.get(f"/mod/{SLUG}").text  # asking changed nothing
    done = client.post(f"/mod/{SLUG}/bans", data=form | {"confirm": "yes"})
    assert "banned: spam" in done.text and "is banned from demo" in done.text
    lifted = client.post(f"/mod/{SLUG}/bans/{informer}/lift", data={"csrf_token": token})
    assert "The ban on demo_informer is lifted" in lifted.text and "banned: spam" not in lifted.text
