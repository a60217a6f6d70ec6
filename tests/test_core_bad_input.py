"""Bad input gets a clear error naming the problem, and the database is left exactly as it was."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from notebazaar.cli import main
from notebazaar.pipeline import community, ledger, market, moderation
from notebazaar.pipeline.config import LimitSettings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.errors import NotebazaarError
from notebazaar.pipeline.settlement import close_market
from tests.test_core_helpers import ScriptedJudge, make_market, restore_logging, snapshot  # noqa: F401

LIMITS = LimitSettings(max_note_chars=100, max_sources=2, max_source_chars=50, max_open_offers_per_informer=2)


@pytest.fixture
def scene(db: Database) -> dict[str, Any]:
    """A market with one sealed offer, a second closed market, and a banned and a broke informer."""
    com, market_id, informers = make_market(db, informers=3)
    offer = market.submit_offer(
        db,
        market_id,
        informers[0],
        classification="misleading",
        text="ok note",
        bid=5,
        price=9,
        limits=LIMITS,
    ).offer_id
    moderator = community.create_account(db, "core-mod")
    community.grant(db, moderator, com, "moderator")
    moderation.ban(db, moderator, informers[2], com, "spam")
    broke = community.create_account(db, "core-broke")
    community.mint(db, broke, 3, key="mint:broke")
    post2 = community.add_post(db, com, "Another post")
    closed = market.open_market(db, post2, budget=0)
    close_market(db, closed, ScriptedJudge(), force=True)
    return {"market": market_id, "closed": closed, "offer": offer, "informers": informers, "broke": broke}


def _submit(s: dict[str, Any], **over: Any) -> Callable[[Database], object]:
    def call(db: Database) -> object:
        kwargs: dict[str, Any] = {
            "classification": "misleading",
            "text": "a fine note",
            "sources": ["https://example.org"],
            "bid": 3,
            "price": 4,
            "limits": LIMITS,
        }
        kwargs.update(over)
        market_id = kwargs.pop("market_id", s["market"])
        informer = kwargs.pop("informer", s["informers"][1])
        return market.submit_offer(db, market_id, informer, **kwargs)

    return call


CASES: list[tuple[str, Callable[[dict[str, Any]], Callable[[Database], object]], str]] = [
    ("negative bid", lambda s: _submit(s, bid=-1), "bid must be at least 0, not -1"),
    ("negative price", lambda s: _submit(s, price=-7), "price must be at least 1, not -7"),
    ("NaN bid", lambda s: _submit(s, bid=float("nan")), "bid must be a whole number of credits, not NaN"),
    (
        "NaN price",
        lambda s: _submit(s, price=float("nan")),
        "price must be a whole number of credits, not NaN",
    ),
    ("float bid", lambda s: _submit(s, bid=2.5), "bid must be a whole number"),
    ("string price", lambda s: _submit(s, price="5"), "price must be a whole number"),
    ("bool bid", lambda s: _submit(s, bid=True), "bid must be a whole number"),
    ("huge bid", lambda s: _submit(s, bid=10**12), "bid must be at most 1000000000"),
    ("huge price", lambda s: _submit(s, price=10**30), "price must be at most 1000000000"),
    ("infinite price", lambda s: _submit(s, price=float("inf")), "price must be a whole number"),
    ("unknown market", lambda s: _submit(s, market_id=999), "no market 999"),
    ("bad market id", lambda s: _submit(s, market_id=0), "market id must be a positive whole number"),
    ("unknown informer", lambda s: _submit(s, informer=999), "no account 999"),
    ("closed market", lambda s: _submit(s, market_id=s["closed"]), "is settled; it takes no offers"),
    ("oversize note", lambda s: _submit(s, text="x" * 101), "note text is 101 characters; the limit is 100"),
    ("empty note", lambda s: _submit(s, text="   "), "note text is empty"),
    ("lone surrogate", lambda s: _submit(s, text="bad \ud800 text"), "note text is not valid UTF-8"),
    ("invalid utf-8 bytes", lambda s: _submit(s, text=b"caf\xe9 \xff"), "note text is not valid UTF-8"),
    ("control character", lambda s: _submit(s, text="nul\x00here"), "control character (U+0000)"),
    ("surrogate in a source", lambda s: _submit(s, sources=["\udfff"]), "source 1 is not valid UTF-8"),
    ("oversize source", lambda s: _submit(s, sources=["s" * 51]), "source 1 is 51 characters"),
    ("too many sources", lambda s: _submit(s, sources=["a", "b", "c"]), "3 sources given; the limit is 2"),
    ("sources not a list", lambda s: _submit(s, sources="https://a"), "sources must be a list"),
    ("bad classification", lambda s: _submit(s, classification="true"), "classification must be"),
    ("banned informer", lambda s: _submit(s, informer=s["informers"][2]), "banned"),
    (
        "insufficient wallet",
        lambda s: _submit(s, informer=s["broke"], bid=4),
        "the bid is 4 credits but the wallet holds 3",
    ),
    (
        "withdraw someone else's offer",
        lambda s: lambda db: market.withdraw_offer(db, s["offer"], s["informers"][1]),
        "no offer {offer} of yours",
    ),
    (
        "withdraw unknown offer",
        lambda s: lambda db: market.withdraw_offer(db, 999, s["informers"][0]),
        "no offer 999",
    ),
    (
        "withdraw after the window",
        lambda s: (
            lambda db: market.withdraw_offer(db, s["offer"], s["informers"][0], now=time.time() + 10**6)
        ),
        "bidding window has ended",
    ),
    (
        "replace with a bad note",
        lambda s: (
            lambda db: market.replace_offer(
                db,
                s["offer"],
                s["informers"][0],
                classification="misleading",
                text="x" * 101,
                bid=1,
                price=1,
                limits=LIMITS,
            )
        ),
        "note text is 101 characters",
    ),
    (
        "replace with an unaffordable bid",
        lambda s: (
            lambda db: market.replace_offer(
                db, s["offer"], s["informers"][0], classification="misleading", text="ok", bid=1006, price=1
            )
        ),
        "the bid is 1006 credits but the wallet holds 1000",
    ),
    ("open market on unknown post", lambda s: lambda db: market.open_market(db, 999), "no post 999"),
    (
        "close unknown market",
        lambda s: lambda db: close_market(db, 999, ScriptedJudge(), force=True),
        "no market 999",
    ),
    ("mint zero", lambda s: lambda db: community.mint(db, s["broke"], 0), "amount must be at least 1"),
    ("mint to nobody", lambda s: lambda db: community.mint(db, 999, 5), "no account 999"),
    (
        "fund pool beyond the wallet",
        lambda s: lambda db: community.fund_pool(db, 1, s["broke"], 50),
        "holds 3 credits",
    ),
    (
        "resolve with nonsense",
        lambda s: lambda db: market.resolve_post(db, 1, "maybe"),
        "classification must be",
    ),
    (
        "ban by a non-moderator",
        lambda s: lambda db: moderation.ban(db, s["broke"], s["informers"][1], 1, "x"),
        "moderator",
    ),
]


@pytest.mark.parametrize(("name", "make", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_changes_nothing(
    db: Database, scene: dict[str, Any], name: str, make: Callable[..., Any], message: str
) -> None:
    call = make(scene)
    before = snapshot(db)
    with pytest.raises(NotebazaarError) as info:
        call(db)
    assert message.format(**scene) in str(info.value)
    assert snapshot(db) == before
    assert ledger.check(db).ok


def test_too_many_open_offers_per_informer(db: Database, scene: dict[str, Any]) -> None:
    informer = scene["informers"][1]
    for n in range(2):
        _submit(scene, informer=informer, text=f"note {n}")(db)
    before = snapshot(db)
    with pytest.raises(NotebazaarError, match=r"already has 2 open offers in market \d+; the limit is 2"):
        _submit(scene, informer=informer, text="one too many")(db)
    assert snapshot(db) == before
    # Withdrawing one frees a place.
    first = db.execute("SELECT MIN(id) FROM offers WHERE informer_id = ?", [informer]).fetchone()[0]
    market.withdraw_offer(db, first, informer)
    _submit(scene, informer=informer, text="now it fits")(db)


@pytest.mark.usefixtures("restore_logging")
def test_cli_rejects_invalid_utf8_file_and_changes_nothing(tmp_path: Path) -> None:
    db_path = tmp_path / "state" / "nb.db"
    db = open_db(db_path)
    _, market_id, _ = make_market(db)
    before = snapshot(db)
    db.close()
    note = tmp_path / "note.txt"
    note.write_bytes(b"valid start \xc3\x28 invalid continuation")
    result = CliRunner().invoke(
        main,
        [
            "offer",
            "submit",
            str(market_id),
            "--informer",
            "core-informer0",
            "--classification",
            "misleading",
            "--text-file",
            str(note),
            "--bid",
            "3",
            "--price",
            "4",
            "--db",
            str(db_path),
        ],
    )
    assert result.exit_code == 1
    assert "Error: note text is not valid UTF-8 (byte 12)" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    db = open_db(db_path)
    assert snapshot(db) == before
    db.close()


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bid", "-3", "--price", "4"], "bid must be at least 0, not -3"),
        (["--bid", "3", "--price", "99999999999"], "price must be at most 1000000000"),
        (["--bid", "nan", "--price", "4"], "'nan' is not a valid integer"),
        (["--bid", "3000", "--price", "4"], "the bid is 3000 credits but the wallet holds 1000"),
    ],
)
def test_cli_rejects_bad_amounts_and_changes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    db_path = tmp_path / "nb.db"
    db = open_db(db_path)
    _, market_id, _ = make_market(db)
    before = snapshot(db)
    db.close()
    result = CliRunner().invoke(
        main,
        [
            "offer",
            "submit",
            str(market_id),
            "--informer",
            "core-informer0",
            "--classification",
            "misleading",
            "--text",
            "fine",
            *args,
            "--db",
            str(db_path),
        ],
    )
    assert result.exit_code in (1, 2)
    assert message in result.output
    db = open_db(db_path)
    assert snapshot(db) == before
    db.close()
