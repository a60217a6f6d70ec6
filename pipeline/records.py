"""Track records: what the market remembers about each informer, and about a community's informers.

The judges weigh a note by its author's record (:attr:`notebazaar.pipeline.judge.TrackRecord.reliability`);
this module is the one place that says what counts as a right or a wrong note. A revealed note on a
post's own market counts once it has a verdict:

- **A moderator's resolution overrides** (``notebazaar post resolve``; the simulator's label with
  ``--resolution label``): on a resolved post a note is *right* when its classification matches
  the resolution and readers did not reject it, and *wrong* otherwise. Readers reject a note when
  its bridging status is *not helpful*, or, while it has no helpful / not-helpful status yet, when
  more of its ratings are *not helpful* than anything else (a note can be "right" yet decide
  nothing). A bridging status of *helpful* never rescues a note whose classification the
  resolution contradicts.
- **Otherwise the bridging status decides** (:mod:`notebazaar.pipeline.bridging`, stored in
  ``note_statuses``): *helpful* is right, *not helpful* is wrong, *needs more ratings* does not
  count yet. This is the market's truth in production, where posts resolve only when a moderator
  says so.
- An offer a sub-market *discredited* counts as wrong for its informer (not for the community):
  see :func:`track_record`.
- Sub-notes (revealed from sub-markets) classify an offer, not the post: they never count.
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from notebazaar.pipeline import rules
from notebazaar.pipeline.judge import TrackRecord

# Readers rejected the note: bridging status not helpful, or, without a helpful / not-helpful
# status, a majority of not-helpful ratings.
_REJECTED = (
    "(COALESCE(s.status, '') = 'not_helpful'"
    " OR (COALESCE(s.status, 'needs_more_ratings') = 'needs_more_ratings'"
    " AND COALESCE((SELECT SUM(g.level = 'not_helpful') > SUM(g.level != 'not_helpful')"
    " FROM ratings g WHERE g.reveal_id = r.id), 0)))"
)
# A moderator's resolution overrides; otherwise the bridging status decides (module docstring).
_COUNTED = "(p.resolution IS NOT NULL OR s.status IN ('helpful', 'not_helpful'))"
_RIGHT = (
    f"(CASE WHEN p.resolution IS NOT NULL THEN r.classification = p.resolution AND NOT {_REJECTED}"
    " ELSE COALESCE(s.status, '') = 'helpful' END)"
)


def _record(db: Database, where: str, params: list[Any]) -> TrackRecord:
    # Sub-notes (revealed from sub-markets) classify an offer, not the post: they do not count.
    row = db.execute(
        f"SELECT COALESCE(SUM({_RIGHT}), 0), COALESCE(SUM(NOT ({_RIGHT})), 0)"
        " FROM reveals r JOIN posts p ON p.id = r.post_id"
        " JOIN markets m ON m.id = r.market_id AND m.parent_offer_id IS NULL"
        " LEFT JOIN note_statuses s ON s.reveal_id = r.id"
        f" WHERE {_COUNTED} AND {where}",
        params,
    ).fetchone()
    return TrackRecord(int(row[0]), int(row[1]))


def discredited_offers(db: Database, informer_id: int) -> int:
    """The informer's offers on posts whose sub-market learned they are more likely unreliable
    than not (distrust 1: :func:`notebazaar.pipeline.rules.distrust`)."""
    return int(
        db.execute(
            "SELECT COUNT(*) FROM offers o JOIN markets s ON s.parent_offer_id = o.id"
            " JOIN markets m ON m.id = o.market_id AND m.parent_offer_id IS NULL"
            " WHERE o.informer_id = ? AND s.status = 'settled' AND s.belief >= ? AND s.belief > s.prior",
            [informer_id, rules.DISCREDITED],
        ).fetchone()[0]
    )


def track_record(db: Database, informer_id: int) -> TrackRecord:
    """Right and wrong among the informer's revealed notes with a verdict; its offers that
    sub-markets discredited count as wrong too.

    A discredited offer's note is shredded, so the post's resolution can never check it; the
    judgement is what the market learned about the informer, and forgetting it with the note would
    let a liar whom sub-markets keep catching stay a trusted newcomer for ever. Only the count is
    kept."""
    record = _record(db, "r.informer_id = ?", [informer_id])
    discredited = discredited_offers(db, informer_id)
    return TrackRecord(record.right, record.wrong + discredited, discredited)


def community_track_record(db: Database, community_id: int) -> TrackRecord:
    """Right and wrong among all the community's revealed notes with a verdict: the prior for a
    newcomer's reliability.

    Verdicts only (resolutions and readers' statuses), without discredits: those are the judge's own
    judgements, and letting them lower the trust the judge gives every newcomer is a feedback loop.
    A few early ones can leave it trusting nobody, and a judge that buys nothing learns nothing, so
    it never recovers."""
    return _record(db, "p.community_id = ?", [community_id])
