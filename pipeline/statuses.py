"""Storing the bridging scorer's statuses, and what follows from them.

:func:`store` writes one ``note_statuses`` row per revealed top-level note (with the time it was
computed) and a ``note_status_history`` row whenever a note's status changes (its first status
included), then, in the same transaction:

- a note that became *not helpful* is hidden on every surface: ``reveals.unpublished_at`` and the
  reason are set (the web and the API stop showing it, the outbox no longer hands it out, the
  judge's retrieval forgets it), its delivered platform messages are queued for editing or removal
  (``outbox.takedown = 'pending'``, done by the bots), and the audit log records it;
- a note still *needs more ratings*, on a post no moderator resolved, is hidden the same way, with
  its own reason, once its author's track record (just recounted from these statuses) says so: rule 8 of
  :mod:`notebazaar.pipeline.rules`, ``[bridging] hide_undecided_author_wrong``. Like any hidden
  note it can no longer be rated; a held price is paid when its hold ends, as for any note readers
  did not reject (the rule judges the author, not the note);
- held payments are settled (:mod:`notebazaar.pipeline.holds`).

Track records read these statuses (:mod:`notebazaar.pipeline.records`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlite_utils import Database

from notebazaar.pipeline import credit, holds, outbox, records, rules
from notebazaar.pipeline.community import audit
from notebazaar.pipeline.db import write

Scored = Mapping[int, tuple[str, float | None, float | None, int]]


def hide_reason(intercept: float | None, factor: float | None, ratings: int) -> str:
    return (
        "readers rated it not helpful"
        f" (bridging score {intercept if intercept is not None else float('nan'):+.2f},"
        f" lean {factor if factor is not None else float('nan'):+.2f}, {ratings} ratings)"
    )


def author_reason(right: int, wrong: int, ratings: int) -> str:
    return (
        f"its author's track record has more wrong notes than right ({right} right, {wrong} wrong),"
        f" and readers have not decided this one ({ratings} ratings)"
    )


def store(db: Database, scored: Scored, *, now: float, report: Any, author_wrong: int) -> None:
    """Write statuses for every revealed top-level note (unrated ones need more ratings), keep
    the history, hide notes readers rejected and undecided notes their authors' records no longer
    vouch for (``author_wrong``: rule 8's threshold), and settle held payments. One transaction."""
    with write(db):
        reveals = db.execute(
            "SELECT r.id, r.unpublished_at, p.community_id, r.informer_id, p.resolution IS NOT NULL"
            " FROM reveals r JOIN markets m ON m.id = r.market_id JOIN posts p ON p.id = r.post_id"
            " WHERE m.parent_offer_id IS NULL"
        ).fetchall()
        previous = dict(db.execute("SELECT reveal_id, status FROM note_statuses").fetchall())
        rows, history, rejected, undecided = [], [], [], []
        final: dict[int, str] = {}
        for reveal_id, unpublished_at, community_id, informer_id, resolved in reveals:
            status, intercept, factor, ratings = scored.get(
                int(reveal_id), ("needs_more_ratings", None, None, 0)
            )
            final[int(reveal_id)] = status
            rows.append((reveal_id, status, intercept, factor, ratings, now))
            if previous.get(reveal_id) != status:
                history.append((reveal_id, previous.get(reveal_id), status, intercept, factor, ratings, now))
            if unpublished_at is not None:
                continue
            if status == "not_helpful":
                rejected.append(
                    (
                        int(reveal_id),
                        int(community_id),
                        hide_reason(intercept, factor, ratings),
                        {"intercept": intercept, "factor": factor, "ratings": ratings},
                    )
                )
            elif status == "needs_more_ratings" and not resolved:  # a resolution decides the note
                undecided.append((int(reveal_id), int(community_id), int(informer_id), int(ratings)))
        db.conn.executemany(
            "INSERT INTO note_statuses (reveal_id, status, intercept, factor, ratings, scored_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (reveal_id) DO UPDATE SET status = excluded.status,"
            " intercept = excluded.intercept, factor = excluded.factor, ratings = excluded.ratings,"
            " scored_at = excluded.scored_at",
            rows,
        )
        db.conn.executemany(
            "INSERT INTO note_status_history (reveal_id, previous_status, status, intercept, factor, ratings,"
            " changed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            history,
        )
        for reveal_id, *_ in history:  # a status is an input of its note's track-record verdict
            records.recount_note(db, int(reveal_id))
        on_record = _on_authors_record(db, undecided, author_wrong)  # after the recount: rule 8
        for reveal_id, community_id, reason, detail in rejected + on_record:
            hide(db, reveal_id, community_id, reason, now=now, detail=detail)
        paid, returned = holds.settle(db, final, now)
    report.notes = len(rows)
    report.changed = len(history)
    report.helpful = sum(1 for s in final.values() if s == "helpful")
    report.not_helpful = sum(1 for s in final.values() if s == "not_helpful")
    report.hidden = [r[0] for r in rejected]
    report.hidden_for_author = [r[0] for r in on_record]
    report.holds_paid, report.holds_returned = paid, returned


Hide = tuple[int, int, str, dict[str, Any]]  # reveal id, community id, reason, audit detail


def _on_authors_record(
    db: Database, undecided: list[tuple[int, int, int, int]], author_wrong: int
) -> list[Hide]:
    """Of the shown undecided notes (reveal id, community id, informer id, ratings), those their
    authors' track records hide (rule 8), each author's record read once."""
    if author_wrong <= 0:
        return []
    tracks = {informer: records.track_record(db, informer) for _, _, informer, _ in undecided}
    return [
        (
            reveal_id,
            community_id,
            author_reason(tracks[informer].right, tracks[informer].wrong, ratings),
            {
                "rule": "author_record",
                "right": tracks[informer].right,
                "wrong": tracks[informer].wrong,
                "ratings": ratings,
            },
        )
        for reveal_id, community_id, informer, ratings in undecided
        if rules.hides_undecided(tracks[informer].right, tracks[informer].wrong, author_wrong)
    ]


def hide(
    db: Database, reveal_id: int, community_id: int, reason: str, *, now: float, detail: dict[str, Any]
) -> None:
    """Hide a revealed note on every surface, for readers (their verdict on it, or on its author's
    other notes), and audit it."""
    with write(db):
        db.execute(
            "UPDATE reveals SET unpublished_at = ?, unpublish_reason = ?, hidden_by = 'readers'"
            " WHERE id = ? AND unpublished_at IS NULL",
            [now, reason, reveal_id],
        )
        db.execute("DELETE FROM documents WHERE kind = 'reveal' AND ref_id = ?", [reveal_id])
        credit.review(db, reveal_id)
        outbox.flag_takedown(db, reveal_id, reason)
        audit(db, None, "note.hide", f"reveal:{reveal_id}", {"reason": reason, **detail}, community_id)


def status_of(db: Database, reveal_id: int) -> dict[str, Any] | None:
    row = db.execute(
        "SELECT status, intercept, factor, ratings, scored_at FROM note_statuses WHERE reveal_id = ?",
        [reveal_id],
    ).fetchone()
    if row is None:
        return None
    return dict(zip(("status", "intercept", "factor", "ratings", "scored_at"), row, strict=True))


def history_of(db: Database, reveal_id: int) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in db.query(
            "SELECT previous_status, status, intercept, factor, ratings, changed_at FROM note_status_history"
            " WHERE reveal_id = ? ORDER BY id",
            [reveal_id],
        )
    ]
