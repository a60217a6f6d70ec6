"""An offer whose sealed note cannot be opened (a damaged ciphertext, nonce or key) no longer freezes
its market: it is shredded with the reason code ``undecryptable``, what is due is refunded, and the
other winners are inspected as usual."""

from __future__ import annotations

import pytest
from sqlite_utils import Database

from notebazaar.pipeline import ledger, market, sealing
from notebazaar.pipeline.db import write
from notebazaar.pipeline.settlement import _run_auction, close_due, close_market
from tests.test_core_helpers import ScriptedJudge, make_market

JUDGE = {"GOOD": 0.05}


def _offer(db: Database, market_id: int, informer: int, text: str, bid: int, price: int = 10) -> int:
    return market.submit_offer(
        db, market_id, informer, classification="misleading", text=text, bid=bid, price=price
    ).offer_id


def _damage(db: Database, offer_id: int, column: str) -> None:
    """Flip one byte of the offer's ciphertext or nonce, or of its key."""
    table, key = ("offer_keys", "offer_id") if column == "key" else ("offers", "id")
    blob = bytearray(db.execute(f"SELECT {column} FROM {table} WHERE {key} = ?", [offer_id]).fetchone()[0])
    blob[0] ^= 0xFF
    with write(db):
        db.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", [bytes(blob), offer_id])


@pytest.mark.parametrize("column", ["ciphertext", "nonce", "key"])
def test_a_damaged_winner_is_shredded_refunded_and_the_market_goes_on(db: Database, column: str) -> None:
    _, market_id, informers = make_market(db, slots=2, reserve=2, budget=200)
    broken = _offer(db, market_id, informers[0], "GOOD but damaged", 9)
    good = _offer(db, market_id, informers[1], "GOOD evidence", 5)
    third = _offer(db, market_id, informers[2], "GOOD as well", 3)
    _damage(db, broken, column)
    with pytest.raises(sealing.Unreadable):  # what used to be raised on every retry of the close
        row = db.execute(
            "SELECT k.key, o.nonce, o.ciphertext FROM offers o JOIN offer_keys k"
            " ON k.offer_id = o.id WHERE o.id = ?",
            [broken],
        ).fetchone()
        sealing.unseal(*row)

    judge = ScriptedJudge(dict(JUDGE))
    report = close_market(db, market_id, judge, force=True)

    assert db["markets"].get(market_id)["status"] == "settled"
    rows = {o["id"]: o for o in db["offers"].rows_where("market_id = ?", [market_id])}
    assert (rows[broken]["status"], rows[broken]["outcome"]) == ("shredded", "undecryptable")
    assert rows[broken]["ciphertext"] is None and db["offer_keys"].count_where("offer_id = ?", [broken]) == 0
    # It left the auction: the next two took the slots, and its bid did not set their charges.
    assert [offer for offer, _ in judge.seen] == [good, third]
    assert (rows[good]["charge"], rows[third]["charge"]) == (3, 2)
    assert ledger.balance(db, ledger.wallet(informers[0])) == 1_000  # its whole bid came back
    assert [i.reason for i in report.inspections] == ["bought", "worth_less_than_price"]
    assert ledger.check(db).ok


def test_a_winner_damaged_after_the_auction_is_refunded_its_charge(db: Database) -> None:
    _, market_id, informers = make_market(db, slots=2, reserve=2, budget=200)
    broken = _offer(db, market_id, informers[0], "GOOD but damaged later", 9)
    good = _offer(db, market_id, informers[1], "GOOD evidence", 5)
    _run_auction(db, market_id, now=0.0)  # a close that stopped here (killed, or an older version)
    charge = db["offers"].get(broken)["charge"]
    assert charge == 5 and db["offers"].get(broken)["status"] == "won"
    _damage(db, broken, "ciphertext")

    report = close_market(db, market_id, ScriptedJudge(dict(JUDGE)), force=True)

    assert db["markets"].get(market_id)["status"] == "settled"
    reasons = {i.offer_id: i.reason for i in report.inspections}
    assert reasons == {broken: "undecryptable", good: "bought"}
    assert db["offers"].get(broken)["outcome"] == "undecryptable"
    assert ledger.balance(db, ledger.wallet(informers[0])) == 1_000  # charged 5, refunded 5
    refunds = db.execute(
        "SELECT kind FROM ledger_transactions WHERE idempotency_key = ?", [f"offer:{broken}:charge-refund"]
    ).fetchall()
    assert refunds == [("refund_charge",)]
    assert ledger.check(db).ok


def test_the_worker_settles_the_other_markets_and_the_damaged_one(db: Database) -> None:
    _, first, informers = make_market(db, slots=1, reserve=2)
    broken = _offer(db, first, informers[0], "GOOD damaged", 9)
    _damage(db, broken, "ciphertext")
    with write(db):
        db.execute("UPDATE markets SET closes_at = 0")
    assert close_due(db, ScriptedJudge(dict(JUDGE))) == [first]
    assert close_due(db, ScriptedJudge(dict(JUDGE))) == []  # nothing left to retry for ever
    assert db["markets"].get(first)["status"] == "settled"
    assert ledger.check(db).ok
