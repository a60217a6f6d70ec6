"""Markets end to end through the Python API: auction charges, purchases, budgets, settling once."""

from __future__ import annotations

import time

import pytest
from sqlite_utils import Database

from notebazaar.pipeline import ledger, market
from notebazaar.pipeline.db import write
from notebazaar.pipeline.errors import Conflict, MarketClosed, ValidationError
from notebazaar.pipeline.judge.simple import SimpleJudge
from notebazaar.pipeline.settlement import close_market, due_markets
from tests.test_core_helpers import ScriptedJudge, ledger_txns, make_market, snapshot, txn_entries


def _offer(db: Database, market_id: int, informer: int, text: str, bid: int, price: int, **kw: object) -> int:
    return market.submit_offer(
        db, market_id, informer, classification="misleading", text=text, bid=bid, price=price, **kw
    ).offer_id


@pytest.mark.parametrize(
    ("auction", "charges"),
    [("gsp", [7, 5, 0, 0]), ("first_price", [10, 7, 0, 0])],
)
def test_auction_charges_go_to_the_pool_and_the_rest_is_refunded(
    db: Database, auction: str, charges: list[int]
) -> None:
    com, market_id, informers = make_market(db, slots=2, reserve=1, auction=auction, informers=4)
    bids = [10, 7, 5, 1]
    t0 = time.time()
    offers = [
        _offer(db, market_id, i, f"note {n}", b, 1, now=t0 + n)
        for n, (i, b) in enumerate(zip(informers, bids, strict=True))
    ]
    assert ledger.balance(db, ledger.escrow(market_id)) == sum(bids)
    assert ledger.balance(db, ledger.pool(com)) == 5_000  # rule 6: an open market holds nothing

    report = close_market(db, market_id, ScriptedJudge(), force=True)  # the judge learns nothing: no buys

    rows = {o["id"]: o for o in db["offers"].rows_where("market_id = ?", [market_id])}
    assert [rows[o]["charge"] for o in offers] == charges
    assert [rows[o]["rank"] for o in offers] == [1, 2, 3, 4]
    assert [rows[o]["status"] for o in offers] == ["shredded"] * 4
    assert [rows[o]["outcome"] for o in offers] == ["worth_less_than_price"] * 2 + ["not_inspected"] * 2
    for informer, charge in zip(informers, charges, strict=True):
        assert ledger.balance(db, ledger.wallet(informer)) == 1_000 - charge
    assert ledger.balance(db, ledger.escrow(market_id)) == 0
    assert ledger.balance(db, ledger.pool(com)) == 5_000 + sum(charges)  # budget came back unspent
    assert (report.spent, report.returned) == (0, 200)
    # One charge transaction per charged offer, one refund per offer with something to refund.
    for offer, bid, charge in zip(offers, bids, charges, strict=True):
        charged = ledger_txns(db, f"offer:{offer}:charge")
        refunded = ledger_txns(db, f"offer:{offer}:refund")
        assert len(charged) == (1 if charge else 0)
        assert len(refunded) == (1 if bid - charge else 0)
        if charge:
            assert txn_entries(db, charged[0][0]) == {
                ledger.escrow(market_id): -charge,
                ledger.pool(com): charge,
            }
    assert ledger.check(db).ok


def test_ties_are_broken_by_submission_time(db: Database) -> None:
    _, market_id, informers = make_market(db, slots=1, reserve=1)
    t0 = time.time()
    later = _offer(db, market_id, informers[0], "later note", 5, 1, now=t0 + 2)
    earlier = _offer(db, market_id, informers[1], "earlier note", 5, 1, now=t0 + 1)
    judge = ScriptedJudge()
    close_market(db, market_id, judge, force=True)
    assert [offer for offer, _ in judge.seen] == [earlier]
    assert db["offers"].get(earlier)["rank"] == 1 and db["offers"].get(later)["rank"] == 2
    assert db["offers"].get(earlier)["charge"] == 5


def test_reserve_is_respected_in_a_market(db: Database) -> None:
    _, market_id, informers = make_market(db, slots=3, reserve=4)
    high = _offer(db, market_id, informers[0], "high", 9, 1)
    before = snapshot(db)
    with pytest.raises(ValidationError, match=r"below market .*'s reserve of 4 credits"):
        _offer(db, market_id, informers[1], "low", 3, 1)  # it could never be read: refused
    assert snapshot(db) == before
    judge = ScriptedJudge()
    close_market(db, market_id, judge, force=True)
    assert [offer for offer, _ in judge.seen] == [high]
    assert db["offers"].get(high)["charge"] == 4  # no next bid: the reserve
    assert ledger.balance(db, ledger.wallet(informers[1])) == 1_000


def test_a_bought_note_is_paid_its_price_once_and_revealed(db: Database) -> None:
    _, market_id, informers = make_market(db, b=100, budget=200)
    bought = _offer(db, market_id, informers[0], "STRONG evidence: it was filmed live", 5, 30)
    report = close_market(db, market_id, ScriptedJudge({"STRONG": 0.05}), force=True)
    assert [i.bought for i in report.inspections] == [True]
    purchase = ledger_txns(db, f"offer:{bought}:purchase")
    assert len(purchase) == 1
    assert txn_entries(db, purchase[0][0]) == {ledger.budget(market_id): -30, ledger.wallet(informers[0]): 30}
    assert len(ledger_txns(db, "%purchase")) == 1
    assert ledger.balance(db, ledger.wallet(informers[0])) == 1_000 - 2 + 30  # charged the reserve, paid 30
    reveal = db["reveals"].rows_where("offer_id = ?", [bought]).__next__()
    assert reveal["text"] == "STRONG evidence: it was filmed live" and reveal["price"] == 30
    assert db["offers"].get(bought)["status"] == "bought"
    assert db["offers"].get(bought)["ciphertext"] is None
    assert db.execute("SELECT COUNT(*) FROM offer_keys").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'").fetchone()[0] == 1
    assert (report.spent, report.returned) == (30, 170)
    assert ledger.balance(db, ledger.budget(market_id)) == 0
    assert ledger.check(db).ok


def test_after_a_buy_the_prior_moves_so_a_redundant_note_is_worth_less(db: Database) -> None:
    _, market_id, informers = make_market(db, b=100, budget=200)
    first = _offer(db, market_id, informers[0], "FAKE: the studio story is a hoax", 9, 20)
    echo = _offer(db, market_id, informers[1], "FAKE: same point again", 8, 1)
    judge = ScriptedJudge({"FAKE": 0.1})
    report = close_market(db, market_id, judge, force=True)
    assert judge.seen == [(first, 0.5), (echo, pytest.approx(0.1))]
    by_offer = {i.offer_id: i for i in report.inspections}
    assert by_offer[first].bought and by_offer[first].value > 20
    assert not by_offer[echo].bought and by_offer[echo].value == pytest.approx(0.0)
    assert db["markets"].get(market_id)["belief"] == pytest.approx(0.1)
    assert db["markets"].get(market_id)["prior"] == pytest.approx(0.5)


def test_budget_limits_purchases(db: Database) -> None:
    _, market_id, informers = make_market(db, b=100, budget=40)
    a = _offer(db, market_id, informers[0], "ALPHA", 9, 25)
    b = _offer(db, market_id, informers[1], "BETA", 8, 25)
    report = close_market(db, market_id, ScriptedJudge({"ALPHA": 0.9, "BETA": 0.05}), force=True)
    outcome = {i.offer_id: (i.bought, i.reason) for i in report.inspections}
    assert outcome == {a: (True, "bought"), b: (False, "over_budget")}
    assert (report.spent, report.returned) == (25, 15)
    assert ledger.balance(db, ledger.wallet(informers[1])) == 1_000 - 2  # only its attention charge


def test_a_market_budget_is_capped_by_the_pool(db: Database) -> None:
    com, market_id, informers = make_market(db, budget=500, pool=120)
    assert db["markets"].get(market_id)["budget"] == 500  # the most it may take
    assert ledger.balance(db, ledger.budget(market_id)) == 0  # rule 6: nothing taken yet
    assert market.market_view(db, market_id)["budget_left"] == 120  # what it would take now
    _offer(db, market_id, informers[0], "a note", 5, 10)
    close_market(db, market_id, ScriptedJudge(), force=True)
    # Taken at close, after the attention charge (the reserve, 2) went into the pool; capped by it.
    assert db["markets"].get(market_id)["budget"] == 122
    assert ledger_txns(db, f"market:{market_id}:budget")[0][2] == "market_budget"
    assert ledger.balance(db, ledger.pool(com)) == 122  # nothing bought: all of it returned


def test_close_twice_settles_once(db: Database) -> None:
    _, market_id, informers = make_market(db)
    _offer(db, market_id, informers[0], "STRONG", 5, 10)
    _offer(db, market_id, informers[1], "weak", 3, 10)
    first = close_market(db, market_id, ScriptedJudge({"STRONG": 0.05}), force=True)
    assert not first.already_settled
    before = snapshot(db)
    again = close_market(db, market_id, ScriptedJudge({"weak": 0.01}), force=True)
    assert again.already_settled and again.inspections == [] and again.spent == 0
    assert snapshot(db) == before
    assert len(ledger_txns(db, f"market:{market_id}:budget-return")) == 1


def test_closing_before_the_window_ends_needs_force(db: Database) -> None:
    _, market_id, informers = make_market(db)
    _offer(db, market_id, informers[0], "early", 5, 10)
    before = snapshot(db)
    with pytest.raises(MarketClosed, match=r"bidding window runs \d+s more; close it early with force"):
        close_market(db, market_id, ScriptedJudge())
    assert snapshot(db) == before
    assert due_markets(db) == []
    assert due_markets(db, now=time.time() + 3601) == [market_id]
    report = close_market(db, market_id, ScriptedJudge(), now=time.time() + 3601)
    assert db["markets"].get(market_id)["status"] == "settled" and report.returned == 200


def test_replace_offer_refunds_the_old_bid_and_escrows_the_new(db: Database) -> None:
    _, market_id, informers = make_market(db)
    old = _offer(db, market_id, informers[0], "draft", 5, 10)
    receipt = market.replace_offer(
        db, old, informers[0], classification="misleading", text="final", bid=7, price=12
    )
    assert db["offers"].get(old)["status"] == "replaced"
    assert db["offers"].get(receipt.offer_id)["status"] == "sealed"
    assert ledger.balance(db, ledger.wallet(informers[0])) == 1_000 - 7
    assert ledger.balance(db, ledger.escrow(market_id)) == 7
    with pytest.raises(Conflict, match="is replaced"):
        market.withdraw_offer(db, old, informers[0])


def test_simple_judge_market_conserves_credits(db: Database) -> None:
    _, market_id, informers = make_market(db)
    _offer(db, market_id, informers[0], "The moon landing was filmed live and broadcast worldwide", 6, 10)
    _offer(db, market_id, informers[1], "Penguins swim", 5, 10)
    close_market(db, market_id, SimpleJudge(), force=True)
    report = ledger.check(db)
    assert report.ok and report.minted == report.circulating == 5_000 + 3 * 1_000


def test_a_high_bidding_stranger_is_read_after_a_proven_informer(db: Database) -> None:
    # A fresh account bids the most to be read first and point the reader the wrong way; the judge
    # reads the informer with a record of right notes first (rule 7), so the stranger's note is
    # weighed against what the reader already believes. Its bid still bought it the attention.
    _, market_id, (stranger, proven, _) = make_market(db, slots=2)
    with write(db):
        db.execute(
            "INSERT INTO informer_records (informer_id, notes_right, notes_wrong, discredited)"
            " VALUES (?, 12, 1, 0)",
            [proven],
        )
    first = market.submit_offer(
        db, market_id, stranger, classification="not_misleading", text="a", bid=20, price=1
    )
    second = market.submit_offer(db, market_id, proven, classification="misleading", text="b", bid=5, price=1)
    judge = ScriptedJudge()
    close_market(db, market_id, judge, force=True)
    assert [offer_id for offer_id, _ in judge.seen] == [second.offer_id, first.offer_id]
    ranks = dict(db.execute("SELECT id, rank FROM offers WHERE market_id = ?", [market_id]).fetchall())
    assert ranks[first.offer_id] == 1 and ranks[second.offer_id] == 2  # the auction's order is unchanged
