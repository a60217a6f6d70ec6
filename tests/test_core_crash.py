"""A settlement killed half-way (SIGKILL, no clean-up) resumes on restart and ends exactly as an
uninterrupted one: nothing lost, nothing paid twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from notebazaar.pipeline import ledger, market
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.settlement import close_market
from tests.test_core_helpers import ScriptedJudge, ledger_txns, make_market, txn_entries

REPO = Path(__file__).resolve().parents[1]
SCRIPT = {"ALPHA": 0.9, "BETA": 0.05, "GAMMA": 0.6}
NOTES = [  # (marker text, bid, price): four inspected, one not
    ("ALPHA: filmed on the moon, the telemetry is public", 9, 20),
    ("BETA: the studio claim was debunked", 8, 20),
    ("GAMMA: nothing new", 7, 500),
    ("a note that moves nobody", 6, 5),
    ("a note nobody reads", 2, 5),
]

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from notebazaar.pipeline import ledger
    from notebazaar.pipeline.db import open_db
    from notebazaar.pipeline.settlement import close_market
    from tests.test_core_helpers import ScriptedJudge

    db_path, market_id, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    quick = mode.startswith("quick-")  # a quick judge: one transaction for every inspection
    mode = mode.removeprefix("quick-")
    script = {"ALPHA": 0.9, "BETA": 0.05, "GAMMA": 0.6}

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    class KillingJudge(ScriptedJudge):
        def inspect(self, post, context, note, p_before):
            if len(self.seen) == 1:  # the 2nd inspection: the 1st is already committed
                die()
            return super().inspect(post, context, note, p_before)

    real_transfer = ledger.transfer
    counts = {}

    def killing_transfer(db, key, moves, *, kind, **kw):
        txn = real_transfer(db, key, moves, kind=kind, **kw)
        counts[kind] = counts.get(kind, 0) + 1
        # Die inside the enclosing write transaction, after the ledger rows are written but before
        # the commit: the purchase (2nd), an attention charge (1st) or the budget return.
        if (mode, kind, counts[kind]) in {
            ("purchase", "purchase", 2),
            ("auction", "attention_charge", 1),
            ("finish", "budget_return", 1),
        }:
            die()
        return txn

    ledger.transfer = killing_transfer
    judge = KillingJudge(dict(script)) if mode == "judge" else ScriptedJudge(dict(script))
    judge.quick = quick
    db = open_db(db_path)
    report = close_market(db, market_id, judge, force=True)
    print("settled", report.already_settled, report.spent, report.returned)
    """
)


def _setup(db_path: Path) -> int:
    db = open_db(db_path)
    _, market_id, informers = make_market(db, slots=4, reserve=2, b=100, budget=200, informers=5)
    for informer, (text, bid, price) in zip(informers, NOTES, strict=True):
        market.submit_offer(
            db, market_id, informer, classification="misleading", text=text, bid=bid, price=price
        )
    db.close()
    return market_id


def _child(db_path: Path, market_id: int, mode: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(db_path), str(market_id), mode],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _outcome(db: Database, market_id: int) -> dict[str, Any]:
    """Everything a settlement decides, without ids of transactions or timestamps."""
    return {
        "market": db.execute(
            "SELECT status, prior, belief, budget FROM markets WHERE id = ?", [market_id]
        ).fetchall(),
        "offers": db.execute("SELECT id, status, rank, charge, outcome FROM offers ORDER BY id").fetchall(),
        "inspections": db.execute(
            "SELECT offer_id, p_before, p_after, bought, reason FROM inspections ORDER BY offer_id"
        ).fetchall(),
        "reveals": db.execute("SELECT offer_id, text, price FROM reveals ORDER BY offer_id").fetchall(),
        "outbox": db.execute("SELECT reveal_id, status FROM outbox ORDER BY id").fetchall(),
        "balances": ledger.balances(db),
        "ledger": db.execute(
            "SELECT idempotency_key, kind FROM ledger_transactions ORDER BY idempotency_key"
        ).fetchall(),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The outcome of the same market settled without a crash."""
    db_path = tmp_path_factory.mktemp("reference") / "nb.db"
    market_id = _setup(db_path)
    db = open_db(db_path)
    close_market(db, market_id, ScriptedJudge(dict(SCRIPT)), force=True)
    out = _outcome(db, market_id)
    db.close()
    # The scenario is worth crashing in: two purchases, a rejection after inspection, an offer
    # worth nothing, an offer never inspected.
    reasons = [row[4] for row in out["offers"]]
    assert reasons == ["bought", "bought", "worth_less_than_price", "worth_less_than_price", "not_inspected"]
    return out


def _assert_settled_once(db: Database, market_id: int) -> None:
    assert db["markets"].get(market_id)["status"] == "settled"
    report = ledger.check(db)
    assert report.ok, report.problems()
    for offer in db["offers"].rows_where("market_id = ?", [market_id]):
        oid = offer["id"]
        charged = ledger_txns(db, f"offer:{oid}:charge")
        refunded = ledger_txns(db, f"offer:{oid}:refund")
        paid = sum(-txn_entries(db, t[0])[ledger.escrow(market_id)] for t in charged + refunded)
        assert paid == offer["bid"], f"offer {oid}'s bid was not settled exactly once"
        assert len(charged) <= 1 and len(refunded) <= 1
        purchases = ledger_txns(db, f"offer:{oid}:purchase")
        if offer["status"] == "bought":
            assert len(purchases) == 1
            assert txn_entries(db, purchases[0][0])[ledger.wallet(offer["informer_id"])] == offer["price"]
            assert db.execute("SELECT COUNT(*) FROM reveals WHERE offer_id = ?", [oid]).fetchone()[0] == 1
        else:
            assert purchases == []
    assert len(ledger_txns(db, f"market:{market_id}:budget-return")) == 1
    assert ledger.balance(db, ledger.escrow(market_id)) == 0
    assert ledger.balance(db, ledger.budget(market_id)) == 0
    assert db.execute("SELECT COUNT(*) FROM offer_keys").fetchone()[0] == 0


@pytest.mark.parametrize(
    "mode", ["judge", "purchase", "auction", "finish", "quick-judge", "quick-purchase", "quick-finish"]
)
def test_killed_settlement_resumes_without_loss_or_double_payment(
    tmp_path: Path, reference: dict[str, Any], mode: str
) -> None:
    db_path = tmp_path / "nb.db"
    market_id = _setup(db_path)

    crashed = _child(db_path, market_id, mode)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert "settled" not in crashed.stdout

    db = open_db(db_path)
    assert ledger.check(db).ok  # the half-done transaction left no trace
    status = db["markets"].get(market_id)["status"]
    inspected = db.execute("SELECT COUNT(*) FROM inspections").fetchone()[0]
    purchases = len(ledger_txns(db, "%:purchase"))
    if mode.startswith("quick-"):  # the inspections and the finish are one step: none of it landed
        assert (status, inspected, purchases) == ("closing", 0, 0)
        assert db.execute("SELECT COUNT(*) FROM reveals").fetchone()[0] == 0
        assert ledger_txns(db, "%budget-return") == []
    elif mode == "auction":
        assert (status, inspected) == ("open", 0)
        assert ledger.balance(db, ledger.escrow(market_id)) == sum(n[1] for n in NOTES)
    elif mode == "judge":
        assert (status, inspected, purchases) == ("closing", 1, 1)
    elif mode == "purchase":
        assert (status, inspected, purchases) == ("closing", 1, 1)  # the 2nd purchase rolled back
        assert db.execute("SELECT COUNT(*) FROM reveals").fetchone()[0] == 1
    else:
        assert (status, inspected, purchases) == ("closing", 4, 2)
        assert ledger_txns(db, "%budget-return") == []
    db.close()

    resumed = _child(db_path, market_id, "resume")  # a fresh process picks it up
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("settled False")

    db = open_db(db_path)
    _assert_settled_once(db, market_id)
    assert _outcome(db, market_id) == reference
    again = close_market(db, market_id, ScriptedJudge(dict(SCRIPT)), force=True)
    assert again.already_settled
    assert _outcome(db, market_id) == reference
    db.close()
