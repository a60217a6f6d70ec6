"""The judge's interface. A judge reads one sealed note at a time, in a fresh context, and reports
a reader's P(post is misleading) before and after it. It never decides: the purchase rule lives in
:mod:`notebazaar.pipeline.rules`.

A judge must be amnesic: ``inspect`` may not keep anything about the note after it returns (no
cache keyed by content, no conversation history, no log of the note or of the model's words).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class TrackRecord:
    """An informer's judged notes: revealed notes with a verdict and offers the judge read and did
    not buy on resolved posts, right or wrong (:mod:`notebazaar.pipeline.records` has the rule), and
    offers a sub-market discredited (counted in ``wrong``; ``discredited`` says how many of the
    wrong ones are these)."""

    right: int = 0
    wrong: int = 0
    discredited: int = 0

    @property
    def reliability(self) -> float:
        """Posterior mean of P(right) under a Beta(1, 1) prior (0.5 for a newcomer)."""
        return (self.right + 1) / (self.right + self.wrong + 2)

    @property
    def stranger(self) -> bool:
        """No judged note yet: the informer is a stranger, trusted only on the community's credit
        (:mod:`notebazaar.pipeline.credit`)."""
        return self.right + self.wrong == 0


@dataclass(frozen=True)
class NoteView:
    """A note under inspection (plaintext, in memory only) or one already bought."""

    offer_id: int
    informer_id: int
    classification: str
    text: str
    sources: tuple[str, ...] = ()
    price: int = 0
    track: TrackRecord = TrackRecord()

    def __repr__(self) -> str:  # keep note text out of logs and tracebacks
        return f"NoteView(offer_id={self.offer_id}, text=<{len(self.text)} chars>)"


@dataclass(frozen=True)
class PostView:
    """What the judge judges: a post, or, in a sub-market, an offer's note on its post.

    ``about`` is set for a sub-market's subject: the note in question (with its informer's track
    record), whose "misleading" then means "unreliable". ``text`` is then the post followed by the
    note, so neither the text nor ``about`` may reach a log: the repr shows only sizes.
    """

    id: int
    community_id: int
    text: str
    platform: str = "cli"
    about: NoteView | None = None

    def __repr__(self) -> str:
        about = f", about={self.about!r}" if self.about is not None else ""
        return f"PostView(id={self.id}, text=<{len(self.text)} chars>{about})"


@dataclass(frozen=True)
class Context:
    """What the judge may read besides the note: notes already bought in this market."""

    bought: tuple[NoteView, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """What a judge reports about one note. ``no_weight`` is set when the judge read the note and
    gives it no weight for a reason of its own (a reason code, e.g. ``contradicts_classification``):
    the offer is then not bought and the code is recorded as the decision's reason. That is a
    judgement, not a failure (failures raise :class:`JudgeError`). ``p_after`` is then what the note
    would have moved a reader to, recorded with the inspection so that its author's record can
    count it once the post resolves; a judge that read no direction in it leaves ``p_before``."""

    p_before: float
    p_after: float
    rationale: str = ""
    span: str = ""
    tokens: int = 0
    extra: dict[str, float] = field(default_factory=dict)
    no_weight: str = ""


class JudgeError(Exception):
    """The judge could not inspect a note (or read a post's prior). The offer is not bought;
    ``reason`` is recorded (as ``judge_error:<reason>``), and ``tokens`` says what the failed call
    spent when the server answered at all."""

    def __init__(self, reason: str, tokens: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tokens = tokens


class Judge(Protocol):
    """A judge. It may also define ``prepare(post, notes)`` and ``forget()``: settlement calls them
    around one market's inspections, so a judge can batch work (the embedded judge embeds all of a
    market's notes at once) and must drop whatever ``prepare`` computed in ``forget``. It may define
    ``catch_up()``, work to do between markets (the embedded judge indexes the notes just revealed),
    which :func:`notebazaar.pipeline.settlement.close_due` calls after closing markets, so a close
    does not wait for it. A judge whose ``inspect`` is arithmetic in memory (no model call, no
    network) may set ``quick = True``: settlement then records all of a market's inspections in
    one transaction (:mod:`notebazaar.pipeline.settlement`)."""

    name: str

    def prior(self, post: PostView, context: Context) -> float:
        """A reader's P(misleading) from the post alone (and any notes already bought). May raise
        :class:`JudgeError`: settlement then starts from 0.5 and records the reason."""
        ...

    def inspect(self, post: PostView, context: Context, note: NoteView, p_before: float) -> Verdict:
        """P(misleading) after reading ``note``, starting from ``p_before``."""
        ...
