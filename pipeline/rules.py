"""The market's rules, in one place: who gets the judge's attention, what they pay, what is bought.

Everything here is a pure function of numbers, so the rules can be read, tested and reasoned about
apart from storage and surfaces.

1. Attention auction. Offers are ranked by bid, highest first; ties go to the earlier submission.
   The top ``k`` whose bid is at least the reserve (the judge's cost of reading a note) are
   inspected. Under the generalised second price (GSP) each inspected offer pays the next bid down
   in the ranking, or the reserve if that is higher (or if there is no next bid); under first price
   it pays its own bid. A charge never exceeds the bid. Charged bids go to the pool; the rest of
   every bid is refunded.
2. Purchase. The judge reports a reader's P(post is misleading) before and after the note. The note
   is worth ``b * KL(p_after || p_before)`` credits, where ``b`` is the market's price of
   information in credits per nat (as the LMSR subsidy parameter: the market's loss is bounded by
   ``b ln n``). Buy iff that value is at least the price and the remaining budget covers the price.
   After a purchase, p_after is the prior for the next offer, so a redundant note is worth little.

6. The pool (rules 3-5, about sub-markets, are further down). Free actions never lock or move a
   pool's credits: signing up, asking for notes on a post and opening its market cost nothing and
   hold nothing. A market on a post takes its budget from the pool only when bidding closes *and*
   its auction has an offer to inspect, i.e. an informer paid at least the reserve for the judge's
   attention; it takes ``budget_per_market``, or what the pool holds if less
   (:func:`reserved_budget`), and settlement returns what it did not spend. So no number of
   accounts can empty or freeze a pool by asking for notes: a market holds pool credits only while
   it settles, and only because someone paid to be read. (Before this rule each market took its
   budget when it opened: six posts by one reader locked a pool of 726 credits for an hour.)
   Sign-up credits are a setting, ``[web] signup_credits``, 0 by default: accounts are free, so
   they must not bring money; the demo (``serve --demo``) gives its own ``demo_signup_credits``.
   An offer's bid must be at least the reserve (a lower one could never be read) and is refused.
7. Reading order (:func:`inspection_order`). The auction decides which offers are read and what
   their attention costs; the judge reads the winners best-proven first (by the share of their
   notes that proved right), ties by rank. A note read later is weighed against what the reader
   already believes, so a stranger who bids high to be read first meets the trusted informers'
   notes before it, not after.
8. What stays shown (:func:`hides_undecided`). A bought note is shown on its author's word until
   readers decide: the bridging scorer hides it when its status becomes *not helpful*, and keeps it
   when it becomes *helpful*. While it is undecided (*needs more ratings*) on a post no moderator
   resolved (a resolution decides the note itself), it is hidden once its author's track record
   (:func:`notebazaar.pipeline.records.track_record`: every verdict, discredits included, in any
   community) shows at least ``[bridging] hide_undecided_author_wrong`` wrong and more wrong than
   right: the word it was shown on is then worth less than nothing. Why: readers
   split along viewpoint on a slanted note, and Community Notes' not-helpful rule leaves such a
   note undecided on purpose, so a liar's slanted notes stayed up for good while its plain ones
   were hidden (9 of 23 misleading notes bought on the 20%-coordinated simulation). A note already
   *helpful* stays shown whoever wrote it, and an author with no wrong note never loses one.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

AuctionKind = Literal["gsp", "first_price"]
P_MIN, P_MAX = 0.01, 0.99


@dataclass(frozen=True)
class Bid:
    offer_id: int
    bid: int
    submitted_at: float


@dataclass(frozen=True)
class Slot:
    """The auction's outcome for one offer: its rank, whether it is inspected, and its charge."""

    offer_id: int
    rank: int
    inspected: bool
    charge: int


def run_auction(bids: Sequence[Bid], *, slots: int, reserve: int, kind: AuctionKind) -> list[Slot]:
    """Rank every offer and charge the inspected ones. Offers below the reserve pay nothing."""
    ranked = sorted(bids, key=lambda b: (-b.bid, b.submitted_at, b.offer_id))
    eligible = [b for b in ranked if b.bid >= reserve]
    inspected = {b.offer_id for b in eligible[:slots]}
    out = []
    for rank, b in enumerate(ranked, start=1):
        charge = 0
        if b.offer_id in inspected:
            if kind == "first_price":
                charge = b.bid
            else:
                next_bid = ranked[rank].bid if rank < len(ranked) else 0
                charge = min(b.bid, max(next_bid, reserve))
        out.append(Slot(b.offer_id, rank, b.offer_id in inspected, charge))
    return out


def clamp(p: float) -> float:
    """Keep a probability inside [0.01, 0.99]: no judge may claim certainty."""
    if math.isnan(p):
        raise ValueError("probability is NaN")
    return min(P_MAX, max(P_MIN, p))


def kl_bernoulli(p_after: float, p_before: float) -> float:
    """KL(p_after || p_before) in nats, for a yes/no question (is the post misleading?)."""
    q, p = clamp(p_after), clamp(p_before)
    # KL is never negative; rounding can make nearly equal beliefs come out at -1e-19.
    return max(0.0, q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p)))


def information_value(p_after: float, p_before: float, price_of_information: int) -> float:
    """What a note that moves the reader from p_before to p_after is worth, in credits."""
    return price_of_information * kl_bernoulli(p_after, p_before)


@dataclass(frozen=True)
class Decision:
    buy: bool
    value: float
    kl: float
    reason: str


def decide(
    *, p_before: float, p_after: float, price: int, price_of_information: int, remaining_budget: int
) -> Decision:
    """Buy iff ``b * KL(p_after || p_before) >= price`` and the budget covers the price."""
    kl = kl_bernoulli(p_after, p_before)
    value = price_of_information * kl
    if value < price:
        return Decision(False, value, kl, "worth_less_than_price")
    if price > remaining_budget:
        return Decision(False, value, kl, "over_budget")
    return Decision(True, value, kl, "bought")


def reserved_budget(planned: int, pool: int, inspected: int) -> int:
    """Rule 6: what a market on a post takes from its pool when bidding closes, given the budget
    it may take (``planned``), what the pool holds, and how many offers its auction inspects."""
    if inspected <= 0:
        return 0
    return max(0, min(planned, pool))


# --- recursion: what a sub-market about an offer does to the decision on it ------------------------
#
# A note moves a reader in log-odds, by as much as the reader trusts its author: a note from a
# source that is right with probability r moves logit(p) by (at most) log(r / (1 - r)). A
# sub-market about an offer asks exactly "is this note unreliable?", starting from q0 (the judge's
# doubt about the offer before any sub-note) and ending at q.
#
# 3. Uncertainty. An inspected offer is *uncertain* when it would be bought at face value but not if
#    the judge trusted it ``band`` less (its log-odds move shrunk by the factor ``1 - band``): the
#    purchase then hinges on whether the note is reliable, which is what a sub-market can find out.
#    An offer that would be rejected anyway is never uncertain: learning it is unreliable changes
#    nothing.
# 4. Distrust. Only what the sub-market *learned against* the offer counts. If q <= q0 (nothing
#    bought, or sub-notes that vouch for it) the offer keeps its face value: distrust 0. If q >= 1/2
#    the judge now holds the note more likely unreliable than not, and a reader gains nothing from
#    it: distrust 1. In between, the note's weight is the log-odds of its reliability, updated:
#    distrust = 1 - log((1 - q) / q) / log((1 - q0) / q0).
#    An offer at distrust 1 is *discredited*: it counts as a wrong note in its informer's track
#    record (notebazaar.pipeline.records.track_record), since the shredded note can never be checked against
#    the post's resolution, and forgetting the judgement would leave a caught liar fully trusted.
# 5. Discount. The offer's log-odds move is scaled by ``1 - distrust``:
#    logit(effective p_after) = logit(p_before) + (1 - distrust) * (logit(p_after) - logit(p_before));
#    rule 2 then decides on it.


def logit(p: float) -> float:
    """Log-odds of ``p``, clamped first (:func:`clamp`), so it is always finite."""
    p = clamp(p)
    return math.log(p / (1 - p))


def discounted(p_before: float, p_after: float, distrust: float) -> float:
    """The belief after a note whose log-odds move the reader trusts only ``1 - distrust`` of."""
    distrust = min(1.0, max(0.0, distrust))
    before, after = logit(p_before), logit(p_after)
    return clamp(1 / (1 + math.exp(-(before + (1 - distrust) * (after - before)))))


DISCREDITED = 0.5  # a sub-market's final doubt at which its offer is held unreliable (distrust 1)


def distrust(q_prior: float, q_final: float) -> float:
    """How much of an offer's weight its sub-market took away: 0 when it learned nothing against
    the offer (``q_final <= q_prior``), 1 once the offer is more likely unreliable than not."""
    q0, q = clamp(q_prior), clamp(q_final)
    if q <= q0:
        return 0.0
    if q >= DISCREDITED:
        return 1.0
    return 1 - logit(1 - q) / logit(1 - q0)  # both positive: q0 < q < 1/2


def is_uncertain(
    *,
    p_before: float,
    p_after: float,
    price: int,
    price_of_information: int,
    remaining_budget: int,
    band: float,
) -> bool:
    """Bought at face value, but not if trusted ``band`` less: the purchase hinges on reliability."""
    face = decide(
        p_before=p_before,
        p_after=p_after,
        price=price,
        price_of_information=price_of_information,
        remaining_budget=remaining_budget,
    )
    if not face.buy:
        return False
    doubted = decide(
        p_before=p_before,
        p_after=discounted(p_before, p_after, band),
        price=price,
        price_of_information=price_of_information,
        remaining_budget=remaining_budget,
    )
    return not doubted.buy


def sub_budget(remaining_budget: int, price: int, share: float, minimum: int) -> int:
    """A sub-market's budget: ``share`` of the parent's remaining budget, never so much that the
    parent could no longer pay the offer's price, and 0 (no sub-market) below ``minimum``."""
    budget = min(int(remaining_budget * share), remaining_budget - price)
    return budget if budget >= minimum else 0


def inspection_order(
    won: Sequence[dict[str, Any]], tracks: Mapping[int, Any], *, first: Collection[int] = ()
) -> list[dict[str, Any]]:
    """The order the judge reads a market's winners in: the best-proven informers first.

    The auction decides *which* offers are read and what their attention costs; among the winners
    the judge reads the informers whose notes have proved right most often first (the share right,
    Laplace-smoothed: (right + 1) / (right + wrong + 2), so a stranger sits at one half), ties by
    auction rank. A note read later is weighed against what the reader already believes, so a
    stranger who bids high to be read first (a fresh account with a wrong classification) now meets
    the trusted informers' notes before it, not after. ``first``: offers already waiting on a
    sub-market keep their turn (the sub-market was opened at that point of the reading)."""

    def key(offer: dict[str, Any]) -> tuple[int, float, int]:
        proven = tracks[offer["id"]].reliability  # TrackRecord.reliability: the smoothed share right
        return (0 if offer["id"] in first else 1, -proven, int(offer["rank"]))

    return sorted(won, key=key)


def hides_undecided(right: int, wrong: int, at_wrong: int) -> bool:
    """Rule 8: whether an undecided note is hidden for its author's record (``right`` and ``wrong``
    notes, :func:`notebazaar.pipeline.records.track_record`). ``at_wrong`` 0 never hides one."""
    return at_wrong > 0 and wrong >= at_wrong and wrong > right
