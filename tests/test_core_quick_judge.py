"""A quick judge (one that inspects in memory, as the embedded judge does) has a market's
inspections and its finish recorded in one transaction: the same decisions as one transaction per
inspection, at one commit instead of one per offer."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from notebazaar.pipeline import ledger, market
from notebazaar.pipeline.settlement import close_market
from tests.test_core_helpers import ScriptedJudge, make_market

SCRIPT = {"ALPHA": 0.9, "BETA": 0.05}
NOTES = [("ALPHA: the telemetry is public", 9, 20), ("BETA: debunked", 8, 20), ("nothing new", 7, 5)]


def _close(db: Database, *, quick: bool) -> tuple[list[tuple[Any, ...]], int, list[Any]]:
    _, market_id, informers = make_market(db, slug=f"q{int(quick)}", slots=3, informers=3)
    for informer, (text, bid, price) in zip(informers, NOTES, strict=True):
        market.submit_offer(
            db, market_id, informer, classification="misleading", text=text, bid=bid, price=price
        )
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    try:
        report = close_market(db, market_id, ScriptedJudge(dict(SCRIPT), quick=quick), force=True)
    finally:
        db.conn.set_trace_callback(None)
    assert db["markets"].get(market_id)["status"] == "settled"
    decisions = [(i.rank, i.bought, i.reason, i.p_before, i.p_after) for i in report.inspections]
    money = [ledger.balance(db, ledger.wallet(i)) for i in informers] + [
        ledger.balance(db, ledger.pool(int(db["markets"].get(market_id)["community_id"])))
    ]
    reveals = db.execute("SELECT text, price FROM reveals WHERE market_id = ?", [market_id]).fetchall()
    return decisions, sum(s.strip().upper() == "COMMIT" for s in statements), [money, reveals]


def test_a_quick_judge_decides_the_same_in_one_commit(db: Database) -> None:
    slow, slow_commits, slow_outcome = _close(db, quick=False)
    fast, fast_commits, fast_outcome = _close(db, quick=True)
    assert [d[2] for d in slow] == ["bought", "bought", "worth_less_than_price"]
    assert fast == slow
    assert fast_outcome == slow_outcome  # the same wallets, pool and reveals
    # One per inspection, the prior's and the finish's, after the auction's; against the auction's
    # and one for the rest.
    assert (slow_commits, fast_commits) == (len(NOTES) + 3, 2)
    assert ledger.check(db).ok
