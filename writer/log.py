"""The writer's own log, in its own state folder: every note it offered, the salt that proves it
wrote it, the choice it made, and the reward the market gave.

Never in the market's database: the market keeps no text of an unbought note, and must not. The
writer keeps its notes here and joins them to the market's reward rows by offer id, checking the
commitment the market holds against the one it recomputes from its own note and salt.

SQLite through sqlite-utils (one file, ``writer.db``, atomic writes); the simulator uses an
in-memory log of the same shape. The bandit's state is not stored apart: it is rebuilt from the
rewarded rows in offer order (:meth:`WriterLog.rewarded`), so the log and the model never disagree.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from notebazaar.pipeline.sealing import NoteContent, commitment

LOG_FILE = "writer.db"
CLOCK_ALLOWANCE = 3600.0  # seconds


class StateError(Exception):
    """The state folder belongs to another server or account, or its log is damaged."""


class WriterLog:
    """The log of one writer. ``folder=None`` keeps it in memory (the simulator)."""

    def __init__(self, folder: Path | None) -> None:
        if folder is None:
            self.db = Database(memory=True)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            self.db = Database(folder / LOG_FILE)
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS notes (offer_id INTEGER PRIMARY KEY, market_id INTEGER NOT NULL,"
            " post_id INTEGER NOT NULL, post_text TEXT NOT NULL, commitment TEXT NOT NULL,"
            " salt TEXT NOT NULL,"
            " classification TEXT NOT NULL, text TEXT NOT NULL, sources TEXT NOT NULL, bid INTEGER NOT NULL,"
            " price INTEGER NOT NULL, arm TEXT NOT NULL, features TEXT NOT NULL, source_id TEXT NOT NULL,"
            " offered_at REAL NOT NULL, outcome TEXT, status TEXT, paid INTEGER, charged INTEGER,"
            " reward INTEGER, rewarded_at REAL)"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def close(self) -> None:
        self.db.close()

    def bind(self, key: str, value: str) -> None:
        """Tie the folder to one server and account: a second writer's state never mixes in."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        if row is None:
            with self.db.conn:
                self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", [key, value])
        elif row[0] != value:
            raise StateError(f"this state folder belongs to {key} {row[0]!r}, not {value!r}")

    def record(
        self,
        *,
        receipt: dict[str, Any],
        market: Any,
        choice: Any,
        now: float | None = None,
    ) -> None:
        """Log an offer the market accepted. Its commitment must open with our note and salt."""
        content = NoteContent(choice.arm.classification, choice.candidate.text, choice.candidate.sources)
        if commitment(content, str(receipt["salt"])) != receipt["commitment"]:
            raise StateError(f"offer {receipt['offer_id']}: the receipt's commitment is not of our note")
        with self.db.conn:
            self.db["notes"].insert(
                {
                    "offer_id": int(receipt["offer_id"]),
                    "market_id": market.market_id,
                    "post_id": market.post_id,
                    "post_text": market.post_text,
                    "commitment": receipt["commitment"],
                    "salt": receipt["salt"],
                    "classification": choice.arm.classification,
                    "text": choice.candidate.text,
                    "sources": json.dumps(list(choice.candidate.sources)),
                    "bid": choice.bid,
                    "price": choice.price,
                    "arm": json.dumps(choice.arm.as_dict()),
                    "features": json.dumps(list(choice.features)),
                    "source_id": choice.candidate.source_id,
                    "offered_at": time.time() if now is None else now,
                }
            )

    def offered_markets(self) -> set[int]:
        return {int(r[0]) for r in self.db.execute("SELECT DISTINCT market_id FROM notes")}

    def pending_since(self) -> float | None:
        """A time before the oldest offer still without a final reward (None: nothing pending), for
        ``GET /api/me/rewards?since=``. The market stamps offers by its own clock, a little before our
        receipt came back and perhaps on a machine whose clock is off: an hour's allowance covers both.
        Rewards that change later (a bought note's status) are caught by the runner's full read every
        few rounds (:data:`notebazaar.writer.runner.FULL_READ_EVERY`)."""
        row = self.db.execute("SELECT MIN(offered_at) FROM notes WHERE rewarded_at IS NULL").fetchone()
        return None if row[0] is None else float(row[0]) - CLOCK_ALLOWANCE

    def apply(self, rows: list[dict[str, Any]], *, now: float | None = None) -> int:
        """Take the market's reward rows for our offers; returns how many rewards are new or changed.

        A row counts only once its outcome is final; a reward can change later (a bought note gets
        a bridging status), and the log keeps the latest."""
        changed = 0
        now = time.time() if now is None else now
        with self.db.conn:
            for row in rows:
                if not row.get("final"):
                    continue
                known = self.db.execute(
                    "SELECT commitment, reward, status FROM notes WHERE offer_id = ?", [row["offer_id"]]
                ).fetchone()
                if known is None:
                    continue  # not an offer this writer made (another client of the same account)
                if known[0] != row["commitment"]:
                    raise StateError(f"offer {row['offer_id']}: the market's commitment is not ours")
                if known[1] == row["reward"] and known[2] == row["status"]:
                    continue
                self.db.execute(
                    "UPDATE notes SET outcome = ?, status = ?, paid = ?, charged = ?, reward = ?,"
                    " rewarded_at = ? WHERE offer_id = ?",
                    [
                        row["outcome"],
                        row["status"],
                        row["paid"],
                        row["charged"],
                        row["reward"],
                        now,
                        row["offer_id"],
                    ],
                )
                changed += 1
        return changed

    def rewarded(self) -> Iterator[tuple[list[float], int]]:
        """(features, reward) of every rewarded offer, in offer order: the bandit's training data."""
        for features, reward in self.db.execute(
            "SELECT features, reward FROM notes WHERE reward IS NOT NULL ORDER BY offer_id"
        ):
            yield json.loads(features), int(reward)

    def notes(self) -> Iterator[dict[str, Any]]:
        """Every logged note with its reward, in offer order."""
        yield from self.db.query("SELECT * FROM notes ORDER BY offer_id")
