"""Rule 6 (pipeline/rules.py): free actions never lock or drain a pool. A Sybil attack through the
API, sign-up credits as a setting, bids below the reserve, sane settings ranges, and amounts that
honour ``max_amount`` (and never overflow SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlite_utils import Database

from notebazaar.cli import main
from notebazaar.pipeline import community, ledger, market, rules
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.errors import ValidationError
from notebazaar.pipeline.judge.simple import SimpleJudge
from notebazaar.pipeline.settlement import close_market
from notebazaar.web.app import create_app
from tests.test_core_helpers import ScriptedJudge, make_market, restore_logging, snapshot  # noqa: F401
from tests.web_fixtures import (  # noqa: F401  (fixtures)
    DEMO_GRANT,
    MODERATOR,
    SLUG,
    WebWorld,
    api_token,
    fast_hashing_fixture,
    open_post_id,
    seeded_db,
    web_fixture,
    web_settings_fixture,
)

SYBILS = 6
POSTS_EACH = 6


def _pool(db_path: Path) -> tuple[int, int]:
    """(the demo pool's balance, how many ledger transactions there are)."""
    db = open_db(db_path, migrate=False)
    try:
        com = community.get_community(db, SLUG)
        count = db.execute("SELECT COUNT(*) FROM ledger_transactions").fetchone()[0]
        return ledger.balance(db, ledger.pool(com.id)), int(count)
    finally:
        db.close()


def _sybil(client: TestClient, n: int) -> dict[str, str]:
    handle = f"sybil{n}"
    signed = client.post(
        "/api/signup", json={"handle": handle, "password": "sybil-password", "community": SLUG}
    )
    assert signed.status_code == 201, signed.text
    return api_token(client, handle, "sybil-password")


@pytest.mark.parametrize("grant", [None, DEMO_GRANT], ids=["production", "demo-credits"])
def test_a_sybil_attack_of_free_posts_locks_nothing(
    tmp_path: Path, web_settings: Settings, fast_hashing: None, grant: int | None
) -> None:
    """Many free accounts each ask for notes on six posts (the attack that took a pool of 726 to 0):
    the pool neither moves nor shrinks, and every new market still shows what it could spend."""
    db_path = tmp_path / "sybil.db"
    seeded_db(db_path, web_settings)
    app = create_app(
        db_path, web_settings, judge=SimpleJudge(), key="k", signup_grant=grant, start_worker=False
    )
    pool_before, _ = _pool(db_path)
    assert pool_before > 0
    with TestClient(app) as client:
        markets = []
        for n in range(SYBILS):
            auth = _sybil(client, n)
            wallet = client.get("/api/me", headers=auth).json()["wallet"]
            assert wallet == (grant or 0)  # production: accounts are free, so they bring no money
            for p in range(POSTS_EACH):
                made = client.post(
                    "/api/posts", headers=auth, json={"community": SLUG, "text": f"Sybil {n} says {p}."}
                )
                assert made.status_code == 201, made.text
                markets.append(made.json()["post_id"])
        pool_after, _ = _pool(db_path)
        assert pool_after == pool_before  # nothing locked, nothing moved
        for post_id in markets[-3:]:
            state = client.get(f"/api/posts/{post_id}").json()["market"]
            assert state["status"] == "open" and state["budget_left"] == min(state["budget"], pool_before)


def test_a_market_holds_pool_credits_only_while_it_settles_with_an_offer_to_inspect(
    web: WebWorld,
) -> None:
    """A Sybil who pays to be read: the market takes its budget at close, the judge reads the note,
    and what it did not spend goes back, with the attention charge on top."""
    client = web.client
    pool_before, _ = _pool(web.db_path)
    auth = _sybil(client, 0)  # the web fixture is the demo: 100 sign-up credits
    post_id = client.post("/api/posts", headers=auth, json={"community": SLUG, "text": "Cats are dogs."})
    post_id = post_id.json()["post_id"]
    offer = client.post(
        f"/api/posts/{post_id}/offers",
        headers=auth,
        json={"classification": "misleading", "text": "Cats are not dogs.", "bid": 2, "price": 1000},
    )
    assert offer.status_code == 201, offer.text
    market_id = offer.json()["market_id"]
    assert _pool(web.db_path)[0] == pool_before  # still nothing taken while bidding is open
    closed = client.post(f"/api/markets/{market_id}/close", headers=api_token(client, *MODERATOR))
    assert closed.status_code == 200 and closed.json()["inspections"][0]["bought"] is False
    db = web.db()
    try:
        taken = [
            r[0]
            for r in db.execute(
                "SELECT kind FROM ledger_transactions WHERE idempotency_key = ?",
                [f"market:{market_id}:budget"],
            )
        ]
        assert taken == ["market_budget"]  # it did take its budget, at close
        assert ledger.balance(db, ledger.budget(market_id)) == 0
    finally:
        db.close()
    assert _pool(web.db_path)[0] == pool_before + 2  # all returned, plus the reserve it was charged


def test_a_market_without_an_offer_to_inspect_never_touches_the_pool(db: Database) -> None:
    com, market_id, _ = make_market(db)
    before = ledger.balance(db, ledger.pool(com))
    report = close_market(db, market_id, ScriptedJudge(), force=True)
    assert (report.spent, report.returned) == (0, 0)
    assert ledger.balance(db, ledger.pool(com)) == before
    assert not ledger.has_transaction(db, f"market:{market_id}:budget")
    assert rules.reserved_budget(200, 5_000, 0) == 0
    assert rules.reserved_budget(200, 120, 1) == 120 and rules.reserved_budget(200, 5_000, 3) == 200


def test_a_bid_below_the_reserve_is_refused_naming_the_reserve(web: WebWorld) -> None:
    client = web.client
    auth = _sybil(client, 0)
    post_id = open_post_id(client)
    before = _pool(web.db_path)
    refused = client.post(
        f"/api/posts/{post_id}/offers",
        headers=auth,
        json={"classification": "misleading", "text": "A note.", "bid": 1, "price": 1},
    )
    assert refused.status_code == 400
    assert "below market" in refused.json()["detail"] and "reserve of 2 credits" in refused.json()["detail"]
    assert client.get("/api/me", headers=auth).json()["wallet"] == DEMO_GRANT  # nothing escrowed
    assert _pool(web.db_path) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"price_of_information": 0}, "price_of_information"),
        ({"budget_per_market": 0}, "budget_per_market"),
        ({"window_seconds": 10**18}, "window_seconds"),
        ({"window_seconds": 0}, "window_seconds"),
        ({"reserve": 10**12}, "reserve"),
    ],
)
def test_community_settings_have_sane_ranges(db: Database, change: dict[str, int], field: str) -> None:
    com = community.create_community(db, "ranges")
    before = snapshot(db)
    with pytest.raises(ValidationError, match=field):
        community.update_settings(db, com.id, change)
    assert snapshot(db) == before


def test_the_api_declares_and_enforces_the_settings_ranges(web: WebWorld) -> None:
    client = web.client
    mod = api_token(client, *MODERATOR)
    url = f"/api/communities/{SLUG}/settings"
    for change in ({"price_of_information": 0}, {"budget_per_market": 0}, {"window_seconds": 10**18}):
        refused = client.patch(url, headers=mod, json=change)
        assert refused.status_code == 422 and next(iter(change)) in refused.json()["detail"]
    schema = client.get("/openapi.json").json()["components"]["schemas"]["SettingsChange"]["properties"]
    window = next(s for s in schema["window_seconds"]["anyOf"] if s.get("type") == "integer")
    assert (window["minimum"], window["maximum"]) == (60, 30 * 24 * 3600)


def test_production_sign_up_credits_are_zero_and_a_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no config.toml here: the built-in defaults
    monkeypatch.delenv("NOTEBAZAAR_CONFIG", raising=False)
    assert Settings().web.signup_credits == 0 and Settings().web.demo_signup_credits == 100
    monkeypatch.setenv("NOTEBAZAAR_WEB__SIGNUP_CREDITS", "7")
    assert Settings().web.signup_credits == 7


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["credits", "mint", "alice", str(2**63 - 1)], f"amount must be at most 1000000000, not {2**63 - 1}"),
        (["credits", "mint", "alice", str(2**63)], f"amount must be at most 1000000000, not {2**63}"),
        (["credits", "mint", "alice", "1000000001"], "amount must be at most 1000000000, not 1000000001"),
        (["pool", "fund", "core", str(2**63), "--from", "alice"], "amount must be at most 1000000000"),
        (["pool", "fund", "core", "1000000001", "--from", "alice"], "amount must be at most 1000000000"),
        (["market", "show", str(2**63)], f"market id {2**63} is larger than any id can be"),
    ],
)
def test_cli_amounts_honour_max_amount_without_a_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    db_path = tmp_path / "amounts.db"
    runner = CliRunner()
    for setup in (["community", "create", "core"], ["account", "create", "alice", "--community", "core"]):
        assert runner.invoke(main, [*setup, "--db", str(db_path)]).exit_code == 0
    assert json.loads(runner.invoke(main, ["credits", "mint", "alice", "50", "--db", str(db_path)]).stdout)
    db = open_db(db_path)
    before = snapshot(db)
    db.close()
    result = runner.invoke(main, [*args, "--db", str(db_path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert f"Error: {message}" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    db = open_db(db_path)
    assert snapshot(db) == before
    db.close()


def test_open_market_on_a_huge_post_id_is_refused(db: Database) -> None:
    with pytest.raises(ValidationError, match="larger than any id"):
        market.open_market(db, 2**63)


def test_serve_gives_sign_up_credits_only_with_the_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_hashing: None
) -> None:
    from notebazaar.web import server

    served: list[object] = []
    monkeypatch.setattr(server, "make_judge", lambda settings, db: SimpleJudge())
    monkeypatch.setattr(server.uvicorn, "run", lambda app, **kwargs: served.append(app))
    for demo in (True, False):
        server.run_server(tmp_path / "serve.db", Settings(), host="127.0.0.1", port=8123, seed_demo=demo)
    wallets = []
    for n, app in enumerate(served):
        with TestClient(app) as client:  # type: ignore[arg-type]
            body = {"handle": f"newcomer{n}", "password": "newcomer-password", "community": SLUG}
            wallets.append(client.post("/api/signup", json=body).json()["wallet"])
    assert wallets == [DEMO_GRANT, 0]
