"""The bridging scorer: readers' ratings in, note statuses out (issue 13).

The model is Community Notes' core matrix factorisation (``twitter/communitynotes``,
``scoring/src/scoring/matrix_factorization``), written afresh here with numpy:

    rating ≈ μ + i_rater + i_note + f_rater · f_note      (one factor dimension)

with helpful = 1, somewhat helpful = 0.5, not helpful = 0, fitted by minimising the same loss

    (1/N) Σ (rating − prediction)² + λ_i (mean i_rater² + mean i_note²)
                                  + λ_f (mean f_rater² + mean f_note²) + λ_μ μ²

(N ratings; the means are over raters and over notes, as there; λ_i = 0.15 is five times
λ_f = 0.03, so a note's intercept moves only when raters of every viewpoint agree, and what one
viewpoint alone likes goes into the factor). A note's **intercept** is its helpfulness to people
who usually disagree; its **factor** is how much its support leans to one side.

Statuses, as Community Notes decides them from the intercept and factor (``[bridging]`` in
config.toml holds every constant):

- fewer than ``min_ratings`` (5) ratings: *needs more ratings*, whatever the fit says;
- *helpful* when ``intercept ≥ 0.40`` and ``|factor| < 0.50``;
- *not helpful* when ``intercept ≤ −0.05 − 0.8·|factor|``;
- otherwise *needs more ratings*.

Rounds. Before the fits, raters who contradict their peers on the notes those peers agree about
are left out (:func:`coordinated_raters`: a coordinated group; ours, not Community Notes' core
model). Then, as Community Notes' prescoring does, the first fit gives provisional statuses; a
rater whose helpful / not-helpful ratings agree with those statuses less than
``min_rater_agreement`` (0.66) of the time, over at least ``min_rater_verdicts`` of them, is left
out and the model refitted from the previous fit, until nobody new is left out (at most
``MAX_FILTER_ROUNDS``). Notes are counted toward ``min_ratings`` with the ratings of the final
round only.

Kept from Community Notes' scorer: the loss and its constants, one factor, the two thresholds, the
minimum of 5 ratings, the rater-agreement filter, and the sign convention (the larger group of
raters gets the negative factor). Left out, and why:

- the tag filter, the "incorrect" filter and firm reject (they need per-tag consensus models and
  enough tagged ratings to estimate tag-percentile thresholds; our reason tags are optional and few);
- pseudo-rater confidence bounds (a refit per perturbation: many times the cost for a bound on the
  intercept that only moves borderline notes);
- status inertia, stable initialisation from modelling groups, author helpfulness and the separate
  expansion, group and topic models (they need enrolment data and history we do not have; the core
  model is what decides most statuses there too).

The fit is alternating least squares: with the raters' parameters fixed, each note's intercept and
factor are the exact minimiser of a 2×2 ridge regression, solved for all notes at once with
``numpy.bincount`` (no Python loop over ratings), and likewise for raters, then μ. Each sweep lowers
the loss; it stops when no parameter moves more than ``tolerance``. The input is put in a canonical
order first and the initial factors come from a generator seeded by ``seed``, so the result is the
same for any order of the rows and any run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlite_utils import Database

from notebazaar.pipeline import statuses
from notebazaar.pipeline.config import BridgingSettings
from notebazaar.pipeline.ratings import LEVEL_VALUES

log = logging.getLogger(__name__)

NEEDS_MORE_RATINGS = "needs_more_ratings"
HELPFUL = "helpful"
NOT_HELPFUL = "not_helpful"
STATUSES = (NEEDS_MORE_RATINGS, HELPFUL, NOT_HELPFUL)
MAX_FILTER_ROUNDS = 5


@dataclass
class Fit:
    """Parameters of one matrix factorisation, indexed by note and rater index."""

    mu: float
    note_intercept: np.ndarray
    note_factor: np.ndarray
    rater_intercept: np.ndarray
    rater_factor: np.ndarray
    sweeps: int


@dataclass
class Scores:
    """The scorer's answer for each note (in ``note_ids`` order, sorted)."""

    note_ids: np.ndarray
    intercept: np.ndarray  # NaN for a note left without ratings in the final round
    factor: np.ndarray
    ratings: np.ndarray  # ratings of the final round
    status: np.ndarray  # of STATUSES
    mu: float
    rater_ids: np.ndarray
    rater_intercept: np.ndarray
    rater_factor: np.ndarray
    excluded_raters: np.ndarray  # rater ids left out of the final round
    sweeps: int

    def by_note(self) -> dict[Any, tuple[str, float | None, float | None, int]]:
        out: dict[Any, tuple[str, float | None, float | None, int]] = {}
        for i, note in enumerate(self.note_ids.tolist()):
            intercept = float(self.intercept[i])
            missing = bool(np.isnan(intercept))
            out[note] = (
                str(self.status[i]),
                None if missing else intercept,
                None if missing else float(self.factor[i]),
                int(self.ratings[i]),
            )
        return out


def fit(
    note_idx: np.ndarray,
    rater_idx: np.ndarray,
    values: np.ndarray,
    n_notes: int,
    n_raters: int,
    params: BridgingSettings,
    *,
    init: Fit | None = None,
) -> Fit:
    """Minimise the loss above by alternating least squares (see the module docstring)."""
    n = len(values)
    if n == 0:
        zeros_n, zeros_r = np.zeros(n_notes), np.zeros(n_raters)
        return Fit(0.0, zeros_n, zeros_n.copy(), zeros_r, zeros_r.copy(), 0)
    # The loss's means over raters and notes, as ridge penalties on sums: λ·N/count.
    lam_ni = params.intercept_lambda * n / n_notes
    lam_nf = params.factor_lambda * n / n_notes
    lam_ri = params.intercept_lambda * n / n_raters
    lam_rf = params.factor_lambda * n / n_raters
    lam_mu = params.global_lambda * n
    if init is None:
        rng = np.random.default_rng(params.seed)
        mu = 0.0
        ni, nf = np.zeros(n_notes), np.zeros(n_notes)
        ri, rf = np.zeros(n_raters), rng.normal(0.0, 0.1, n_raters)
    else:
        mu = init.mu
        ni, nf = init.note_intercept.copy(), init.note_factor.copy()
        ri, rf = init.rater_intercept.copy(), init.rater_factor.copy()
    note_count = np.bincount(note_idx, minlength=n_notes).astype(float)
    rater_count = np.bincount(rater_idx, minlength=n_raters).astype(float)

    sweeps = 0
    for sweeps in range(1, params.max_iterations + 1):  # noqa: B007  (reported after the loop)
        old = (mu, ni, nf, ri, rf)
        ni, nf = _solve(
            note_idx, values - mu - ri[rater_idx], rf[rater_idx], note_count, lam_ni, lam_nf, n_notes
        )
        ri, rf = _solve(
            rater_idx, values - mu - ni[note_idx], nf[note_idx], rater_count, lam_ri, lam_rf, n_raters
        )
        mu = float(
            np.sum(values - ni[note_idx] - ri[rater_idx] - rf[rater_idx] * nf[note_idx]) / (n + lam_mu)
        )
        moved = max(
            abs(mu - old[0]),
            float(np.max(np.abs(ni - old[1]), initial=0.0)),
            float(np.max(np.abs(nf - old[2]), initial=0.0)),
            float(np.max(np.abs(ri - old[3]), initial=0.0)),
            float(np.max(np.abs(rf - old[4]), initial=0.0)),
        )
        if moved < params.tolerance:
            break
    # Identification: the larger group of raters gets the negative factor (as Community Notes).
    if np.count_nonzero(rf > 0) > np.count_nonzero(rf < 0):
        rf, nf = -rf, -nf
    return Fit(mu, ni, nf, ri, rf, sweeps)


def _solve(
    group: np.ndarray,
    residual: np.ndarray,
    other_factor: np.ndarray,
    count: np.ndarray,
    lam_intercept: float,
    lam_factor: float,
    size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """For every member of ``group`` at once: the intercept and factor minimising
    Σ (residual − intercept − factor·other_factor)² + λ_i intercept² + λ_f factor²."""
    s_f = np.bincount(group, other_factor, size)
    s_ff = np.bincount(group, other_factor * other_factor, size)
    s_r = np.bincount(group, residual, size)
    s_rf = np.bincount(group, residual * other_factor, size)
    a11 = count + lam_intercept
    a22 = s_ff + lam_factor
    det = a11 * a22 - s_f * s_f
    safe = np.where(det > 0, det, 1.0)
    intercept = np.where(det > 0, (a22 * s_r - s_f * s_rf) / safe, 0.0)
    factor = np.where(det > 0, (a11 * s_rf - s_f * s_r) / safe, 0.0)
    return intercept, factor


def decide(
    intercept: np.ndarray, factor: np.ndarray, ratings: np.ndarray, params: BridgingSettings
) -> np.ndarray:
    """Statuses from intercepts, factors and rating counts (the rules in the module docstring)."""
    status = np.full(len(intercept), NEEDS_MORE_RATINGS, dtype=object)
    enough = (ratings >= params.min_ratings) & ~np.isnan(intercept)
    slant = np.abs(factor)
    helpful = enough & (intercept >= params.helpful_intercept) & (slant < params.helpful_max_factor)
    not_helpful = enough & (
        intercept <= params.not_helpful_intercept - params.not_helpful_factor_slope * slant
    )
    status[helpful] = HELPFUL
    status[not_helpful] = NOT_HELPFUL
    return status


def coordinated_raters(
    note_idx: np.ndarray,
    rater_idx: np.ndarray,
    y: np.ndarray,
    n_notes: int,
    n_raters: int,
    params: BridgingSettings,
) -> np.ndarray:
    """Raters who go against their peers where the peers agree: over the notes on which at least
    ``consensus_min_peers`` other raters gave a helpful / not-helpful verdict and at least
    ``consensus_share`` of them gave the same one, a rater whose own verdict matched less than
    ``consensus_agreement`` of the time (over at least ``consensus_min_verdicts`` such notes).

    Not in Community Notes' core model (its nearest kin is the quasi-clique and post-selection
    similarity detection beside it, and its rater-agreement filter, which compares raters with the
    model's statuses instead). Notes that split raters by viewpoint are not consensus notes, so
    holding a minority view costs nothing; a group that rates by a rule ("this side's notes are
    helpful, all others are not") contradicts its peers on every note they agree about. A
    one-factor model alone would hand such a group the factor axis, and with it the intercepts."""
    flagged = np.zeros(n_raters, dtype=bool)
    verdict = (y == 1.0) | (y == 0.0)
    if params.consensus_min_peers < 1 or not verdict.any():
        return flagged
    helpful = (y == 1.0).astype(float)
    judged = verdict.astype(float)
    note_helpful = np.bincount(note_idx, helpful, n_notes)
    note_judged = np.bincount(note_idx, judged, n_notes)
    peers = note_judged[note_idx] - judged  # the other raters' verdicts on this rating's note
    peers_helpful = note_helpful[note_idx] - helpful
    share = np.divide(peers_helpful, peers, out=np.full(len(y), 0.5), where=peers > 0)
    consensus = verdict & (peers >= params.consensus_min_peers)
    says_helpful = consensus & (share >= params.consensus_share)
    says_not = consensus & (share <= 1.0 - params.consensus_share)
    counted = says_helpful | says_not
    agrees = (says_helpful & (y == 1.0)) | (says_not & (y == 0.0))
    counted_n = np.bincount(rater_idx, counted.astype(float), n_raters)
    agree_n = np.bincount(rater_idx, agrees.astype(float), n_raters)
    ratio = np.divide(agree_n, counted_n, out=np.ones(n_raters), where=counted_n > 0)
    return (counted_n >= params.consensus_min_verdicts) & (ratio < params.consensus_agreement)


def _index(ids: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct ids and each row's position among them. Text ids (Community Notes'
    participant ids are 64-character hashes) go through a dict: much faster than sorting every
    row's string."""
    array = np.asarray(ids) if not isinstance(ids, list) else None
    if array is not None and array.dtype.kind not in "UO":
        keys, inverse = np.unique(array, return_inverse=True)
        return keys, inverse
    values = ids if isinstance(ids, list) else array.tolist()  # type: ignore[union-attr]
    if values and not isinstance(values[0], str):
        keys, inverse = np.unique(np.asarray(values), return_inverse=True)
        return keys, inverse
    keys = sorted(set(values))
    position = {key: i for i, key in enumerate(keys)}
    inverse = np.fromiter((position[i] for i in values), dtype=np.int64, count=len(values))
    return np.array(keys, dtype=str), inverse


def _disagreeing_raters(
    provisional: np.ndarray,
    note_idx: np.ndarray,
    rater_idx: np.ndarray,
    y: np.ndarray,
    n_raters: int,
    params: BridgingSettings,
) -> np.ndarray:
    """Raters whose helpful / not-helpful ratings of notes with a provisional status agree with it
    less than ``min_rater_agreement`` of the time, over at least ``min_rater_verdicts`` of them."""
    verdict = provisional[note_idx]
    judged = ((verdict == HELPFUL) | (verdict == NOT_HELPFUL)) & ((y == 1.0) | (y == 0.0))
    agrees = judged & (((verdict == HELPFUL) & (y == 1.0)) | ((verdict == NOT_HELPFUL) & (y == 0.0)))
    judged_n = np.bincount(rater_idx, judged.astype(float), n_raters)
    agree_n = np.bincount(rater_idx, agrees.astype(float), n_raters)
    ratio = np.divide(agree_n, judged_n, out=np.ones(n_raters), where=judged_n > 0)
    return (judged_n >= params.min_rater_verdicts) & (ratio < params.min_rater_agreement)


def score(
    note_ids: Sequence[Any] | np.ndarray,
    rater_ids: Sequence[Any] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    params: BridgingSettings,
) -> Scores:
    """Score ratings given as three columns (note id, rater id, value in [0, 1]): the rater
    filters, the matrix factorisation rounds and the statuses (module docstring). One rating per
    (note, rater)."""
    y_in = np.asarray(values, dtype=float)
    if not (len(note_ids) == len(rater_ids) == len(y_in)):
        raise ValueError("note ids, rater ids and values must have the same length")
    note_keys, note_idx = _index(note_ids)
    rater_keys, rater_idx = _index(rater_ids)
    order = np.lexsort((rater_idx, note_idx))  # a canonical order: the same fit for any row order
    note_idx, rater_idx, y = note_idx[order].astype(np.int64), rater_idx[order].astype(np.int64), y_in[order]
    n_notes, n_raters = len(note_keys), len(rater_keys)

    excluded = coordinated_raters(note_idx, rater_idx, y, n_notes, n_raters, params)
    keep = ~excluded[rater_idx]
    first = fit(note_idx[keep], rater_idx[keep], y[keep], n_notes, n_raters, params)
    final = first
    sweeps = first.sweeps
    for _ in range(MAX_FILTER_ROUNDS):
        counts = np.bincount(note_idx[keep], minlength=n_notes)
        provisional = decide(final.note_intercept, final.note_factor, counts, params)
        newly = _disagreeing_raters(provisional, note_idx, rater_idx, y, n_raters, params) & ~excluded
        if not newly.any():
            break
        excluded |= newly
        keep = ~excluded[rater_idx]
        final = fit(note_idx[keep], rater_idx[keep], y[keep], n_notes, n_raters, params, init=final)
        sweeps += final.sweeps
    counts = np.bincount(note_idx[keep], minlength=n_notes)
    intercept = np.where(counts > 0, final.note_intercept, np.nan)
    factor = np.where(counts > 0, final.note_factor, np.nan)
    return Scores(
        note_ids=note_keys,
        intercept=intercept,
        factor=factor,
        ratings=counts,
        status=decide(intercept, np.nan_to_num(factor), counts, params),
        mu=final.mu,
        rater_ids=rater_keys,
        rater_intercept=final.rater_intercept,
        rater_factor=final.rater_factor,
        excluded_raters=rater_keys[excluded],
        sweeps=sweeps,
    )


# --- the market's statuses ------------------------------------------------------------------------


@dataclass
class ScoreReport:
    """What one scoring pass over the database did (counts and ids only)."""

    notes: int = 0
    ratings: int = 0
    changed: int = 0
    helpful: int = 0
    not_helpful: int = 0
    hidden: list[int] | None = None
    hidden_for_author: list[int] | None = None
    holds_paid: int = 0
    holds_returned: int = 0
    excluded_raters: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "hidden": list(self.hidden or []),
            "hidden_for_author": list(self.hidden_for_author or []),
        }


def score_db(db: Database, params: BridgingSettings, *, now: float | None = None) -> ScoreReport:
    """Score every rating of revealed top-level notes; store statuses (``note_statuses``, with the
    time computed) and each change (``note_status_history``); hide the notes that became not
    helpful and settle held payments (:mod:`notebazaar.pipeline.statuses`). One transaction."""
    started = time.perf_counter()
    now = time.time() if now is None else now
    rows = db.execute(
        "SELECT g.reveal_id, g.account_id, g.level FROM ratings g JOIN reveals r ON r.id = g.reveal_id"
        " JOIN markets m ON m.id = r.market_id WHERE m.parent_offer_id IS NULL"
    ).fetchall()
    report = ScoreReport(ratings=len(rows), hidden=[], hidden_for_author=[])
    if rows:
        notes = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        raters = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        values = np.fromiter((LEVEL_VALUES[r[2]] for r in rows), dtype=float, count=len(rows))
        scores = score(notes, raters, values, params)
        scored = scores.by_note()
        report.excluded_raters = len(scores.excluded_raters)
    else:
        scored = {}
    statuses.store(db, scored, now=now, report=report, author_wrong=params.hide_undecided_author_wrong)
    report.seconds = time.perf_counter() - started
    log.info(
        "bridging: %s ratings, %s notes, %s changed, %s hidden, %s for their authors' records",
        report.ratings,
        report.notes,
        report.changed,
        len(report.hidden or []),
        len(report.hidden_for_author or []),
    )
    return report


class ScoringSchedule:
    """Runs :func:`score_db` at most every ``score_interval_seconds``: what the web worker and the
    bots call on each pass of their loops."""

    def __init__(self, params: BridgingSettings, *, clock: Any = time.monotonic) -> None:
        self.params = params
        self.clock = clock
        self._last = float("-inf")

    def due(self) -> bool:
        return self.clock() - self._last >= self.params.score_interval_seconds

    def run_if_due(self, db: Database) -> ScoreReport | None:
        if not self.due():
            return None
        self._last = self.clock()
        return score_db(db, self.params)
