"""A linear contextual bandit (LinUCB with a prior mean): how the writer learns from ``reward``.

Why LinUCB: the writer's choices (which passage to offer, its classification, the bid, the price)
are many discrete arms that share structure (a price that sells for one passage tells about
another), so one linear model over features of the context and the arm learns from every offer at
once. The upper confidence bound makes it try arms it knows little about, and it is deterministic,
so a run can be replayed.

The model is ridge regression shrunk toward a prior mean ``theta0`` (the writer's starting policy):
``A = lam * I + sum x x^T``, ``b = lam * theta0 + sum x r``, ``theta = A^-1 b``, and an arm's score is
``theta . x + alpha * sqrt(x^T A^-1 x)``. With no data every arm's score is its prior plus the same
kind of bonus, so the first choices are the prior's. A bandit built with ``learning=False`` never
updates: the *fixed twin* of the simulator, which keeps making those first choices.

Abstaining is an arm of its own with score 0 (its reward is known to be 0): the writer offers only
where some arm's optimistic estimate beats doing nothing.

The market is not stationary: the judge's trust in the writer follows its track record, other
informers change their prices, a community's pool runs high or low. So the evidence *can decay*:
with ``decay`` below 1 each update first scales the data part of ``A`` and ``b`` by ``decay`` (the
prior part stays), so an offer ``n`` updates ago weighs ``decay ** n`` and an arm untried for a while
regains its uncertainty (discounted LinUCB). ``decay = 1`` keeps everything, and is the writer's
default: with decay the uncertainty, and so the optimism, never shrinks (at 0.98 the simulated
writer missed its target on one seed of two; docs/writer.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class LinUCB:
    """One linear reward model over ``dim`` features, with optimism ``alpha`` and prior strength ``lam``."""

    def __init__(
        self,
        dim: int,
        *,
        theta0: Sequence[float] | None = None,
        alpha: float = 1.0,
        lam: float = 1.0,
        decay: float = 1.0,
        learning: bool = True,
    ) -> None:
        if dim < 1:
            raise ValueError("a bandit needs at least one feature")
        if lam <= 0:
            raise ValueError("the prior strength must be positive")
        if not 0 < decay <= 1:
            raise ValueError("decay must be in (0, 1]")
        self.decay = float(decay)
        self.dim = dim
        self.alpha = float(alpha)
        self.lam = float(lam)
        self.learning = learning
        self.theta0 = np.zeros(dim) if theta0 is None else np.asarray(theta0, dtype=float)
        if self.theta0.shape != (dim,):
            raise ValueError(f"theta0 has {self.theta0.size} entries; the bandit has {dim} features")
        self.reset()

    def reset(self) -> None:
        """Forget every update: back to the prior."""
        self.a = self.lam * np.eye(self.dim)
        self.b = self.lam * self.theta0.copy()
        self.updates = 0
        self._stale = True

    def _refresh(self) -> None:
        if self._stale:
            self._a_inv = np.linalg.inv(self.a)
            self._theta = self._a_inv @ self.b
            self._stale = False

    @property
    def theta(self) -> np.ndarray:
        """The reward model's current weights (the prior mean before any update)."""
        self._refresh()
        return self._theta

    def scores(self, features: np.ndarray) -> np.ndarray:
        """The optimistic score of each row of ``features`` (one row per arm)."""
        self._refresh()
        x = np.atleast_2d(np.asarray(features, dtype=float))
        mean = x @ self._theta
        width = np.sqrt(np.maximum(0.0, np.einsum("ij,jk,ik->i", x, self._a_inv, x)))
        return mean + self.alpha * width

    def update(self, features: Sequence[float], reward: float) -> None:
        """Learn from one offer's reward (a no-op for a bandit that does not learn)."""
        if not self.learning:
            return
        x = np.asarray(features, dtype=float)
        if x.shape != (self.dim,):
            raise ValueError(f"got {x.size} features; the bandit has {self.dim}")
        if self.decay < 1:
            prior_a, prior_b = self.lam * np.eye(self.dim), self.lam * self.theta0
            self.a = prior_a + self.decay * (self.a - prior_a)
            self.b = prior_b + self.decay * (self.b - prior_b)
        self.a += np.outer(x, x)
        self.b += x * float(reward)
        self.updates += 1
        self._stale = True
