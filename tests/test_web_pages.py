"""The server-rendered pages through the test client: CSRF, roles, form errors that change nothing,
sealed content never shown, the console's actions, and the worker closing due markets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from notebazaar.pipeline import community, evaluate, ledger
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.db import open_db, write
from notebazaar.pipeline.judge.simple import SimpleJudge
from notebazaar.web.app import create_app, secret_key
from tests.web_fixtures import (  # noqa: F401  (fixtures)
    FAKE_EVAL,
    INFORMER,
    MODERATOR,
    READER,
    SLUG,
    WebWorld,
    csrf_of,
    fast_hashing_fixture,
    log_in,
    open_post_id,
    seeded_db,
    web_fixture,
    web_settings_fixture,
)

SECRET_NOTE = "Penguins secretly run the weather bureau and wrote this post themselves."


def _accounts(world: WebWorld) -> int:
    db = world.db()
    try:
        return int(db.execute("SELECT COUNT(*) FROM accounts").fetchone()[0])
    finally:
        db.close()


def test_feed_and_post_pages_render(web: WebWorld) -> None:
    feed = web.client.get("/")
    assert feed.status_code == 200
    assert "Arctic sea ice" in feed.text and 'class="note"' in feed.text  # the demo's revealed note
    assert "/static/htmx.min.js" in feed.text
    assert web.client.get("/static/htmx.min.js").text.startswith("/*! htmx.org 2.")
    post = web.client.get(f"/posts/{open_post_id(web.client)}")
    assert post.status_code == 200 and 'id="time-left"' in post.text and "Log in" in post.text
    assert web.client.get("/posts/999").status_code == 404


def test_every_form_post_needs_the_csrf_token(web: WebWorld) -> None:
    before = _accounts(web)
    response = web.client.post(
        "/signup", data={"handle": "mallory", "password": "long enough", "community": SLUG}
    )
    assert response.status_code == 403 and "security token" in response.text
    stale = web.client.post(
        "/signup",
        data={"handle": "mallory", "password": "long enough", "community": SLUG, "csrf_token": "forged"},
    )
    assert stale.status_code == 403
    assert _accounts(web) == before


def test_signup_errors_rerender_the_form_and_change_nothing(web: WebWorld) -> None:
    before = _accounts(web)
    token = csrf_of(web.client, "/signup")
    short = web.client.post(
        "/signup", data={"handle": "ann", "password": "short", "community": SLUG, "csrf_token": token}
    )
    assert short.status_code == 400 and "at least 8 characters" in short.text and 'value="ann"' in short.text
    taken = web.client.post(
        "/signup",
        data={"handle": MODERATOR[0], "password": "long enough", "community": SLUG, "csrf_token": token},
    )
    assert taken.status_code == 409 and "is taken" in taken.text
    assert _accounts(web) == before
    wrong = web.client.post(
        "/login", data={"handle": READER[0], "password": "nope nope", "csrf_token": token}
    )
    assert wrong.status_code == 401 and "wrong handle or password" in wrong.text


def test_sealed_note_form_receipt_and_dashboard(web: WebWorld) -> None:
    client = web.client
    log_in(client, *INFORMER)
    post_id = open_post_id(client)
    token = csrf_of(client, f"/posts/{post_id}")
    form = {
        "classification": "misleading",
        "text": SECRET_NOTE,
        "sources": "",
        "bid": "9",
        "price": "80",
        "csrf_token": token,
    }
    for change, message in (
        ({"bid": "lots"}, "bid must be a whole number"),
        ({"classification": ""}, "classification must be"),
        ({"bid": "100000"}, "wallet holds"),
        ({"price": "-1"}, "price must be at least"),
    ):
        refused = client.post(f"/posts/{post_id}/offers", data=form | change)
        assert refused.status_code == 400 and message in refused.text, refused.text[-3000:]
        assert SECRET_NOTE in refused.text  # the informer's own draft comes back to fix
    assert "offer-" not in client.get("/me").text
    receipt = client.post(f"/posts/{post_id}/offers", data=form)
    assert (
        receipt.status_code == 201 and "Keep the salt" in receipt.text and 'id="receipt-salt"' in receipt.text
    )

    # Off topic and overpriced: the judge reads it and does not buy it; it is shredded.
    log_in(client, *MODERATOR)
    market_id = client.get(f"/api/posts/{post_id}").json()["market"]["id"]
    token = csrf_of(client, f"/mod/{SLUG}")
    closed = client.post(
        f"/mod/{SLUG}/markets/{market_id}/close", data={"csrf_token": token, "confirm": "yes"}
    )
    assert closed.status_code == 200 and "0 bought" in closed.text
    for url in ("/", f"/posts/{post_id}", f"/mod/{SLUG}", "/me"):
        assert SECRET_NOTE not in client.get(url).text
    log_in(client, *INFORMER)
    dashboard = client.get("/me").text
    assert "shredded" in dashboard and "worth less than price" in dashboard and SECRET_NOTE not in dashboard


def test_console_is_for_moderators_only(web: WebWorld) -> None:
    client = web.client
    assert client.get(f"/mod/{SLUG}").url.path == "/login"
    log_in(client, *READER)
    assert client.get(f"/mod/{SLUG}").status_code == 403
    assert client.get("/mod").status_code == 403
    assert client.get(f"/mod/{SLUG}/prompts").status_code == 403
    token = csrf_of(client)
    assert client.post(f"/mod/{SLUG}/settings", data={"reserve": "9", "csrf_token": token}).status_code == 403


def test_console_actions_and_refusals(web: WebWorld) -> None:
    client = web.client
    log_in(client, *MODERATOR)
    token = csrf_of(client, f"/mod/{SLUG}")
    bad = client.post(f"/mod/{SLUG}/settings", data={"reserve": "two", "csrf_token": token})
    assert bad.status_code == 400 and "reserve must be a whole number" in bad.text
    bad = client.post(f"/mod/{SLUG}/settings", data={"attention_slots": "0", "csrf_token": token})
    assert bad.status_code == 400 and "attention_slots" in bad.text
    ok = client.post(
        f"/mod/{SLUG}/settings", data={"reserve": "4", "auction": "first_price", "csrf_token": token}
    )
    assert ok.status_code == 200 and "settings saved" in ok.text
    assert client.get(f"/api/communities/{SLUG}/settings").status_code == 401  # the API ignores cookies

    note = next(p for p in client.get("/api/posts").json() if p["notes"])["notes"][0]
    refused = client.post(
        f"/mod/{SLUG}/notes/{note['id']}/unpublish",
        data={"reason": " ", "csrf_token": token, "confirm": "yes"},
    )
    assert refused.status_code == 400 and "reason is empty" in refused.text
    done = client.post(
        f"/mod/{SLUG}/notes/{note['id']}/unpublish",
        data={"reason": "duplicate", "csrf_token": token, "confirm": "yes"},
    )
    assert "unpublished: duplicate" in done.text

    db = web.db()
    try:
        informer = int(community.get_account(db, INFORMER[0])["id"])
    finally:
        db.close()
    banned = client.post(
        f"/mod/{SLUG}/bans",
        data={"account": str(informer), "reason": "spam", "csrf_token": token, "confirm": "yes"},
    )
    assert "banned: spam" in banned.text
    page = client.get(f"/mod/{SLUG}").text
    assert "ledger check: ok" in page
    for action in ("community.settings", "note.unpublish", "informer.ban"):
        assert action in page


def test_prompt_eval_by_upload_and_its_failures(web: WebWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    client = web.client
    log_in(client, *MODERATOR)
    prompt_id = client.get(f"/mod/{SLUG}/prompts").text.split(f"/mod/{SLUG}/prompts/")[1].split('"')[0]
    url = f"/mod/{SLUG}/prompts/{prompt_id}/eval"
    token = csrf_of(client, f"/mod/{SLUG}/prompts/{prompt_id}")
    upload = {"upload": ("claims.jsonl", b'{"claim": "x", "label": "misleading"}\n', "application/json")}
    malformed = client.post(url, data={"judge_kind": "simple", "csrf_token": token}, files=upload)
    assert malformed.status_code == 400 and "line 1" in malformed.text

    seen: dict[str, Any] = {}

    def fake(path: Path, **kwargs: Any) -> dict[str, Any]:
        seen["text"] = path.read_text()
        return FAKE_EVAL

    monkeypatch.setattr(evaluate, "evaluate", fake)
    monkeypatch.setattr(evaluate, "format_table", lambda rows: "TABLE " + rows[0][0])
    result = client.post(url, data={"judge_kind": "simple", "limit": "3", "csrf_token": token}, files=upload)
    assert (
        result.status_code == 200
        and "TABLE judge v1 (simple)" in result.text
        and "purchase_precision" in result.text
    )
    assert "label" in seen["text"]
    for data, message in (
        ({"path": "/etc/passwd"}, "not a .jsonl file"),
        ({"path": "/nowhere/claims.jsonl"}, "no file at"),
        ({"path": ""}, "give the path"),
        ({"path": "/x.jsonl", "judge_kind": "oracle"}, "judge kind must be"),
        ({"path": "/x.jsonl", "limit": "many"}, "limit must be a whole number"),
    ):
        failed = client.post(url, data={"judge_kind": "simple", "csrf_token": token} | data)
        assert failed.status_code == 400 and message in failed.text, (data, failed.text[-2000:])


def test_tokens_page_shows_a_token_once(web: WebWorld) -> None:
    client = web.client
    log_in(client, *INFORMER)
    token = csrf_of(client, "/me/tokens")
    created = client.post("/me/tokens", data={"label": "my bot", "csrf_token": token})
    value = created.text.split('id="token-value" value="')[1].split('"')[0]
    assert value.startswith("nb_") and value not in client.get("/me/tokens").text
    me = client.get("/api/me", headers={"Authorization": f"Bearer {value}"}).json()
    assert me["handle"] == INFORMER[0]


def test_worker_closes_due_markets(tmp_path: Path, fast_hashing: None) -> None:
    settings = Settings(web={"close_poll_seconds": 0.05})
    db_path = tmp_path / "worker.db"
    seeded_db(db_path, settings)
    db = open_db(db_path)
    try:  # make the demo's open markets due
        with write(db):
            db.execute("UPDATE markets SET closes_at = ? WHERE status = 'open'", [time.time() - 1])
    finally:
        db.close()
    with TestClient(create_app(db_path, settings, judge=SimpleJudge(), key="k")) as client:
        deadline = time.monotonic() + 10
        while any(p["market_status"] != "settled" for p in client.get("/api/posts").json()):
            assert time.monotonic() < deadline, "the worker did not close the due markets"
            time.sleep(0.05)
    db = open_db(db_path)
    try:
        assert ledger.check(db).ok
    finally:
        db.close()


def test_secret_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    monkeypatch.setenv("NOTEBAZAAR_SECRET_KEY", "from-env")
    assert secret_key() == "from-env"
    monkeypatch.delenv("NOTEBAZAAR_SECRET_KEY")
    first, second = secret_key(), secret_key()
    assert first != second and len(first) > 40
    assert "NOTEBAZAAR_SECRET_KEY is not set" in caplog.text


def test_run_server_seeds_the_demo_once_and_prints_logins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, fast_hashing: None
) -> None:
    from notebazaar.web import server

    served: list[Any] = []
    monkeypatch.setattr(server, "make_judge", lambda settings, db: SimpleJudge())
    monkeypatch.setattr(server.uvicorn, "run", lambda app, **kwargs: served.append((app, kwargs)))
    db_path = tmp_path / "serve.db"
    server.run_server(db_path, Settings(), host="127.0.0.1", port=8123, seed_demo=True)
    out = capsys.readouterr().out
    assert "DEMO ONLY" in out and "demo_moderator" in out and "moderator-demo-only" in out
    assert served[0][1] == {"host": "127.0.0.1", "port": 8123, "log_level": "info"}
    server.run_server(db_path, Settings(), host="127.0.0.1", port=8123, seed_demo=True)
    assert "moderator-demo-only" not in capsys.readouterr().out
    with TestClient(served[1][0]) as client:
        assert len(client.get("/api/posts").json()) == 4
