"""The simulator's readers with ``--resolution ratings``: a rater population with viewpoints.

Rater u has a viewpoint f_u = ±|N(0.6, 0.2)| (two camps of equal size on average) and a lean
i_u ~ N(0, 0.3), as in Community Notes' synthetic data (``cn_synth.py``). A bought note gets a
quality q from what only the simulator knows, N(+0.6, 0.3) when it is right for the truth and
N(−0.6, 0.3) otherwise, and a slant s ~ N(0, 0.5); each of ``RATINGS_PER_NOTE`` raters drawn from
the population finds it helpful or somewhat helpful with P = sigmoid(4·(q + 0.3·i_u + f_u·s)),
85% of those *helpful*, and otherwise *not helpful*. So the camps disagree about slanted notes and
agree about good and bad ones, which is what a bridging scorer needs to see.

A **coordinated** group (``--coordinated-raters SHARE`` of the population) rates every note of one
informer type (``misleading``) helpful and every other note not helpful, whatever it says.

Raters draw from their own generator, so the informers' offers are the same draws with or without
them. Their ratings go through :func:`notebazaar.pipeline.ratings.rate`, like any reader's.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from sqlite_utils import Database

from notebazaar.pipeline import community
from notebazaar.pipeline.ratings import rate

POPULATION = 60
RATINGS_PER_NOTE = 12
COORDINATED_TARGET = "misleading"


@dataclass(frozen=True)
class Rater:
    account: int
    viewpoint: float
    lean: float
    coordinated: bool


class RaterPopulation:
    def __init__(self, db: Database, community_id: int, *, coordinated_share: float, seed: int) -> None:
        if not 0.0 <= coordinated_share < 1.0:
            raise ValueError("the coordinated raters' share must be at least 0 and below 1")
        self.rng = random.Random(f"{seed}:raters")
        coordinated = round(POPULATION * coordinated_share)
        self.raters: list[Rater] = []
        for j in range(POPULATION):
            account = community.create_account(db, f"sim_reader{j}")
            community.grant(db, account, community_id, "reader")
            side = self.rng.choice((-1.0, 1.0))
            self.raters.append(
                Rater(
                    account, side * abs(self.rng.gauss(0.6, 0.2)), self.rng.gauss(0.0, 0.3), j < coordinated
                )
            )

    def rate(self, db: Database, reveal_id: int, kind: str, right: bool, *, now: float) -> None:
        """Ratings of one bought note by ``RATINGS_PER_NOTE`` raters of the population."""
        quality = self.rng.gauss(0.6 if right else -0.6, 0.3)
        slant = self.rng.gauss(0.0, 0.5)
        for rater in self.rng.sample(self.raters, RATINGS_PER_NOTE):
            if rater.coordinated:
                level = "helpful" if kind == COORDINATED_TARGET else "not_helpful"
            else:
                p = 1.0 / (1.0 + math.exp(-4.0 * (quality + 0.3 * rater.lean + rater.viewpoint * slant)))
                r = self.rng.random()
                level = "helpful" if r < 0.85 * p else "somewhat_helpful" if r < p else "not_helpful"
            rate(db, reveal_id, rater.account, level, surface="sim", now=now)
