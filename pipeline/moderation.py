"""Moderator actions on published content. Each is checked for the moderator role and audited.

Bans and community settings live in :mod:`notebazaar.pipeline.community`; prompt versions in
:mod:`notebazaar.pipeline.prompts`.
"""

from __future__ import annotations

import time

from sqlite_utils import Database

from notebazaar.pipeline.community import audit, require_moderator
from notebazaar.pipeline.db import write
from notebazaar.pipeline.errors import Conflict, NotFound
from notebazaar.pipeline.validation import check_id, check_text


def unpublish(db: Database, moderator_id: int, reveal_id: int, reason: str) -> None:
    """Hide a revealed note from every surface, with a reason. The informer keeps the payment."""
    reveal_id = check_id("note id", reveal_id)
    row = db.execute(
        "SELECT r.unpublished_at, p.community_id FROM reveals r JOIN posts p ON p.id = r.post_id"
        " WHERE r.id = ?",
        [reveal_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"no revealed note {reveal_id}")
    require_moderator(db, moderator_id, int(row[1]))
    if row[0] is not None:
        raise Conflict(f"note {reveal_id} is already unpublished")
    reason = check_text("reason", reason, max_chars=500, required=True)
    with write(db):
        db.execute(
            "UPDATE reveals SET unpublished_at = ?, unpublish_reason = ?, hidden_by = 'moderator'"
            " WHERE id = ?",
            [time.time(), reason, reveal_id],
        )
        db.execute("DELETE FROM documents WHERE kind = 'reveal' AND ref_id = ?", [reveal_id])
        audit(db, moderator_id, "note.unpublish", f"reveal:{reveal_id}", {"reason": reason}, int(row[1]))


def audit_log(db: Database, community_id: int, *, limit: int = 200) -> list[dict[str, object]]:
    return list(
        db.query(
            "SELECT l.id, l.at, a.handle AS actor, l.action, l.target, l.detail FROM audit_log l"
            " LEFT JOIN accounts a ON a.id = l.actor_id WHERE l.community_id = ?"
            " ORDER BY l.id DESC LIMIT ?",
            [community_id, limit],
        )
    )
