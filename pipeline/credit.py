"""Trust on credit: the strangers' notes a community has bought and nobody has reviewed yet.

The embedded judge cannot read which way a note points, so the trust it gives a stranger (an
informer with no track record) is a bet that the community will check the note later: a
moderator's resolution of its post, or its readers' ratings. Until then the community is exposed to
that stranger. The exposure is bounded: a community holds at most ``newcomer_credit`` strangers'
notes awaiting review at once (:class:`notebazaar.pipeline.judge.params.LocalJudgeParams`); past
that, the embedded judge gives a stranger's note no weight, with the reason code
:data:`NEWCOMER_CREDIT`, and settlement refunds its attention charge (the informer could not know).
Informers with a record are weighed by it as before. Why: a community where nothing is ever
reviewed cannot tell right strangers from wrong ones, and buying them anyway leaves its readers
worse off than no notes (``simulate --resolution none``); one where reviews come keeps hearing from
strangers, as fast as it reviews them.

A note is *on credit* from its reveal, when its author had no record then, until it is
*reviewed*: its post resolved, or it has as many ratings as the bridging scorer needs before any
status (:data:`REVIEW_RATINGS`), or it was hidden. Only notes on posts count (sub-notes classify
an offer, and readers do not review them). The set is kept in ``credit_notes`` (migration m090) and
changes in the transactions that change those inputs: :func:`extend` from settlement's purchase,
:func:`review` from :func:`notebazaar.pipeline.records.recount_note` (resolutions, ratings,
statuses), from moderation's unpublish and from readers' hiding. Reading it is one indexed count,
whatever the community's size.
"""

from __future__ import annotations

from sqlite_utils import Database

from notebazaar.pipeline.config import BridgingSettings

NEWCOMER_CREDIT = "newcomer_credit"
REVIEW_RATINGS = BridgingSettings().min_ratings  # the scorer's default minimum before any status


def extend(db: Database, reveal_id: int, community_id: int, *, now: float) -> None:
    """Put a stranger's just-revealed note on credit (unless it is already reviewed: a post resolved
    while its market was settling). Call inside the transaction that reveals it."""
    db.execute(
        "INSERT OR IGNORE INTO credit_notes (reveal_id, community_id, opened_at) VALUES (?, ?, ?)",
        [reveal_id, community_id, now],
    )
    review(db, reveal_id)


def review(db: Database, reveal_id: int) -> None:
    """Take a note off credit if it has been reviewed (its post resolved, enough ratings, hidden).
    Idempotent; call inside the transaction that changed one of those."""
    db.execute(
        "DELETE FROM credit_notes WHERE reveal_id = ? AND EXISTS (SELECT 1 FROM reveals r"
        " JOIN posts p ON p.id = r.post_id WHERE r.id = credit_notes.reveal_id"
        " AND (p.resolution IS NOT NULL OR r.unpublished_at IS NOT NULL"
        " OR (SELECT COUNT(*) FROM ratings g WHERE g.reveal_id = r.id) >= ?))",
        [reveal_id, REVIEW_RATINGS],
    )


def outstanding(db: Database, community_id: int) -> int:
    """The community's strangers' notes awaiting review."""
    return int(
        db.execute("SELECT COUNT(*) FROM credit_notes WHERE community_id = ?", [community_id]).fetchone()[0]
    )
