"""The embedded judge's parameters: their built-in defaults, fitting them on labelled claims
(``notebazaar judge fit``), and storing them per community (``judge_params``, migration m031).

What is fitted, and how (the procedure is the same for the built-in defaults):

* every claim's post and evidence is embedded as the judge embeds notes, passage by passage
  (:mod:`notebazaar.index.passages`), an evidence item scoring its best passage;
* *deciding* evidence is the claim's own ``supports`` / ``refutes`` evidence: what an honest note
  on the post carries. *Off-topic* evidence is that of ``NEGATIVES`` other claims drawn at random:
  what a note about something else carries;
* ``rel_full`` (full weight) is the median similarity of deciding evidence, and ``rel_floor`` (no
  weight) the 65th percentile of off-topic similarity: on Climate-FEVER these reproduce the
  hand-set 0.60 and 0.30 they replace, and on evidence of another length or style they move
  with it (a long page is read sentence by sentence and scores its best sentence, so off-topic
  pages score higher than off-topic sentences do, and the floor rises with them).

Nothing else is fitted: the file says which evidence decides a post, not how honest a market's
informers are, so the trust given to newcomers stays a rule (cautious until records exist).
The labels and stances are read here only, never by the judge at run time.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
from sqlite_utils import Database

from notebazaar.pipeline.db import write
from notebazaar.pipeline.errors import ValidationError

NEGATIVES = 5  # off-topic evidence items sampled per claim
FLOOR_QUANTILE = 0.65
FULL_QUANTILE = 0.50
MIN_RAMP = 0.10  # rel_full stays at least this far above rel_floor

WHAT_EACH_JUDGE_READS = {
    "local": "The embedded judge reads topical relevance (MiniLM cosine of the note's best passage to"
    " the post), corroboration (the trusted reference corpus and revealed notes that proved right)"
    " and track records. It does NOT read stance: which way a note points comes from its author's"
    " classification, so a relevant note classified the wrong way moves readers the wrong way. It"
    " trusts strangers on credit: while newcomer_credit strangers' notes await review, a new"
    " informer's note gets no weight; nor does the note of an informer whose record leaves it less"
    " trusted than a stranger.",
    "openai": "The LLM judge reads the note's content: the model estimates how far the note moves a"
    " careful reader and quotes the evidence; code checks the quote, refuses instruction-like notes,"
    " and gives no weight to a note whose evidence the model reads as pointing against its own"
    " classification (contradicts_classification).",
    "simple": "The simple judge (tests and scripted demos) reads only how many of the post's words a"
    " note shares; it does not read stance either.",
}


@dataclass(frozen=True)
class LocalJudgeParams:
    rel_floor: float = 0.30  # cosine at which a note starts to count as on topic (fitted)
    rel_full: float = 0.60  # ...and counts fully (fitted)
    echo_start: float = 0.88  # above this a note starts to merely restate the post
    echo_full: float = 0.97  # ...and at this it tells the reader nothing new
    newcomer_reliability: float = 0.75  # trust in a stranger before any newcomer's note resolved
    newcomer_floor: float = 0.70  # ...and never less: below it no note is worth a price, and a judge
    # that buys nothing learns nothing (a few early wrong notes would stall the market for good).
    # An informer whose own record leaves it below this is not bought (record_below_stranger)
    newcomer_credit: int = 2  # strangers' notes the community may have awaiting review at once;
    # past it a stranger's note gets no weight until readers or a moderator review one
    # (pipeline.credit). A rule, like the two above: not fitted
    prior_strength: float = 4.0  # pseudo-notes behind the newcomers' reliability
    informer_shrinkage: float = 3.0  # pseudo-notes pulling an informer toward the newcomers'
    max_reliability: float = 0.97
    support_threshold: float = 0.80  # cosine above which a passage counts as corroboration
    knn_k: int = 8
    knn_min_score: float = 0.55
    knn_weight: float = 0.5  # how far similar resolved posts move the base rate, at most

    def __post_init__(self) -> None:
        if not 0.0 <= self.rel_floor < self.rel_full <= 1.0:
            raise ValidationError("judge parameters need 0 <= rel_floor < rel_full <= 1")
        reliabilities = (self.newcomer_reliability, self.newcomer_floor, self.max_reliability)
        if (
            not all(0.5 <= r < 1.0 for r in reliabilities)
            or self.newcomer_floor > self.newcomer_reliability
            or self.newcomer_floor > self.max_reliability
        ):
            raise ValidationError(
                "judge parameters need reliabilities in [0.5, 1), the floor at most the prior and"
                " at most max_reliability (below it, no informer could ever be bought)"
            )
        if not isinstance(self.newcomer_credit, int) or self.newcomer_credit < 1:
            raise ValidationError("judge parameters need newcomer_credit, a whole number of notes, >= 1")


DEFAULTS = LocalJudgeParams()
FITTED = ("rel_floor", "rel_full")


def as_dict(params: LocalJudgeParams) -> dict[str, Any]:
    return asdict(params)


def from_dict(data: dict[str, Any]) -> LocalJudgeParams:
    """Parameters from a stored row; unknown keys are ignored, missing ones take the defaults."""
    known = {f.name for f in fields(LocalJudgeParams)}
    return replace(DEFAULTS, **{k: v for k, v in data.items() if k in known})


def with_changes(params: LocalJudgeParams, changes: dict[str, str]) -> LocalJudgeParams:
    """``params`` with some values replaced, from text (``judge set newcomer_credit=5``): each key
    must name a parameter and each value parse as its type; the result is validated as a whole."""
    kinds = {f.name: f.type for f in fields(LocalJudgeParams)}
    parsed: dict[str, Any] = {}
    for key, text in changes.items():
        if key not in kinds:
            raise ValidationError(f"no judge parameter {key!r}; known: {', '.join(sorted(kinds))}")
        whole = kinds[key] == "int"  # field types are strings here (postponed annotations)
        try:
            parsed[key] = int(text) if whole else float(text)
            if not math.isfinite(parsed[key]):
                raise ValueError(text)
        except ValueError:
            kind = "a whole number" if whole else "a number"
            raise ValidationError(f"{key} must be {kind}, not {text!r}") from None
    return replace(params, **parsed)


@dataclass(frozen=True)
class Stored:
    params: LocalJudgeParams
    source: str  # "community", "database" or "built-in"
    fitted_on: str = ""
    fit_report: dict[str, Any] | None = None
    row_id: int = 0


def stored(db: Database, community_id: int | None) -> Stored:
    """The parameters in force for a community: its own, else the database's, else the built-in."""
    row = db.execute(
        "SELECT id, community_id, params, fitted_on, fit_report FROM judge_params"
        " WHERE community_id IS ? OR community_id IS NULL ORDER BY community_id IS NULL LIMIT 1",
        [community_id],
    ).fetchone()
    if row is None:
        return Stored(DEFAULTS, "built-in")
    source = "database" if row[1] is None else "community"
    return Stored(from_dict(json.loads(row[2])), source, row[3], json.loads(row[4]), int(row[0]))


def store(
    db: Database,
    community_id: int | None,
    params: LocalJudgeParams,
    *,
    fitted_on: str,
    fit_report: dict[str, Any],
) -> None:
    """Replace the community's (or the database's) parameters, in one transaction."""
    with write(db):
        db.execute("DELETE FROM judge_params WHERE community_id IS ?", [community_id])
        db.execute(
            "INSERT INTO judge_params (community_id, params, fitted_on, fit_report, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [community_id, json.dumps(as_dict(params)), fitted_on[:200], json.dumps(fit_report), time.time()],
        )


def _passage_vectors(embedder: Any, texts: Sequence[str]) -> list[np.ndarray]:
    """Each text's passage vectors, embedded in one batch."""
    from notebazaar.index.passages import split_passages

    split = split_passages(embedder, texts)
    vectors = embedder.encode([p for ps in split for p in ps])
    rows = np.cumsum([0] + [len(ps) for ps in split])
    return [vectors[rows[i] : rows[i + 1]] for i in range(len(texts))]


def fit(claims: Sequence[Any], embedder: Any, *, seed: int = 0) -> tuple[LocalJudgeParams, dict[str, Any]]:
    """Fit ``rel_floor`` and ``rel_full`` on labelled claims (see the module docstring)."""
    from sklearn.metrics import roc_auc_score

    if len(claims) < 2:
        raise ValidationError("fitting needs at least two claims (off-topic evidence comes from others)")
    items = [(i, ev) for i, c in enumerate(claims) for ev in c.evidence]
    deciding = [j for j, (_, ev) in enumerate(items) if ev.stance != "irrelevant"]
    if not deciding:
        raise ValidationError("the claims hold no supporting or refuting evidence to fit on")
    posts = embedder.encode([c.post for c in claims])
    passages = _passage_vectors(embedder, [ev.text for _, ev in items])  # each item embedded once
    pos = np.array([float((passages[j] @ posts[items[j][0]]).max()) for j in deciding])
    rng = random.Random(seed)
    neg_list = []
    for i in range(len(claims)):
        for _ in range(NEGATIVES):
            j = rng.randrange(len(items))
            if items[j][0] != i:
                neg_list.append(float((passages[j] @ posts[i]).max()))
    neg = np.array(neg_list)
    floor = float(np.quantile(neg, FLOOR_QUANTILE))
    full = max(float(np.quantile(pos, FULL_QUANTILE)), floor + MIN_RAMP)
    params = replace(DEFAULTS, rel_floor=round(floor, 3), rel_full=round(min(1.0, full), 3))

    def q(values: np.ndarray) -> dict[str, float]:
        return {
            f"q{int(k * 100)}": round(float(np.quantile(values, k)), 3) for k in (0.1, 0.25, 0.5, 0.75, 0.9)
        }

    report = {
        "claims": len(claims),
        "deciding_evidence": len(pos),
        "off_topic_samples": len(neg),
        "deciding_similarity": q(pos),
        "off_topic_similarity": q(neg),
        "auc_deciding_vs_off_topic": round(
            float(roc_auc_score([1] * len(pos) + [0] * len(neg), np.concatenate([pos, neg]))), 3
        ),
        "rule": f"rel_floor = q{int(FLOOR_QUANTILE * 100)} of off-topic similarity,"
        f" rel_full = q{int(FULL_QUANTILE * 100)} of deciding-evidence similarity",
    }
    return params, report
