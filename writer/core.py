"""The writer's learning core: choose offers on a market, log them, learn from their rewards.

It knows nothing of HTTP or of the simulator: the API client (:mod:`notebazaar.writer.runner`) and
``simulate --writers on`` (:mod:`notebazaar.writer.simulated`) both hand it a
:class:`~notebazaar.writer.choices.MarketContext`, submit what it chooses through the market's
ordinary offer path, give it the receipt, and later the market's reward rows
(:func:`notebazaar.pipeline.rewards.reward`).

Policy on one market: score every arm (:mod:`notebazaar.writer.choices`) with the bandit, offer the
best if its optimistic score beats abstaining (0), then up to ``offers_per_market - 1`` more, each on
another candidate with a positive score. Two offers on one post are also what a preference pair is
made of (:mod:`notebazaar.writer.preferences`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from notebazaar.writer.bandit import LinUCB
from notebazaar.writer.choices import DIM, Choice, MarketContext, arms, prior
from notebazaar.writer.log import WriterLog
from notebazaar.writer.sources import NoteSource


class Writer:
    """One writer: a note source, a log, and a bandit rebuilt from the log."""

    def __init__(
        self,
        source: NoteSource,
        log: WriterLog,
        *,
        alpha: float = 2.0,
        prior_strength: float = 1.0,
        decay: float = 1.0,
        offers_per_market: int = 1,
        learning: bool = True,
    ) -> None:
        self.source = source
        self.log = log
        self.offers_per_market = offers_per_market
        self.bandit = LinUCB(
            DIM, theta0=prior(), alpha=alpha, lam=prior_strength, decay=decay, learning=learning
        )
        self.relearn()

    def relearn(self) -> None:
        """Rebuild the bandit from every rewarded offer in the log (the log is the state)."""
        self.bandit.reset()
        for features, reward in self.log.rewarded():
            self.bandit.update(features, reward)

    def choose(self, market: MarketContext, *, wallet: int | None = None) -> list[Choice]:
        """What to offer on ``market``: at most ``offers_per_market`` choices, best first; none
        when abstaining looks better, or when the wallet cannot cover a bid."""
        options = arms(market, self.source.candidates(market.post_text))
        if wallet is not None:
            options = [c for c in options if c.bid <= wallet]
        if not options:
            return []
        scores = self.bandit.scores(np.array([c.features for c in options]))
        picked: list[Choice] = []
        for j in np.argsort(-scores, kind="stable"):
            choice, score = options[int(j)], float(scores[int(j)])
            if score <= 0 or len(picked) >= self.offers_per_market:
                break
            if any(p.arm.rank == choice.arm.rank for p in picked):
                continue
            if wallet is not None and sum(p.bid for p in picked) + choice.bid > wallet:
                continue
            picked.append(
                Choice(choice.arm, choice.candidate, choice.bid, choice.price, choice.features, score)
            )
        return picked

    def placed(self, market: MarketContext, choice: Choice, receipt: dict[str, Any]) -> None:
        self.log.record(receipt=receipt, market=market, choice=choice)

    def learn(self, rows: list[dict[str, Any]]) -> int:
        """Take reward rows from the market; returns how many were new or changed."""
        changed = self.log.apply(rows)
        if changed:
            self.relearn()
        return changed
