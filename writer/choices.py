"""The writer's choices on one market, and the features its bandit sees for each.

An *arm* is one complete offer: which candidate note (a passage its source retrieved or a draft its
model wrote, by rank), its classification, a bid level and a price level. Levels are relative to
the market's own numbers, so one policy fits communities with different settings: a bid is the
market's reserve plus a step, a price is a share of the price of information ``b`` (what a note
that moves a reader by one nat is worth).

Features of an arm (the context comes from the post and the market, all public):

- the price level, alone and times the candidate's similarity to the post (a closer note moves a
  reader more, so it can ask more);
- the bid level, alone and times how crowded the market is (sealed offers per attention slot: a
  low bid in a crowded market is not inspected);
- the classification, alone, times the candidate's negation cue and times its similarity;
- the candidate's rank.

The prior mean (:func:`prior`) is the writer's starting policy: the best candidate, classified by
its negation cue, a middle bid and a middle price.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

CLASSIFICATIONS = ("misleading", "not_misleading")
BID_STEPS = (0, 3, 6, 10)  # credits above the reserve
PRICE_SHARES = (0.015, 0.04, 0.08, 0.14)  # of the price of information b
RANKS = 3  # candidates considered per market
DEFAULT_BID, DEFAULT_PRICE = 2, 1  # the starting policy's levels (indices above)

_NEGATION = re.compile(
    r"\b(not|no|never|none|nor|however|although|contrary|false|myth|despite|cannot|unlikely|"
    r"disputed|refuted|debunked|incorrect|wrong|little evidence)\b|n't\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Candidate:
    """A note the writer could offer: its text and sources, how close it is to the post, and an id
    its source knows it by (a passage id)."""

    text: str
    sources: tuple[str, ...]
    similarity: float
    source_id: str = ""
    classification: str | None = None  # set when a model wrote the draft and chose it

    @property
    def negation(self) -> float:
        return 1.0 if _NEGATION.search(self.text) else 0.0


@dataclass(frozen=True)
class MarketContext:
    """What the writer knows of a market before it offers: public numbers only."""

    market_id: int
    post_id: int
    post_text: str
    attention_slots: int
    reserve: int
    price_of_information: int
    budget_left: int
    sealed_offers: int

    @classmethod
    def from_info(cls, info: dict[str, object]) -> MarketContext:
        """From a market's public numbers, under the keys the simulator gives and the runner reads
        from the JSON API."""
        return cls(
            market_id=int(info["market_id"]),  # type: ignore[call-overload]
            post_id=int(info["post_id"]),  # type: ignore[call-overload]
            post_text=str(info["post_text"]),
            attention_slots=int(info["attention_slots"]),  # type: ignore[call-overload]
            reserve=int(info["reserve"]),  # type: ignore[call-overload]
            price_of_information=int(info["price_of_information"]),  # type: ignore[call-overload]
            budget_left=int(info["budget_left"]),  # type: ignore[call-overload]
            sealed_offers=int(info["sealed_offers"]),  # type: ignore[call-overload]
        )

    @property
    def crowding(self) -> float:
        return min(3.0, self.sealed_offers / max(1, self.attention_slots))


@dataclass(frozen=True)
class Arm:
    rank: int
    classification: str
    bid_level: int
    price_level: int

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Choice:
    """One arm with its candidate, its amounts in credits, and the features the bandit scored."""

    arm: Arm
    candidate: Candidate
    bid: int
    price: int
    features: tuple[float, ...] = field(repr=False)
    score: float = 0.0


DIM = 4 + 4 + 4 + 4 + 6 + RANKS


def bid_for(market: MarketContext, level: int) -> int:
    return market.reserve + BID_STEPS[level]


def price_for(market: MarketContext, level: int) -> int:
    return max(1, round(market.price_of_information * PRICE_SHARES[level]))


def features(market: MarketContext, candidate: Candidate, arm: Arm) -> np.ndarray:
    x = np.zeros(DIM)
    s, n, c = candidate.similarity, market.crowding, candidate.negation
    x[arm.price_level] = 1.0
    x[4 + arm.price_level] = s
    x[8 + arm.bid_level] = 1.0
    x[12 + arm.bid_level] = n
    k = 16 + 3 * CLASSIFICATIONS.index(arm.classification)
    x[k : k + 3] = (1.0, c, s)
    x[22 + arm.rank] = 1.0
    return x


def prior() -> np.ndarray:
    """The starting policy as a prior mean: +1 for the best candidate, for a middle bid and price,
    and for the classification its negation cue suggests; 0 elsewhere."""
    theta = np.zeros(DIM)
    theta[DEFAULT_PRICE] = 1.0
    theta[8 + DEFAULT_BID] = 1.0
    mis, not_mis = 16, 19
    theta[mis + 1] = 1.0  # a passage that negates something: "misleading"
    theta[not_mis] = 1.0  # otherwise "not_misleading"
    theta[not_mis + 1] = -1.0
    theta[22] = 1.0
    return theta


def arms(market: MarketContext, candidates: Sequence[Candidate]) -> list[Choice]:
    """Every arm the writer could pull on this market (none if it cannot afford the reserve)."""
    out = []
    for rank, candidate in enumerate(candidates[:RANKS]):
        classes = (candidate.classification,) if candidate.classification else CLASSIFICATIONS
        for classification in classes:
            for bid_level in range(len(BID_STEPS)):
                for price_level in range(len(PRICE_SHARES)):
                    arm = Arm(rank, classification, bid_level, price_level)
                    out.append(
                        Choice(
                            arm,
                            candidate,
                            bid_for(market, bid_level),
                            price_for(market, price_level),
                            tuple(features(market, candidate, arm)),
                        )
                    )
    return out
