"""The bot's small persistent memory (table ``bot_state``): stream positions, processed messages,
wiki revisions. Values are JSON, so one helper reads and writes them all.

Why in the database: a restart must neither miss nor repeat work, and a value written in the same
transaction as a market change (an offer and the message it came from) can never disagree with it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlite_utils import Database

from notebazaar.pipeline.db import write

PREFIX = "reddit:"


def get_state(db: Database, key: str) -> Any:
    """The JSON value stored under ``reddit:<key>``, or None."""
    row = db.execute("SELECT value FROM bot_state WHERE key = ?", [PREFIX + key]).fetchone()
    return None if row is None else json.loads(row[0])


def set_state(db: Database, key: str, value: Any) -> None:
    """Store ``value`` under ``reddit:<key>`` (joins the caller's transaction if there is one)."""
    with write(db):
        db.execute(
            "INSERT INTO bot_state (key, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            [PREFIX + key, json.dumps(value, sort_keys=True), time.time()],
        )


def delete_state(db: Database, key: str) -> None:
    """Forget ``reddit:<key>`` (``secure_delete`` overwrites the freed bytes)."""
    with write(db):
        db.execute("DELETE FROM bot_state WHERE key = ?", [PREFIX + key])


def states_with_prefix(db: Database, prefix: str) -> list[tuple[str, Any]]:
    """Every ``(key, value)`` whose key starts with ``reddit:<prefix>``, in key order (a range scan
    of the primary key, not a scan of the whole table)."""
    low = PREFIX + prefix
    high = low[:-1] + chr(ord(low[-1]) + 1)
    rows = db.execute(
        "SELECT key, value FROM bot_state WHERE key >= ? AND key < ? ORDER BY key", [low, high]
    ).fetchall()
    return [(str(k)[len(PREFIX) :], json.loads(v)) for k, v in rows]
