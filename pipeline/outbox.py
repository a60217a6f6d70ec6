"""The reveal outbox: what each surface still has to post, and what it already posted.

Settlement queues one row per revealed note for the post's platform. A surface delivers the rows
that are due and marks each delivered with the platform's id for the message (``external_id``, the
handle a later edit or removal of the message uses), so a restarted bot never posts a note twice.
Unpublished notes are never handed out.

Each row keeps its retry schedule in the database, so a restart keeps it:

* :func:`begin_attempt` is written *before* the platform is asked. A row with ``attempts > 0`` may
  have reached the platform already (a crash between the platform accepting the message and
  :func:`mark_delivered`), so the surface first looks for its own message there and adopts it.
* a transient failure (:func:`mark_retry`) sets ``next_attempt_at`` by exponential backoff with
  jitter (:mod:`notebazaar.pipeline.backoff`), never earlier than the platform asked; only after the
  give-up horizon is the row marked failed;
* a permanent failure (:func:`mark_failed`: the post is gone, the bot is banned) fails it at once.

Failed rows are shown to moderators (console, ``notebazaar outbox list --status failed``) and can be
queued again (:func:`retry`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from notebazaar.pipeline.backoff import Backoff
from notebazaar.pipeline.community import audit
from notebazaar.pipeline.db import write
from notebazaar.pipeline.errors import Conflict, NotFound

STATUSES = ("pending", "delivered", "failed")
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class Failure:
    """What a failed attempt means, as a platform adapter classifies it."""

    transient: bool  # worth another attempt later
    reason: str  # names and codes only, never a message body that could quote a note
    retry_after: float | None = None  # the wait the platform asked for, a floor for the backoff


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
    queued_at: float = 0.0  # when settlement queued the row: nothing was posted for it before
    last_attempt_at: float | None = None

    def __repr__(self) -> str:  # the note's text stays out of logs and tracebacks
        return f"PendingReveal(outbox_id={self.outbox_id}, reveal_id={self.reveal_id}, text=<hidden>)"


def pending(db: Database, surface: str, *, now: float | None = None, limit: int = 50) -> list[PendingReveal]:
    """The rows of ``surface`` due for an attempt at ``now``, the longest-waiting first."""
    now = time.time() if now is None else now
    rows = db.execute(
        "SELECT o.id, r.id, p.id, p.platform, p.external_id, p.url, r.classification, r.text,"
        " r.sources, a.handle, r.price, o.attempts, o.created_at, o.last_attempt_at"
        " FROM outbox o JOIN reveals r ON r.id = o.reveal_id JOIN posts p ON p.id = r.post_id"
        " JOIN accounts a ON a.id = r.informer_id"
        " WHERE o.surface = ? AND o.status = 'pending' AND r.unpublished_at IS NULL"
        " AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= ?)"
        " ORDER BY COALESCE(o.next_attempt_at, o.created_at), o.id LIMIT ?",
        [surface, now, limit],
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
            queued_at=r[12],
            last_attempt_at=r[13],
        )
        for r in rows
    ]


def begin_attempt(db: Database, outbox_id: int, *, now: float | None = None) -> None:
    """Record that an attempt starts, before the platform is asked (see the module docstring)."""
    now = time.time() if now is None else now
    with write(db):
        db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ? WHERE id = ?", [now, outbox_id]
        )


def mark_delivered(
    db: Database, outbox_id: int, external_id: str | None = None, *, now: float | None = None
) -> None:
    """The platform holds the message now; ``external_id`` is its id there."""
    now = time.time() if now is None else now
    with write(db):
        db.execute(
            "UPDATE outbox SET status = 'delivered', delivered_at = ?, external_id = ?,"
            " next_attempt_at = NULL, failing_since = NULL, last_error = NULL WHERE id = ?",
            [now, external_id, outbox_id],
        )


def mark_retry(
    db: Database,
    outbox_id: int,
    error: str,
    *,
    backoff: Backoff,
    retry_after: float | None = None,
    now: float | None = None,
) -> float | None:
    """A transient failure: schedule the next attempt; returns its time, or None when the row has
    been failing for longer than the horizon and is marked failed instead."""
    now = time.time() if now is None else now
    with write(db):
        row = db.execute("SELECT attempts, failing_since FROM outbox WHERE id = ?", [outbox_id]).fetchone()
        if row is None:
            raise NotFound(f"no outbox row {outbox_id}")
        attempts, since = int(row[0]), row[1]
        since = now if since is None else float(since)
        if backoff.gives_up(since, now):
            hours = (now - since) / 3600.0
            _fail(db, outbox_id, f"gave up after {hours:.1f} h of transient errors; last: {error}", now)
            return None
        due = now + backoff.delay(attempts, at_least=retry_after)
        db.execute(
            "UPDATE outbox SET next_attempt_at = ?, failing_since = ?, last_error = ? WHERE id = ?",
            [due, since, error[:MAX_ERROR_CHARS], outbox_id],
        )
        return due


def mark_failed(db: Database, outbox_id: int, error: str, *, now: float | None = None) -> None:
    """A permanent failure (the post is gone, the bot may not post there): no more attempts."""
    with write(db):
        _fail(db, outbox_id, error, time.time() if now is None else now)


def _fail(db: Database, outbox_id: int, error: str, now: float) -> None:
    db.execute(
        "UPDATE outbox SET status = 'failed', failed_at = ?, next_attempt_at = NULL, last_error = ?"
        " WHERE id = ?",
        [now, error[:MAX_ERROR_CHARS], outbox_id],
    )


def retry_later(
    db: Database,
    outbox_id: int,
    surface: str,
    failure: Failure,
    *,
    backoff: Backoff,
    now: float | None = None,
) -> float | None:
    """A transient failure of one row: schedule it (:func:`mark_retry`) and hold the surface's other
    rows until then (:func:`defer_surface`): the platform, not the note, is the problem. Returns the
    next attempt's time, or None when the row was given up."""
    now = time.time() if now is None else now
    with write(db):
        due = mark_retry(
            db, outbox_id, failure.reason, backoff=backoff, retry_after=failure.retry_after, now=now
        )
        if due is not None:
            defer_surface(db, surface, due, now=now)
    return due


def defer_surface(db: Database, surface: str, until: float, *, now: float | None = None) -> None:
    """Hold every pending row of ``surface`` until ``until`` (the platform is down or rate-limits
    the bot as a whole). This is not an attempt, so no row's backoff advances, but the rows are
    failing too: their give-up horizon counts from now, not from when each is first tried."""
    now = time.time() if now is None else now
    with write(db):
        db.execute(
            "UPDATE outbox SET next_attempt_at = MAX(COALESCE(next_attempt_at, 0), ?),"
            " failing_since = COALESCE(failing_since, ?) WHERE surface = ? AND status = 'pending'",
            [until, now, surface],
        )


def retry(db: Database, outbox_id: int, *, actor_id: int | None = None) -> None:
    """Queue a failed (or waiting) row for an attempt now, with a fresh give-up horizon."""
    with write(db):
        row = db.execute(
            "SELECT o.status, r.unpublished_at, m.community_id FROM outbox o"
            " JOIN reveals r ON r.id = o.reveal_id JOIN markets m ON m.id = r.market_id WHERE o.id = ?",
            [outbox_id],
        ).fetchone()
        if row is None:
            raise NotFound(f"no outbox row {outbox_id}")
        if row[0] == "delivered":
            raise Conflict(f"outbox row {outbox_id} is delivered already; there is nothing to retry")
        if row[1] is not None:
            raise Conflict(f"outbox row {outbox_id} holds an unpublished note; it is never posted")
        db.execute(
            "UPDATE outbox SET status = 'pending', next_attempt_at = NULL, failing_since = NULL,"
            " failed_at = NULL WHERE id = ?",
            [outbox_id],
        )
        audit(db, actor_id, "outbox.retry", f"outbox:{outbox_id}", {"was": row[0]}, int(row[2]))


def retry_failed(db: Database, *, actor_id: int | None = None, community_id: int | None = None) -> list[int]:
    """Queue every failed row (of one community, if given) again; returns their ids."""
    ids = [int(r["outbox_id"]) for r in rows(db, status="failed", community_id=community_id, limit=None)]
    with write(db):
        for outbox_id in ids:
            retry(db, outbox_id, actor_id=actor_id)
    return ids


def rows(
    db: Database,
    *,
    status: str | None = None,
    surface: str | None = None,
    community_id: int | None = None,
    limit: int | None = 200,
) -> list[dict[str, Any]]:
    """Outbox rows for operators and moderators: ids, schedule and errors, never a note's text."""
    where, params = ["1 = 1"], []
    for column, value in (("o.status", status), ("o.surface", surface), ("m.community_id", community_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    sql = (
        "SELECT o.id AS outbox_id, o.reveal_id, o.surface, o.status, o.attempts, o.next_attempt_at,"
        " o.last_error, o.external_id, o.created_at, o.delivered_at, o.failed_at, r.post_id,"
        " r.market_id, m.community_id, p.url AS post_url, p.external_id AS post_external_id"
        " FROM outbox o JOIN reveals r ON r.id = o.reveal_id JOIN markets m ON m.id = r.market_id"
        f" JOIN posts p ON p.id = r.post_id WHERE {' AND '.join(where)} ORDER BY o.id DESC"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return list(db.query(sql, params))


def delivered_external_id(db: Database, reveal_id: int, surface: str) -> str | None:
    """The platform's id of the message that shows a reveal, once delivered (for edits and removal)."""
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


def flag_takedown(db: Database, reveal_id: int, reason: str) -> None:
    """Mark every platform message of a note that was hidden for editing or removal (inside the
    caller's transaction). Rows still being delivered are flagged too: ``pending`` no longer lists a
    hidden note, and a delivery already under way when it was hidden is taken down as soon as its
    message exists (``pending_takedowns`` waits for ``external_id``)."""
    db.execute(
        "UPDATE outbox SET takedown = 'pending', takedown_reason = ?"
        " WHERE reveal_id = ? AND takedown IS NULL",
        [reason, reveal_id],
    )


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
