"""The bridging scorer (pipeline/bridging.py) on its own: the model, the status rules, determinism,
row-order invariance, bridging versus one camp, coordinated raters, and Community Notes' synthetic
data with a planted truth (``shared/tools/cn_synth.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from notebazaar.pipeline import bridging, cnformat
from notebazaar.pipeline.bench_bridging import synthetic
from notebazaar.pipeline.config import BridgingSettings
from tests.conftest import SHARED_DATA

CN_SYNTH = SHARED_DATA.parent / "tools" / "cn_synth.py"
PARAMS = BridgingSettings()


def _camps(
    seed: int = 0, raters: int = 40, good_share: float = 0.5
) -> tuple[list[int], list[int], list[float], dict[str, int]]:
    """Two camps of raters, 30 ordinary notes each camp agrees about, 10 slanted notes each camp
    rates its own way, one note only camp A likes, one note both camps like (a bridging note)."""
    rng = np.random.default_rng(seed)
    camp = np.array([i % 2 for i in range(raters)])
    notes, who, values = [], [], []
    note_id = 0

    def add(rate_of: object) -> int:
        nonlocal note_id
        note_id += 1
        for u in range(raters):
            notes.append(note_id)
            who.append(u)
            values.append(float(rate_of(u)))  # type: ignore[operator]
        return note_id

    for _ in range(30):
        good = rng.random() < good_share
        add(lambda u, good=good: rng.random() < (0.95 if good else 0.05))
    for k in range(20):  # slanted: camp k % 2 likes it, the other does not
        add(lambda u, k=k: rng.random() < (0.9 if camp[u] == k % 2 else 0.1))
    one_camp = add(lambda u: camp[u] == 0)
    bridging_note = add(lambda u: 1.0)
    return notes, who, values, {"one_camp": one_camp, "bridging": bridging_note}


def _status(scores: bridging.Scores, note: int) -> str:
    return str(scores.status[list(scores.note_ids).index(note)])


def test_decide_applies_the_thresholds_and_the_minimum() -> None:
    intercept = np.array([0.40, 0.39, 0.6, -0.05, -0.06, -0.45, -0.44, 0.9])
    factor = np.array([0.0, 0.0, 0.5, 0.0, 0.0, 0.5, 0.5, 0.0])
    ratings = np.array([5, 5, 5, 5, 5, 5, 5, 4])
    assert list(bridging.decide(intercept, factor, ratings, PARAMS)) == [
        "helpful",
        "needs_more_ratings",
        "needs_more_ratings",  # |factor| = 0.5 is not < 0.5
        "not_helpful",
        "not_helpful",
        "not_helpful",  # -0.45 <= -0.05 - 0.8 * 0.5
        "needs_more_ratings",
        "needs_more_ratings",  # 4 ratings: too few for any status
    ]


def test_one_camp_alone_never_makes_a_note_helpful_a_bridging_note_does() -> None:
    notes, who, values, planted = _camps()
    scores = bridging.score(notes, who, values, PARAMS)
    assert _status(scores, planted["bridging"]) == "helpful"
    assert _status(scores, planted["one_camp"]) != "helpful"
    i = list(scores.note_ids).index(planted["one_camp"])
    j = list(scores.note_ids).index(planted["bridging"])
    assert scores.intercept[j] > scores.intercept[i] + 0.3
    assert abs(scores.factor[i]) > abs(scores.factor[j])  # its support leans to one side


@settings(max_examples=15, deadline=None)
@given(st.randoms(use_true_random=False))
def test_invariant_to_row_order(rnd: object) -> None:
    notes, who, values, _ = _camps(seed=3, raters=20)
    order = list(range(len(notes)))
    rnd.shuffle(order)  # type: ignore[attr-defined]
    base = bridging.score(notes, who, values, PARAMS)
    shuffled = bridging.score(
        [notes[i] for i in order], [who[i] for i in order], [values[i] for i in order], PARAMS
    )
    assert np.array_equal(base.note_ids, shuffled.note_ids)
    assert np.array_equal(base.intercept, shuffled.intercept)
    assert np.array_equal(base.factor, shuffled.factor)
    assert list(base.status) == list(shuffled.status)


def test_deterministic_for_a_seed_and_seed_only_breaks_symmetry() -> None:
    notes, who, values, _ = _camps(seed=5)
    first = bridging.score(notes, who, values, PARAMS)
    again = bridging.score(notes, who, values, PARAMS)
    assert np.array_equal(first.intercept, again.intercept) and np.array_equal(first.factor, again.factor)
    other = bridging.score(notes, who, values, PARAMS.model_copy(update={"seed": 11}))
    assert np.allclose(first.intercept, other.intercept, atol=1e-3)  # the same optimum
    assert list(first.status) == list(other.status)


def test_the_fit_minimises_community_notes_loss() -> None:
    """Each ALS sweep solves its block exactly: no small move of any parameter lowers the loss."""
    note_idx, rater_idx, values, _ = synthetic(notes=200, ratings_per_note=15, raters=100, seed=1)
    fit = bridging.fit(note_idx, rater_idx, values, 200, 100, PARAMS.model_copy(update={"tolerance": 1e-10}))

    def loss(mu: float, ni: np.ndarray, nf: np.ndarray, ri: np.ndarray, rf: np.ndarray) -> float:
        pred = mu + ri[rater_idx] + ni[note_idx] + rf[rater_idx] * nf[note_idx]
        return float(
            np.mean((values - pred) ** 2)
            + PARAMS.intercept_lambda * (np.mean(ri**2) + np.mean(ni**2))
            + PARAMS.factor_lambda * (np.mean(rf**2) + np.mean(nf**2))
            + PARAMS.global_lambda * mu**2
        )

    best = loss(fit.mu, fit.note_intercept, fit.note_factor, fit.rater_intercept, fit.rater_factor)
    rng = np.random.default_rng(0)
    for _ in range(20):
        nudged = [a + rng.normal(0, 1e-3, np.shape(a)) for a in (fit.note_intercept, fit.note_factor)]
        assert loss(fit.mu, nudged[0], nudged[1], fit.rater_intercept, fit.rater_factor) >= best
        assert (
            loss(
                fit.mu + rng.normal(0, 1e-3),
                fit.note_intercept,
                fit.note_factor,
                fit.rater_intercept,
                fit.rater_factor,
            )
            >= best
        )


def test_a_coordinated_group_is_left_out_and_honest_raters_are_not() -> None:
    notes, who, values, planted = _camps(seed=2, raters=40, good_share=0.8)
    pushed = max(notes) + 1
    gang = list(range(100, 108))  # eight raters who rate by a rule: 'pushed' helpful, all else not
    for n in [*sorted(set(notes)), pushed]:
        for u in gang:
            notes.append(n)
            who.append(u)
            values.append(1.0 if n == pushed else 0.0)
    for u in range(40):  # everyone else finds the pushed note useless
        notes.append(pushed)
        who.append(u)
        values.append(0.0)
    scores = bridging.score(notes, who, values, PARAMS)
    assert sorted(scores.excluded_raters.tolist()) == gang
    assert _status(scores, pushed) == "not_helpful"
    assert _status(scores, planted["bridging"]) == "helpful"


def test_no_ratings_and_mismatched_columns() -> None:
    empty = bridging.score([], [], [], PARAMS)
    assert len(empty.note_ids) == 0
    with pytest.raises(ValueError, match="same length"):
        bridging.score([1, 2], [1], [1.0, 0.0], PARAMS)


@pytest.mark.skipif(not CN_SYNTH.is_file(), reason="needs ../shared/tools/cn_synth.py")
def test_planted_quality_on_community_notes_synthetic_data(tmp_path: Path) -> None:
    out = tmp_path / "cn"
    subprocess.run(
        [
            sys.executable,
            str(CN_SYNTH),
            "--raters",
            "800",
            "--notes",
            "2000",
            "--ratings-per-note",
            "30",
            "--seed",
            "3",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    notes, raters, values = cnformat.read_rating_columns(out / "ratings")
    scores = bridging.score(np.array(notes, dtype=np.int64), np.array(raters), np.array(values), PARAMS)
    truth = {}
    for line in (out / "truth.tsv").read_text().splitlines()[1:]:
        note, q, s, _ = line.split("\t")
        truth[int(note)] = (float(q), float(s))
    q = np.array([truth[int(n)][0] for n in scores.note_ids])
    s = np.array([truth[int(n)][1] for n in scores.note_ids])
    assert spearmanr(scores.intercept, q).statistic >= 0.9
    assert abs(spearmanr(scores.factor, s).statistic) >= 0.7  # the factor finds the slant
    helpful = scores.status == "helpful"
    assert helpful.any() and (q[helpful] > 0).mean() > 0.95
    assert (q[scores.status == "not_helpful"] < 0).mean() > 0.95
