"""The market's rules as pure functions: the attention auction, the purchase rule, the reading
order and what stays shown."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notebazaar.pipeline import rules
from notebazaar.pipeline.judge import TrackRecord
from notebazaar.pipeline.rules import Bid, Slot


def _bids(*amounts: int) -> list[Bid]:
    return [Bid(offer_id=i + 1, bid=a, submitted_at=float(i)) for i, a in enumerate(amounts)]


def test_gsp_hand_computed() -> None:
    # k=2, reserve 2: offer 1 pays the next bid down (7), offer 2 pays 5, offer 3 is ranked but not
    # inspected, offer 4 is under the reserve.
    slots = rules.run_auction(_bids(10, 7, 5, 1), slots=2, reserve=2, kind="gsp")
    assert slots == [Slot(1, 1, True, 7), Slot(2, 2, True, 5), Slot(3, 3, False, 0), Slot(4, 4, False, 0)]


def test_first_price_hand_computed() -> None:
    slots = rules.run_auction(_bids(10, 7, 5, 1), slots=2, reserve=2, kind="first_price")
    assert slots == [Slot(1, 1, True, 10), Slot(2, 2, True, 7), Slot(3, 3, False, 0), Slot(4, 4, False, 0)]


def test_gsp_pays_the_reserve_when_the_next_bid_is_lower_or_missing() -> None:
    assert rules.run_auction(_bids(10, 1), slots=3, reserve=4, kind="gsp") == [
        Slot(1, 1, True, 4),
        Slot(2, 2, False, 0),
    ]
    assert rules.run_auction(_bids(9), slots=1, reserve=3, kind="gsp") == [Slot(1, 1, True, 3)]


def test_reserve_keeps_low_bids_out_even_with_free_slots() -> None:
    slots = rules.run_auction(_bids(2, 1, 0), slots=5, reserve=2, kind="first_price")
    assert [s.inspected for s in slots] == [True, False, False]
    assert [s.charge for s in slots] == [2, 0, 0]


def test_ties_go_to_the_earlier_submission() -> None:
    bids = [Bid(1, 5, 20.0), Bid(2, 5, 10.0), Bid(3, 5, 30.0)]
    slots = rules.run_auction(bids, slots=1, reserve=1, kind="gsp")
    assert [(s.offer_id, s.rank, s.inspected) for s in slots] == [(2, 1, True), (1, 2, False), (3, 3, False)]
    assert slots[0].charge == 5  # the next bid down is an equal bid


def test_no_bids_no_slots() -> None:
    assert rules.run_auction([], slots=3, reserve=0, kind="gsp") == []


bid_lists = st.lists(st.tuples(st.integers(0, 1_000), st.floats(0, 1e6, allow_nan=False)), max_size=12).map(
    lambda xs: [Bid(i + 1, b, t) for i, (b, t) in enumerate(xs)]
)


@settings(max_examples=150, deadline=None)
@given(bids=bid_lists, k=st.integers(1, 6), reserve=st.integers(0, 50))
def test_auction_properties(bids: list[Bid], k: int, reserve: int) -> None:
    gsp = rules.run_auction(bids, slots=k, reserve=reserve, kind="gsp")
    first = rules.run_auction(bids, slots=k, reserve=reserve, kind="first_price")
    by_id = {b.offer_id: b for b in bids}
    assert sorted(s.rank for s in gsp) == list(range(1, len(bids) + 1))
    ranked = sorted(bids, key=lambda b: (-b.bid, b.submitted_at, b.offer_id))
    assert [s.offer_id for s in gsp] == [b.offer_id for b in ranked]
    expected = {b.offer_id for b in [b for b in ranked if b.bid >= reserve][:k]}
    for g, f in zip(gsp, first, strict=True):
        bid = by_id[g.offer_id].bid
        assert g.inspected == f.inspected == (g.offer_id in expected)
        assert 0 <= g.charge <= bid  # GSP never charges more than the bid
        assert g.charge <= f.charge
        if g.inspected:
            assert g.charge >= reserve and f.charge == bid
        else:
            assert g.charge == f.charge == 0
    assert sum(s.inspected for s in gsp) <= k


def test_kl_and_value() -> None:
    assert rules.kl_bernoulli(0.3, 0.3) == 0.0
    assert rules.kl_bernoulli(0.9, 0.5) == pytest.approx(0.9 * math.log(1.8) + 0.1 * math.log(0.2))
    assert rules.information_value(0.9, 0.5, 100) == pytest.approx(100 * rules.kl_bernoulli(0.9, 0.5))
    # Clamping: certainty is not allowed, so KL stays finite.
    assert rules.kl_bernoulli(1.0, 0.0) == rules.kl_bernoulli(0.99, 0.01)
    with pytest.raises(ValueError, match="NaN"):
        rules.clamp(float("nan"))


def test_decide_buys_iff_value_covers_price_and_budget_allows() -> None:
    value = rules.information_value(0.9, 0.5, 100)  # about 36.8 credits
    assert rules.decide(
        p_before=0.5, p_after=0.9, price=36, price_of_information=100, remaining_budget=36
    ).buy
    worth_less = rules.decide(
        p_before=0.5, p_after=0.9, price=37, price_of_information=100, remaining_budget=99
    )
    assert (worth_less.buy, worth_less.reason) == (False, "worth_less_than_price")
    assert worth_less.value == pytest.approx(value)
    over = rules.decide(p_before=0.5, p_after=0.9, price=36, price_of_information=100, remaining_budget=35)
    assert (over.buy, over.reason) == (False, "over_budget")


@settings(max_examples=150, deadline=None)
@given(
    p0=st.floats(0, 1),
    p1=st.floats(0, 1),
    price=st.integers(0, 500),
    b=st.integers(0, 1_000),
    budget=st.integers(0, 500),
)
def test_decide_properties(p0: float, p1: float, price: int, b: int, budget: int) -> None:
    d = rules.decide(p_before=p0, p_after=p1, price=price, price_of_information=b, remaining_budget=budget)
    assert d.kl >= 0 and d.value >= 0
    assert d.buy == (d.value >= price and price <= budget)
    if d.buy:
        assert price <= budget and price <= d.value


@settings(max_examples=100, deadline=None)
@given(p=st.floats(0.01, 0.99), wobble=st.floats(-1e-9, 1e-9))
def test_nearly_equal_beliefs_never_give_negative_kl(p: float, wobble: float) -> None:
    # Before the fix, rounding gave KL of about -1e-19 here, so a free note that moves nothing
    # was "worth less than its price" of zero.
    assert rules.kl_bernoulli(p * (1 + wobble), p) >= 0.0
    assert rules.decide(
        p_before=p, p_after=p * (1 + wobble), price=0, price_of_information=100, remaining_budget=0
    ).buy


def test_the_judge_reads_the_best_proven_winners_first() -> None:
    track = TrackRecord
    won = [
        {"id": 1, "rank": 1},  # a stranger who bid the most
        {"id": 2, "rank": 2},  # right 40 times, wrong twice
        {"id": 3, "rank": 3},  # another stranger
        {"id": 4, "rank": 4},  # wrong more often than right
        {"id": 5, "rank": 5},  # right 3, wrong 0
    ]
    tracks = {1: track(), 2: track(40, 2), 3: track(), 4: track(1, 5), 5: track(3, 0)}
    assert [o["id"] for o in rules.inspection_order(won, tracks)] == [2, 5, 1, 3, 4]
    # an offer a sub-market is about keeps its turn, whoever else is better proven
    assert [o["id"] for o in rules.inspection_order(won, tracks, first={4})] == [4, 2, 5, 1, 3]
    # strangers only: the auction's order
    assert [o["id"] for o in rules.inspection_order(won, dict.fromkeys(tracks, track()))] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("right", "wrong", "at_wrong", "hidden"),
    [
        (0, 2, 2, True),  # a liar's record
        (1, 3, 2, True),
        (0, 1, 2, False),  # one unlucky note is not a record
        (2, 2, 2, False),  # as many wrong as right is not more wrong than right
        (5, 3, 2, False),
        (0, 1, 1, True),
        (0, 9, 0, False),  # 0: the rule is off
    ],
)
def test_an_undecided_note_is_hidden_only_for_a_record_more_wrong_than_right(
    right: int, wrong: int, at_wrong: int, hidden: bool
) -> None:
    assert rules.hides_undecided(right, wrong, at_wrong) is hidden
