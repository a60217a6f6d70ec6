"""Fixtures and helpers for the web tests: an app over a seeded demo database, with the SimpleJudge.

The SimpleJudge makes outcomes predictable: a note that shares most of the post's longer words moves
P(misleading) a lot (worth far more than a small price); an off-topic note barely moves it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlite_utils import Database

from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.judge.simple import SimpleJudge
from notebazaar.web import auth
from notebazaar.web.app import create_app
from notebazaar.web.demo import demo_logins, ensure_demo

SLUG = "demo"
MODERATOR = (f"{SLUG}_moderator", "moderator-demo-only")
READER = (f"{SLUG}_reader", "reader-demo-only")
INFORMER = (f"{SLUG}_informer", "informer-demo-only")
FAKE_EVAL = {
    "claims": 3,
    "judge": "local",
    "logloss_prior": 0.69,
    "logloss_final": 0.5,
    "brier_prior": 0.25,
    "brier_final": 0.2,
    "coverage": 0.7,
    "purchase_precision": 0.9,
    "spend_per_post": 12.0,
}
#: The web tests run the demo world, so new accounts get the demo's sign-up credits (the production
#: default, ``[web] signup_credits``, is 0).
DEMO_GRANT = Settings().web.demo_signup_credits
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class WebWorld:
    db_path: Path
    settings: Settings
    client: TestClient

    def db(self) -> Database:
        return open_db(self.db_path, migrate=False)


def seeded_db(db_path: Path, settings: Settings) -> None:
    db = open_db(db_path)
    try:
        assert ensure_demo(db, settings, SimpleJudge(), slug=SLUG) == demo_logins(SLUG)
    finally:
        db.close()


@pytest.fixture(name="web_settings")
def web_settings_fixture() -> Settings:
    return Settings()


@pytest.fixture(name="fast_hashing")
def fast_hashing_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 with its default cost takes ~0.6 s a hash here; tests use a cheap one (same code path)."""
    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture(name="web")
def web_fixture(tmp_path: Path, web_settings: Settings, fast_hashing: None) -> Iterator[WebWorld]:
    db_path = tmp_path / "web.db"
    seeded_db(db_path, web_settings)
    app = create_app(
        db_path, web_settings, judge=SimpleJudge(), key="test-secret-key", signup_grant=DEMO_GRANT
    )
    with TestClient(app) as client:
        yield WebWorld(db_path, web_settings, client)


def csrf_of(client: TestClient, url: str = "/") -> str:
    page = client.get(url)
    match = _CSRF.search(page.text)
    assert match, f"no CSRF field on {url}"
    return match.group(1)


def log_in(client: TestClient, handle: str, password: str) -> None:
    response = client.post(
        "/login", data={"handle": handle, "password": password, "csrf_token": csrf_of(client, "/login")}
    )
    assert response.status_code == 200 and "Log out" in response.text, response.text[:500]


def api_token(client: TestClient, handle: str, password: str) -> dict[str, str]:
    response = client.post("/api/tokens", json={"handle": handle, "password": password, "label": "test"})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def open_post_id(client: TestClient) -> int:
    """The newest demo post whose market is open."""
    posts = client.get("/api/posts", params={"community": SLUG}).json()
    return next(p["id"] for p in posts if p["market_status"] == "open")
