"""Track records: what the market remembers about each informer, and about a community's informers.

The judges weigh a note by its author's record (:attr:`notebazaar.pipeline.judge.TrackRecord.reliability`);
this module is the one place that says what counts as a right or a wrong note.

- A revealed note on a resolved post is *right* when its classification matches the post's
  resolution and readers did not rate it unhelpful by a majority (a note can be "right" yet decide
  nothing); otherwise it is *wrong*.
- An offer a sub-market *discredited* counts as wrong for its informer (not for the community):
  see :func:`track_record`.
- Sub-notes (revealed from sub-markets) classify an offer, not the post: they never count.
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from notebazaar.pipeline import rules
from notebazaar.pipeline.judge import TrackRecord

# A revealed note on a resolved post was right when its classification matched the resolution and
# readers did not rate it unhelpful by a majority (a note can be "right" yet decide nothing).
_RIGHT = (
    "r.classification = p.resolution AND NOT COALESCE("
    "(SELECT SUM(1 - g.helpful) > SUM(g.helpful) FROM ratings g WHERE g.reveal_id = r.id), 0)"
)


def _record(db: Database, where: str, params: list[Any]) -> TrackRecord:
    # Sub-notes (revealed from sub-markets) classify an offer, not the post: they do not count.
    row = db.execute(
        f"SELECT COALESCE(SUM({_RIGHT}), 0), COALESCE(SUM(NOT ({_RIGHT})), 0)"
        " FROM reveals r JOIN posts p ON p.id = r.post_id"
        " JOIN markets m ON m.id = r.market_id AND m.parent_offer_id IS NULL"
        f" WHERE p.resolution IS NOT NULL AND {where}",
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
    """Right and wrong among the informer's revealed notes on resolved posts; its offers that
    sub-markets discredited count as wrong too.

    A discredited offer's note is shredded, so the post's resolution can never check it; the
    judgement is what the market learned about the informer, and forgetting it with the note would
    let a liar whom sub-markets keep catching stay a trusted newcomer for ever. Only the count is
    kept."""
    record = _record(db, "r.informer_id = ?", [informer_id])
    discredited = discredited_offers(db, informer_id)
    return TrackRecord(record.right, record.wrong + discredited, discredited)


def community_track_record(db: Database, community_id: int) -> TrackRecord:
    """Right and wrong among all revealed notes on the community's resolved posts: the prior for a
    newcomer's reliability.

    Ground truth only, without discredits: those are the judge's own judgements, and letting them
    lower the trust the judge gives every newcomer is a feedback loop. A few early ones can leave it
    trusting nobody, and a judge that buys nothing learns nothing, so it never recovers."""
    return _record(db, "p.community_id = ?", [community_id])


# An informer's first revealed note in a community (top-level markets only): written while its
# author had no record there yet.
_FIRST_NOTE = (
    "r.id = (SELECT MIN(f.id) FROM reveals f JOIN markets fm ON fm.id = f.market_id"
    " AND fm.parent_offer_id IS NULL JOIN posts fp ON fp.id = f.post_id"
    " WHERE f.informer_id = r.informer_id AND fp.community_id = p.community_id)"
)


def newcomer_track_record(db: Database, community_id: int) -> TrackRecord:
    """Right and wrong among the first revealed note of each informer in the community, on
    resolved posts: how far the community's newcomers have proved trustworthy.

    The embedded judge starts an informer without a record of its own here, not at the community's
    overall record: established informers' notes say nothing about a stranger, and an account made
    for one offer (a mislabeler's, say) is a stranger every time. Ground truth only, like the
    community's record."""
    return _record(db, f"p.community_id = ? AND {_FIRST_NOTE}", [community_id])
