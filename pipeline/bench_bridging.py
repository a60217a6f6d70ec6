"""``notebazaar bench bridging``: the bridging scorer's speed, memory and accuracy on seeded data.

The data follow the model of Community Notes' synthetic sets (and ``cn_synth.py``): rater u has a
viewpoint f_u = ±|N(0.6, 0.2)| (two camps) and an intercept i_u ~ N(0, 0.3); note n has a quality
q_n ~ N(0, 0.5) and a slant s_n ~ N(0, 0.5); each note is rated by Poisson(ratings per note)
raters (at least 5), and P(helpful or somewhat) = sigmoid(4·(q_n + 0.3·i_u + f_u·s_n)), 85% of
which are *helpful*. A bridging scorer's intercepts should rank notes by q whatever their slant:
``spearman_intercept_vs_quality``.

``seconds`` is the scorer alone (both rounds and the statuses), on data already in memory;
``peak_rss_mb`` is the process's peak resident memory at the end (data included).
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from notebazaar.pipeline.bridging import score
from notebazaar.pipeline.config import BridgingSettings


def synthetic(
    *, notes: int, ratings_per_note: int, raters: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Note ids, rater ids, rating values and each note's planted quality q (vectorised)."""
    rng = np.random.default_rng(seed)
    viewpoint = rng.choice([-1.0, 1.0], size=raters) * np.abs(rng.normal(0.6, 0.2, size=raters))
    lean = rng.normal(0.0, 0.3, size=raters)
    quality = rng.normal(0.0, 0.5, size=notes)
    slant = rng.normal(0.0, 0.5, size=notes)
    per_note = np.minimum(raters, np.maximum(5, rng.poisson(ratings_per_note, size=notes)))
    note_idx = np.repeat(np.arange(notes), per_note)
    # Distinct raters per note: the first k of a random permutation (argsort of uniform keys).
    rater_idx = np.concatenate([rng.permutation(raters)[:k] for k in per_note]) if notes else np.zeros(0, int)
    x = 4.0 * (quality[note_idx] + 0.3 * lean[rater_idx] + viewpoint[rater_idx] * slant[note_idx])
    p = 1.0 / (1.0 + np.exp(-x))
    r = rng.random(len(note_idx))
    values = np.where(r < 0.85 * p, 1.0, np.where(r < p, 0.5, 0.0))
    return note_idx, rater_idx, values, quality


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run(
    *, notes: int, ratings_per_note: int, raters: int, seed: int, params: BridgingSettings
) -> dict[str, Any]:
    note_idx, rater_idx, values, quality = synthetic(
        notes=notes, ratings_per_note=ratings_per_note, raters=raters, seed=seed
    )
    started = time.perf_counter()
    scored = score(note_idx, rater_idx, values, params)
    seconds = time.perf_counter() - started
    rated = ~np.isnan(scored.intercept)
    rho = spearmanr(scored.intercept[rated], quality[scored.note_ids[rated]]).statistic
    statuses = {
        s: int(np.count_nonzero(scored.status == s)) for s in ("helpful", "not_helpful", "needs_more_ratings")
    }
    return {
        "notes": int(notes),
        "ratings": len(values),
        "raters": int(raters),
        "seconds": round(seconds, 4),
        "ratings_per_second": round(len(values) / seconds, 1) if seconds > 0 else 0.0,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "spearman_intercept_vs_quality": round(float(rho), 4),
        "statuses": statuses,
        "sweeps": scored.sweeps,
        "seed": seed,
    }
