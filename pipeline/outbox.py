"""The reveal outbox: what each surface still has to post, and what it already posted.

Settlement queues one row per revealed note for the post's platform. A surface delivers pending
rows and marks each delivered with the platform's id for the message, so a restarted bot never
posts a note twice. Unpublished notes are never handed out.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from sqlite_utils import Database

from notebazaar.pipeline.db import write


@dataclass(frozen=True)
class PendingReveal:
    outbox_id: int
    reveal_id: int
    post_id: int
    post_platform: str
    post_external_id: str
    post_url: str | None
    classification: str
    text: str
    sources: tuple[str, ...]
    informer: str
    price: int
    attempts: int


def pending(db: Database, surface: str, *, limit: int = 50) -> list[PendingReveal]:
    rows = db.execute(
        "SELECT o.id, r.id, p.id, p.platform, p.external_id, p.url, r.classification, r.text,"
        " r.sources, a.handle, r.price, o.attempts"
        " FROM outbox o JOIN reveals r ON r.id = o.reveal_id JOIN posts p ON p.id = r.post_id"
        " JOIN accounts a ON a.id = r.informer_id"
        " WHERE o.surface = ? AND o.status = 'pending' AND r.unpublished_at IS NULL"
        " ORDER BY o.id LIMIT ?",
        [surface, limit],
    ).fetchall()
    return [
        PendingReveal(
            outbox_id=r[0],
            reveal_id=r[1],
            post_id=r[2],
            post_platform=r[3],
            post_external_id=r[4],
            post_url=r[5],
            classification=r[6],
            text=r[7],
            sources=tuple(json.loads(r[8])),
            informer=r[9],
            price=r[10],
            attempts=r[11],
        )
        for r in rows
    ]


def mark_delivered(db: Database, outbox_id: int, external_id: str | None = None) -> None:
    with write(db):
        db.execute(
            "UPDATE outbox SET status = 'delivered', delivered_at = ?, external_id = ?,"
            " attempts = attempts + 1 WHERE id = ?",
            [time.time(), external_id, outbox_id],
        )


def mark_failed(db: Database, outbox_id: int, error: str, *, max_attempts: int = 5) -> None:
    """Record a failed delivery; after ``max_attempts`` the row stops being retried."""
    with write(db):
        db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?,"
            " status = CASE WHEN attempts + 1 >= ? THEN 'failed' ELSE 'pending' END WHERE id = ?",
            [error[:500], max_attempts, outbox_id],
        )


def delivered_external_id(db: Database, reveal_id: int, surface: str) -> str | None:
    row = db.execute(
        "SELECT external_id FROM outbox WHERE reveal_id = ? AND surface = ? AND status = 'delivered'",
        [reveal_id, surface],
    ).fetchone()
    return row[0] if row else None


@dataclass(frozen=True)
class PendingTakedown:
    """A delivered note that was hidden since: its platform message is to be edited or removed."""

    outbox_id: int
    reveal_id: int
    external_id: str
    reason: str


def pending_takedowns(db: Database, surface: str, *, limit: int = 50) -> list[PendingTakedown]:
    rows = db.execute(
        "SELECT id, reveal_id, external_id, COALESCE(takedown_reason, '') FROM outbox"
        " WHERE surface = ? AND takedown = 'pending' AND external_id IS NOT NULL ORDER BY id LIMIT ?",
        [surface, limit],
    ).fetchall()
    return [PendingTakedown(int(r[0]), int(r[1]), str(r[2]), str(r[3])) for r in rows]


def mark_taken_down(db: Database, outbox_id: int, *, failed: bool = False) -> None:
    """The platform message was edited or removed (or can never be: ``failed``)."""
    with write(db):
        db.execute("UPDATE outbox SET takedown = ? WHERE id = ?", ["failed" if failed else "done", outbox_id])


def reveal_for_message(db: Database, surface: str, external_id: str) -> int | None:
    """The revealed note a surface posted as this platform message, if any."""
    row = db.execute(
        "SELECT reveal_id FROM outbox WHERE surface = ? AND external_id = ? AND status = 'delivered'",
        [surface, external_id],
    ).fetchone()
    return int(row[0]) if row else None
