"""The embedded judge: deterministic, offline, no key. The default.

It models a careful reader as a Bayesian who treats a note as a noisy signal about the post.

**Before** (``prior``): the community's base rate of misleading posts among resolved posts (a
Beta(1, 1)-smoothed frequency), nudged toward the labels of the most similar resolved posts that
retrieval finds (similarity-weighted, shrunk by how much similar evidence there is). With no
history it is 0.5. In a sub-market (the subject is a note, ``post.about``) the question is whether
that note is unreliable, and the prior is the doubt its author's record leaves: ``1 - reliability``
(below), the very trust the judge gave the note at face value.

**What it reads, and what it cannot.** It does not read stance: which way a note points comes
from its author's classification, never from its text, so a relevant note classified the wrong
way moves readers the wrong way (the simulator's ``mislabeler`` measures exactly that). It reads
relevance, corroboration and records, and trusts a stranger only as far as the community's
strangers have proved right.

**Passages.** The model reads 256 word pieces of a text; a note, a post or a source longer than
that is read as passages that each fit (:mod:`notebazaar.index.passages`), and scores by its
best passage, so evidence buried in a long page still counts.

**After** (``inspect``): the note's classification says which way to move; how far is a
log-likelihood ratio built from three things the judge can check without the note's author:

- *relevance*: cosine similarity to the post of what the note adds (the note less any runs of
  four or more words quoted from the post), mapped linearly from ``rel_floor``
  (unrelated: no weight) to ``rel_full`` (squarely on topic: full weight), and back down to zero
  between ``echo_start`` and ``echo_full`` (a note that restates the post tells a reader nothing);
- *reliability*: the informer's record of revealed notes and of offers read and not bought on
  resolved posts (and of offers that sub-markets discredited, as wrong notes:
  :func:`notebazaar.pipeline.records.track_record`),
  shrunk toward the record of the community's newcomers (each informer's first revealed note:
  :func:`notebazaar.pipeline.records.newcomer_track_record`, itself shrunk toward the cautious
  ``newcomer_reliability``), so a stranger is trusted as far as strangers have proved right and a
  proven liar not at all; the weight is ``log(r / (1 - r))``, floored at zero, so a note can only
  push toward its own classification. An informer whose record leaves it *less* reliable than a
  stranger is trusted (``newcomer_floor``) is not bought at any price (reason
  ``record_below_stranger``): a cheap enough note of a source right 60% of the time always beats its
  price under the KL rule, and readers would see its wrong notes four times in ten. What the note
  would have moved the reader to at a stranger's trust is still recorded, so its post's resolution
  counts it and the record can recover (:func:`notebazaar.pipeline.records.inspection_verdict`);
- *support*: corroboration by the trusted reference corpus or by notes revealed earlier — a close
  match to a reference passage, or to a revealed note that turned out right, strengthens the note;
  a close match to a revealed note that turned out wrong weakens it.

``logit(p_after) = logit(p_before) ± relevance × max(0, log(r / (1 - r))) × (1 + support)``

**Trust on credit.** A stranger's trust is a bet that the community will check the note later, so
it is bounded: while ``newcomer_credit`` strangers' notes (default 2) await review (their post
unresolved, fewer ratings than the bridging scorer needs, still shown), a note from an informer
with no record gets no weight (reason ``newcomer_credit``; settlement refunds its attention
charge). :mod:`notebazaar.pipeline.credit` keeps the count. A community that reviews its notes
keeps hearing from strangers as fast as it reviews them; one where nothing is ever reviewed stops
trusting strangers after two notes instead of buying coin flips for ever.

Injection defence: the note is sanitised (invisible characters stripped) and any note holding
instruction-like text ("ignore previous instructions", fake JSON answers, fake delimiters, role
play) gets no weight at all, so it can never be worth more than an irrelevant note at the same
price. Amnesia: vectors of a market's notes live only between :meth:`prepare` and :meth:`forget`,
which settlement calls around the market's inspections; nothing is cached across markets.

Parameters: the community's own (``notebazaar judge fit --community``), else the database's, else
the built-in defaults (:mod:`notebazaar.pipeline.judge.params`), read once per market.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlite_utils import Database

from notebazaar.index.passages import split_passages
from notebazaar.pipeline import credit
from notebazaar.pipeline.judge import Context, NoteView, PostView, TrackRecord, Verdict
from notebazaar.pipeline.judge.params import LocalJudgeParams, stored
from notebazaar.pipeline.judge.spotlight import has_instructions, sanitize
from notebazaar.pipeline.records import newcomer_track_record, resolved_posts
from notebazaar.pipeline.rules import clamp, logit

__all__ = ["RECORD_BELOW_STRANGER", "LocalJudge", "LocalJudgeParams", "residual"]


_WORD = re.compile(r"\w+", re.UNICODE)
_QUOTE_RUN = 4  # words in a row shared with the post that count as quoting it
RECORD_BELOW_STRANGER = "record_below_stranger"  # the reason code of a note from such an informer
SUPPORT_PASSAGES = 3  # a long note's corroboration is looked up for its most relevant passages


def residual(note: str, post: str) -> str:
    """The note without the parts that quote the post (runs of 4+ words in a row found in it).

    A note is judged on what it adds: quoting the post is fine, but the quote itself is no
    evidence, and a copy of the post with filler appended must not pass for a relevant note.
    """
    post_words = [w.lower() for w in _WORD.findall(post)]
    grams = {tuple(post_words[i : i + _QUOTE_RUN]) for i in range(len(post_words) - _QUOTE_RUN + 1)}
    matches = list(_WORD.finditer(note))
    words = [m.group().lower() for m in matches]
    quoted = [False] * len(words)
    for i in range(len(words) - _QUOTE_RUN + 1):
        if tuple(words[i : i + _QUOTE_RUN]) in grams:
            for j in range(i, i + _QUOTE_RUN):
                quoted[j] = True
    if not any(quoted):
        return note
    pieces, start = [], 0
    for m, q in zip(matches, quoted, strict=True):
        if q:
            pieces.append(note[start : m.start()])
            start = m.end()
    pieces.append(note[start:])
    return re.sub(r"\s+", " ", "".join(pieces)).strip()


def _topics(post: PostView) -> list[str]:
    """What a note may be about: the post; in a sub-market, the post or the note in question, each
    on its own (a sub-note may expose the note's source, or bring evidence on the post that the
    note contradicts: either bears on whether the note is reliable)."""
    if post.about is None:
        return [post.text]
    on_post = post.text.removesuffix(post.about.text).rstrip()
    return [on_post or post.text, post.about.text]


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


class LocalJudge:
    name = "local"
    quick = True  # inspect() is arithmetic on what prepare() embedded (a note it was not given is
    # embedded then): settlement records a close's inspections in one transaction

    def __init__(self, db: Database, retriever: Any, params: LocalJudgeParams | None = None) -> None:
        self.db = db
        self.retriever = retriever
        self._fixed = params  # given: used for every community (tests, experiments)
        self.params = params or LocalJudgeParams()
        self._vectors: dict[int, np.ndarray] = {}
        self._post_vector: tuple[int, np.ndarray] | None = None
        self._topic_vectors: tuple[int, np.ndarray] | None = None
        self._community_record: tuple[int, TrackRecord] | None = None

    # --- per-market scope -------------------------------------------------------------------

    def _load_params(self, community_id: int) -> LocalJudgeParams:
        """The community's parameters (one query per market, never per offer)."""
        if self._fixed is None:
            self.params = stored(self.db, community_id).params
        return self.params

    def _passages(self, texts: list[str]) -> list[list[str]]:
        return split_passages(self.retriever.embedder, texts)

    def prepare(self, post: PostView, notes: Sequence[NoteView]) -> None:
        """Embed the post and this market's inspected notes, passage by passage, in one batch."""
        self._load_params(post.community_id)
        extra = _topics(post) if post.about is not None else []  # a post is its own topic
        residuals = [residual(sanitize(n.text), post.text) or "." for n in notes]
        split = self._passages([post.text, *extra, *residuals])
        # New index rows (the post's own, say) and these passages in one call to the model;
        # inspections then skip the index's freshness check. The passages are embedded in memory only.
        vectors = self.retriever.refresh([p for ps in split for p in ps])
        rows = np.cumsum([0] + [len(ps) for ps in split])
        self._post_vector = (post.id, vectors[0])  # the post's opening passage: the retrieval key
        topics = slice(rows[1], rows[1 + len(extra)]) if extra else slice(0, rows[1])
        self._topic_vectors = (post.id, vectors[topics])
        # Records change only when posts resolve, never during one market's inspections.
        self._community_record = (post.community_id, newcomer_track_record(self.db, post.community_id))
        first = 1 + len(extra)
        self._vectors = {
            n.offer_id: vectors[rows[first + i] : rows[first + i + 1]] for i, n in enumerate(notes)
        }

    def catch_up(self) -> None:
        """Index the documents written since the last search (notes just revealed), between markets:
        the worker calls this after settling, so the next close does not wait for it."""
        self.retriever.refresh()

    def forget(self) -> None:
        """Drop every vector of this market's notes."""
        for vector in self._vectors.values():
            vector.fill(0.0)
        self._vectors = {}
        self._post_vector = None
        self._topic_vectors = None
        self._community_record = None

    # --- the reader model -------------------------------------------------------------------

    def _post_vec(self, post: PostView) -> np.ndarray:
        if self._post_vector is None or self._post_vector[0] != post.id:
            self._post_vector = (post.id, self.retriever.embedder.encode([post.text])[0])
        return self._post_vector[1]

    def _base_rate(self, community_id: int) -> float:
        misleading, resolved = resolved_posts(self.db, community_id)  # a maintained counter
        return (misleading + 1) / (resolved + 2)

    def prior(self, post: PostView, context: Context) -> float:
        p = self._load_params(post.community_id)
        if post.about is not None:  # a sub-market: doubt about the note, from its author's record
            return clamp(1 - self.reliability(post.about, post.community_id))
        base = self._base_rate(post.community_id)
        hits = self.retriever.search_vector(
            self._post_vec(post), k=p.knn_k + 1, kinds=("post",), community_id=post.community_id
        )
        ids = [h.ref_id for h in hits if h.ref_id != post.id and h.score >= p.knn_min_score]
        if not ids:
            return clamp(base)
        labels = dict(
            self.db.execute(
                f"SELECT id, resolution FROM posts WHERE resolution IS NOT NULL"
                f" AND id IN ({','.join('?' * len(ids))})",
                ids,
            ).fetchall()
        )
        weighted = [(h.score, labels[h.ref_id] == "misleading") for h in hits if h.ref_id in labels]
        if not weighted:
            return clamp(base)
        total = sum(w for w, _ in weighted)
        knn = (sum(w for w, y in weighted if y) + base) / (total + 1)
        share = p.knn_weight * total / (total + 2)
        return clamp(_sigmoid((1 - share) * logit(base) + share * logit(knn)))

    def newcomer_reliability(self, community_id: int) -> float:
        """The trust a stranger gets: the community's newcomers' record, shrunk toward the
        cautious ``newcomer_reliability`` (all of it, before any newcomer's note resolved), and
        never below ``newcomer_floor``: strangers' first wrong notes lower it, but never to where no
        note is worth a price and the market, buying nothing, can learn nothing."""
        p = self.params
        cached = self._community_record
        if cached is not None and cached[0] == community_id:
            record = cached[1]
        else:
            record = newcomer_track_record(self.db, community_id)
        right, wrong = record.right, record.wrong
        estimate = (right + p.prior_strength * p.newcomer_reliability) / (right + wrong + p.prior_strength)
        return max(p.newcomer_floor, estimate)

    def _credit_used(self, post: PostView, note: NoteView) -> bool:
        """Whether this is a stranger's note on a post whose community has used up its trust on
        credit (:mod:`notebazaar.pipeline.credit`). Sub-markets weigh a note, not a post: no credit."""
        if post.about is not None or not note.track.stranger:
            return False
        return credit.outstanding(self.db, post.community_id) >= self.params.newcomer_credit

    def reliability(self, note: NoteView, community_id: int) -> float:
        p = self.params
        stranger = self.newcomer_reliability(community_id)
        own = note.track
        if own.stranger:  # exactly a stranger's trust (the shrinkage below would round it)
            return min(p.max_reliability, stranger)
        r = (own.right + p.informer_shrinkage * stranger) / (own.right + own.wrong + p.informer_shrinkage)
        return min(p.max_reliability, r)

    def _topic_vecs(self, post: PostView) -> np.ndarray:
        if self._topic_vectors is None or self._topic_vectors[0] != post.id:
            split = self._passages(_topics(post))
            self._topic_vectors = (post.id, self.retriever.embedder.encode([x for ps in split for x in ps]))
        return self._topic_vectors[1]

    def _relevance(self, vectors: np.ndarray, post: PostView) -> tuple[float, np.ndarray]:
        """The note's best passage: on topic for at least one thing the note may be about, and an
        echo of none of them (a passage that restates the post scores nothing, whatever else the
        note says). Returns the relevance and the passages in order of it, best first."""
        p = self.params
        similarity = (self._topic_vecs(post) @ vectors.T).max(axis=0)  # each passage's closest topic
        on_topic = (similarity - p.rel_floor) / (p.rel_full - p.rel_floor)
        news = (p.echo_full - similarity) / (p.echo_full - p.echo_start)
        scores = np.clip(np.minimum(on_topic, news), 0.0, 1.0)
        order = np.argsort(-scores, kind="stable")
        return float(scores[order[0]]), vectors[order]

    def _support(self, vectors: np.ndarray, post: PostView) -> float:
        """+1 for corroboration of one of the note's most relevant passages, -1 for echoing a note
        that proved wrong, 0 otherwise."""
        p = self.params
        hits = [
            hit
            for vector in vectors[:SUPPORT_PASSAGES]
            for hit in self.retriever.search_vector(
                vector, k=3, kinds=("reference", "reveal"), community_id=post.community_id, refresh=False
            )
            if hit.score >= p.support_threshold
        ]
        best = 1.0 if any(hit.kind == "reference" for hit in hits) else 0.0
        revealed = sorted({hit.ref_id for hit in hits if hit.kind == "reveal"})
        if revealed:  # the notes echoed, as their posts resolved: one query for all of them
            for classification, resolution in self.db.execute(
                "SELECT r.classification, p.resolution FROM reveals r JOIN posts p ON p.id = r.post_id"
                f" WHERE r.id IN ({','.join('?' * len(revealed))}) AND r.unpublished_at IS NULL"
                " AND p.resolution IS NOT NULL",
                revealed,
            ):
                if classification != resolution:
                    return -1.0
                best = 1.0
        return best

    def inspect(self, post: PostView, context: Context, note: NoteView, p_before: float) -> Verdict:
        if has_instructions(note.text) or any(has_instructions(s) for s in note.sources):
            return Verdict(p_before, p_before, rationale="instruction-like text: no weight")
        added = residual(sanitize(note.text), post.text)
        if not _WORD.search(added):
            return Verdict(p_before, p_before, rationale="the note only restates the post: no weight")
        if self._credit_used(post, note):  # after the checks of content, which cost their charge
            return Verdict(
                p_before,
                p_before,
                rationale=f"a stranger; {self.params.newcomer_credit} strangers' notes await review",
                no_weight=credit.NEWCOMER_CREDIT,
            )
        vectors = self._vectors.get(note.offer_id)
        if vectors is None:
            vectors = self.retriever.embedder.encode(self._passages([added])[0])
        relevance, ranked = self._relevance(vectors, post)
        r = self.reliability(note, post.community_id)
        support = self._support(ranked, post) if relevance > 0 else 0.0
        direction = 1.0 if note.classification == "misleading" else -1.0

        def read_at(trust: float) -> float:
            weight = relevance * max(0.0, math.log(trust / (1 - trust))) * max(0.0, 1 + 0.5 * support)
            return clamp(_sigmoid(logit(p_before) + direction * weight))

        extra = {"relevance": relevance, "reliability": r, "support": support}
        rationale = f"relevance {relevance:.2f}, reliability {r:.2f}, support {support:+.0f}"
        if r < self.params.newcomer_floor:
            # Proven less reliable than the least a stranger is trusted: not bought, whatever its
            # price. What it would move a reader to at that trust is recorded (settlement keeps a
            # no-weight verdict's p_after), so its post's resolution counts it and the record can
            # recover, however low it fell.
            return Verdict(
                p_before,
                read_at(self.params.newcomer_floor),
                rationale=f"{rationale}: a record worse than a stranger's",
                extra=extra,
                no_weight=RECORD_BELOW_STRANGER,
            )
        return Verdict(p_before, read_at(r), rationale=rationale, extra=extra)
