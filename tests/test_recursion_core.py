"""Recursive sub-markets in the core: the pause and resume, caps, budget, the ledger, and what
happens to sub-notes when the offer they are about is bought or not."""

from __future__ import annotations

import contextlib
import math
import random

import pytest
from sqlite_utils import Database

from notebazaar.pipeline import ledger, market, records, rules
from notebazaar.pipeline.config import RecursionSettings
from notebazaar.pipeline.errors import NotebazaarError
from notebazaar.pipeline.judge import TrackRecord
from notebazaar.pipeline.settlement import close_due, close_market, due_markets
from tests.test_core_helpers import ScriptedJudge, make_market

ON = RecursionSettings(enabled=True, uncertain_band=0.5, max_depth=1, max_breadth=2, budget_share=0.3)
# With b = 100 and a prior of 0.5: UNSURE (0.7) is worth 8.2 at face value and 2.2 if trusted half
# as much, so at price 8 it is uncertain; SURE (0.95) is worth 53 and never uncertain.
SCRIPT = {"UNSURE": 0.7, "SURE": 0.95, "DEBUNK": 0.9, "VOUCH": 0.1}


def _offer(db: Database, market_id: int, informer: int, text: str, *, bid: int = 5, price: int = 8) -> int:
    return market.submit_offer(
        db,
        market_id,
        informer,
        classification="misleading",
        text=text,
        sources=["https://example.org/src"],
        bid=bid,
        price=price,
        teaser=f"teaser of {text.split()[0].lower()}",
    ).offer_id


def _status(db: Database, offer_id: int) -> tuple[str, str | None, bool]:
    row = db.execute("SELECT status, outcome, ciphertext IS NOT NULL FROM offers WHERE id = ?", [offer_id])
    status, outcome, sealed = row.fetchone()
    key = db.execute("SELECT 1 FROM offer_keys WHERE offer_id = ?", [offer_id]).fetchone() is not None
    assert bool(sealed) == key
    return status, outcome, key


def _wallet(db: Database, informer: int) -> int:
    return ledger.balance(db, ledger.wallet(informer))


def test_rules_distrust_and_discount() -> None:
    # Nothing learned against the offer (or sub-notes that vouch for it): no distrust.
    assert rules.distrust(0.5, 0.5) == 0.0 and rules.distrust(0.2, 0.1) == 0.0
    # More likely unreliable than not: the offer is worth nothing.
    assert rules.distrust(0.2, 0.5) == 1.0 and rules.distrust(0.2, 0.9) == 1.0
    assert rules.distrust(0.5, 0.51) == 1.0
    # In between, the note's log-odds weight follows its reliability: logit(0.6) / logit(0.8).
    assert rules.distrust(0.2, 0.4) == pytest.approx(1 - math.log(1.5) / math.log(4))
    assert rules.discounted(0.5, 0.7, 0.0) == pytest.approx(0.7)
    assert rules.discounted(0.5, 0.7, 1.0) == pytest.approx(0.5)
    # Half the log-odds move: logit(p) = logit(0.7) / 2.
    assert rules.discounted(0.5, 0.7, 0.5) == pytest.approx(1 / (1 + math.sqrt(3 / 7)))
    assert rules.discounted(0.2, 0.01, 0.5) == pytest.approx(1 / (1 + math.sqrt(4 * 99)))
    kw = {"p_before": 0.5, "price_of_information": 100, "remaining_budget": 200, "band": 0.5}
    assert rules.is_uncertain(p_after=0.7, price=8, **kw)
    assert not rules.is_uncertain(p_after=0.95, price=8, **kw)  # bought even if trusted half
    assert not rules.is_uncertain(p_after=0.55, price=8, **kw)  # rejected anyway
    assert rules.sub_budget(200, 8, 0.3, 4) == 60
    assert rules.sub_budget(20, 18, 0.3, 1) == 2  # never so much that the price cannot be paid
    assert rules.sub_budget(10, 8, 0.3, 4) == 0


def test_debunked_offer_is_not_bought_and_its_sub_notes_are_paid_then_shredded(db: Database) -> None:
    _, market_id, informers = make_market(db, budget=200, informers=4)
    parent = _offer(db, market_id, informers[0], "UNSURE the broadcast was faked")
    judge = ScriptedJudge(SCRIPT)
    first = close_market(db, market_id, judge, force=True, recursion_settings=ON)
    assert len(first.waiting_on) == 1 and first.inspections == []
    sub_id = first.waiting_on[0]
    sub = market.get_market(db, sub_id)
    assert sub["parent_offer_id"] == parent and sub["depth"] == 1 and sub["budget"] == 60
    assert market.get_market(db, market_id)["status"] == "closing"
    assert _status(db, parent)[0] == "won"
    assert due_markets(db, now=sub["opened_at"]) == []  # the parent waits; the sub-market is not due

    before = _wallet(db, informers[1])
    sub_offer = _offer(db, sub_id, informers[1], "DEBUNK that study was retracted", bid=3, price=10)
    again = close_market(db, market_id, judge, force=True, recursion_settings=ON)
    assert again.waiting_on == [sub_id]  # still open: closing the parent again only waits
    settled = close_market(db, sub_id, judge, force=True, recursion_settings=ON)
    assert [i.bought for i in settled.inspections] == [True]
    assert _status(db, sub_offer) == ("bought", "held", True)  # paid, still sealed
    assert _wallet(db, informers[1]) == before - 2 + 10  # charged the reserve, paid the price
    assert db["reveals"].count == 0

    done = close_market(db, market_id, judge, force=True, recursion_settings=ON)
    assert not done.waiting_on and [i.bought for i in done.inspections] == [False]
    assert done.inspections[0].p_after == pytest.approx(0.5)  # held unreliable (0.9 > 1/2): no weight
    assert _status(db, parent) == ("shredded", "worth_less_than_price", False)
    assert _status(db, sub_offer) == ("bought", "shredded_with_parent", False)
    assert db["reveals"].count == 0 and db["outbox"].count == 0
    assert market.get_market(db, market_id)["status"] == "settled"
    assert done.spent == 10  # the sub-market's purchase counts toward the parent's spend
    assert ledger.check(db).ok
    assert close_market(db, market_id, judge, force=True, recursion_settings=ON).already_settled


def test_a_discredited_offer_counts_against_its_informer_and_an_undecided_doubt_does_not(
    db: Database,
) -> None:
    community_id, market_id, informers = make_market(db, budget=200, informers=3)
    judge = ScriptedJudge(SCRIPT)
    caught = _offer(db, market_id, informers[0], "UNSURE the broadcast was faked")
    sub_id = close_market(db, market_id, judge, force=True, recursion_settings=ON).waiting_on[0]
    _offer(db, sub_id, informers[1], "DEBUNK that study was retracted", bid=3, price=10)
    close_market(db, sub_id, judge, force=True, recursion_settings=ON)
    close_market(db, market_id, judge, force=True, recursion_settings=ON)
    assert _status(db, caught)[0] == "shredded"
    # The sub-market ended at 0.9 >= 1/2: a wrong note for its informer (the post is not even
    # resolved: the judgement, not the resolution, decided it). The community's record, the prior
    # for every newcomer, holds ground truth only.
    assert records.track_record(db, informers[0]) == TrackRecord(0, 1, 1)
    assert records.community_track_record(db, community_id) == TrackRecord()
    assert records.track_record(db, informers[1]) == TrackRecord()  # a sub-note is not a note on a post

    # A sub-market that learned nothing against its offer (it ended at its prior) counts for
    # nothing, even when that prior doubt was already 1/2.
    _, other_market, others = make_market(db, slug="other", budget=200, informers=1)
    doubted = _offer(db, other_market, others[0], "UNSURE the footage was staged")
    other_sub = close_market(db, other_market, judge, force=True, recursion_settings=ON).waiting_on[0]
    close_market(db, other_sub, judge, force=True, recursion_settings=ON)
    sub = market.get_market(db, other_sub)
    assert sub["belief"] == sub["prior"] == rules.DISCREDITED
    close_market(db, other_market, judge, force=True, recursion_settings=ON)
    assert _status(db, doubted)[0] == "bought"
    assert records.track_record(db, others[0]) == TrackRecord()


def test_vouched_offer_is_bought_and_its_sub_notes_are_revealed_with_it(db: Database) -> None:
    _, market_id, informers = make_market(db, budget=200, informers=3)
    parent = _offer(db, market_id, informers[0], "UNSURE the footage was staged")
    judge = ScriptedJudge(SCRIPT)
    sub_id = close_market(db, market_id, judge, force=True, recursion_settings=ON).waiting_on[0]
    sub_offer = _offer(db, sub_id, informers[1], "VOUCH the source is the original archive", price=6)
    close_market(db, sub_id, judge, force=True, recursion_settings=ON)
    done = close_market(db, market_id, judge, force=True, recursion_settings=ON)
    assert [i.bought for i in done.inspections] == [True]
    assert _status(db, parent)[0] == "bought"
    assert _status(db, sub_offer) == ("bought", "revealed_with_parent", False)
    reveals = {r["offer_id"]: r for r in db["reveals"].rows}
    assert set(reveals) == {parent, sub_offer}
    assert reveals[sub_offer]["market_id"] == sub_id and "VOUCH" in reveals[sub_offer]["text"]
    # only the top-level note goes to the platforms and into the judge's corpus
    assert [r[0] for r in db.execute("SELECT reveal_id FROM outbox")] == [reveals[parent]["id"]]
    assert done.spent == 8 + 6
    assert ledger.check(db).ok


def test_close_due_settles_sub_markets_then_resumes_their_parent(db: Database) -> None:
    _, market_id, informers = make_market(db, budget=200, informers=3)
    _offer(db, market_id, informers[0], "UNSURE first")
    judge = ScriptedJudge(SCRIPT)
    opened = market.get_market(db, market_id)
    later = opened["closes_at"] + 1
    assert close_due(db, judge, now=later, recursion_settings=ON) == [market_id]
    sub_id = close_market(db, market_id, judge, now=later, recursion_settings=ON).waiting_on[0]
    _offer(db, sub_id, informers[1], "DEBUNK retracted", price=10)
    assert due_markets(db, now=later + 1) == []
    much_later = later + ON.window_seconds + 1
    assert due_markets(db, now=much_later) == [sub_id]
    assert close_due(db, judge, now=much_later, recursion_settings=ON) == [sub_id, market_id]
    assert market.get_market(db, market_id)["status"] == "settled"
    assert ledger.check(db).ok


def test_later_offers_wait_for_the_sub_market(db: Database) -> None:
    _, market_id, informers = make_market(db, budget=200, informers=3)
    _offer(db, market_id, informers[0], "UNSURE first", bid=9)
    later = _offer(db, market_id, informers[1], "SURE second", bid=4)
    judge = ScriptedJudge(SCRIPT)
    close_market(db, market_id, judge, force=True, recursion_settings=ON)
    assert _status(db, later)[0] == "won" and [o for o, _ in judge.seen] == [later - 1]


def test_off_or_certain_opens_no_sub_market(db: Database) -> None:
    _, market_id, informers = make_market(db, budget=200, informers=3)
    _offer(db, market_id, informers[0], "UNSURE first")
    _offer(db, market_id, informers[1], "SURE second")
    report = close_market(db, market_id, ScriptedJudge(SCRIPT), force=True)  # recursion not given
    assert not report.waiting_on and db.execute("SELECT COUNT(*) FROM markets").fetchone()[0] == 1
    _, other, informers = make_market(db, slug="two", budget=200, informers=1)
    _offer(db, other, informers[0], "SURE only")
    assert not close_market(db, other, ScriptedJudge(SCRIPT), force=True, recursion_settings=ON).waiting_on


def _run_to_settled(
    db: Database, market_id: int, judge: ScriptedJudge, rng: random.Random, informers: list[int]
) -> None:
    """Close, and for every sub-market waited on, let informers offer into it and close it; repeat."""
    for _ in range(50):
        report = close_market(db, market_id, judge, force=True, recursion_settings=RANDOM)
        if not report.waiting_on:
            return
        for sub_id in report.waiting_on:
            for informer in rng.sample(informers, rng.randint(0, len(informers))):
                text = rng.choice(["DEBUNK no", "VOUCH yes", "UNSURE maybe", "SURE sure", "filler"])
                with contextlib.suppress(NotebazaarError):  # e.g. a wallet too thin for the bid
                    _offer(db, sub_id, informer, text, bid=rng.randint(0, 6), price=rng.randint(1, 30))
            _run_to_settled(db, sub_id, judge, rng, informers)
    raise AssertionError("settlement did not finish")


RANDOM = RecursionSettings(
    enabled=True, uncertain_band=0.9, max_depth=2, max_breadth=2, budget_share=0.5, min_budget=1
)


@pytest.mark.parametrize("seed", range(6))
def test_random_scenarios_keep_caps_budget_and_ledger(db: Database, seed: int) -> None:
    rng = random.Random(seed)
    _, market_id, informers = make_market(db, budget=rng.randint(20, 300), informers=5)
    texts = ["UNSURE a", "UNSURE b", "UNSURE c", "SURE d", "DEBUNK e", "filler f"]
    for informer in informers:
        _offer(db, market_id, informer, rng.choice(texts), bid=rng.randint(2, 9), price=rng.randint(1, 25))
    judge = ScriptedJudge(SCRIPT)
    budget = market.get_market(db, market_id)["budget"]
    _run_to_settled(db, market_id, judge, rng, informers)
    markets = list(db["markets"].rows)
    assert all(m["status"] == "settled" for m in markets)
    assert max(m["depth"] for m in markets) <= RANDOM.max_depth
    for m in markets:
        children = db.execute(
            "SELECT COUNT(*) FROM markets WHERE parent_offer_id IN"
            " (SELECT id FROM offers WHERE market_id = ?)",
            [m["id"]],
        ).fetchone()[0]
        assert children <= RANDOM.max_breadth
        assert (
            ledger.balance(db, ledger.budget(m["id"])) == 0
            and ledger.balance(db, ledger.escrow(m["id"])) == 0
        )
    purchases = db.execute("SELECT COALESCE(SUM(price), 0) FROM offers WHERE status = 'bought'").fetchone()[0]
    assert purchases <= budget
    # every sub-market's budget was at most its share of the parent's remaining budget then
    for sub in (m for m in markets if m["parent_offer_id"] is not None):
        parent_market = db.execute(
            "SELECT market_id FROM offers WHERE id = ?", [sub["parent_offer_id"]]
        ).fetchone()[0]
        parent_budget = market.get_market(db, parent_market)["budget"]
        assert sub["budget"] <= RANDOM.budget_share * parent_budget
    # no sub-note is left held: each was revealed or shredded with its parent
    assert db.execute("SELECT COUNT(*) FROM offers WHERE outcome = 'held'").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM offer_keys").fetchone()[0] == 0
    assert ledger.check(db).ok
