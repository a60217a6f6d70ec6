"""Opening the database: pragmas, migrations, and write transactions.

Why these pragmas: WAL lets the web app read while the worker settles; ``foreign_keys`` is off by
default in SQLite; ``secure_delete`` makes SQLite overwrite deleted content, so a destroyed offer key
or ciphertext does not linger in free pages (plaintext of a sealed note is never written at all).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from notebazaar.pipeline.migrations import migrations


def open_db(path: str | Path, *, migrate: bool = True) -> sqlite_utils.Database:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date."""
    path = Path(path)
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False, isolation_level=None)
    db = sqlite_utils.Database(conn, strict=True)
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA busy_timeout = 30000")
    db.execute("PRAGMA secure_delete = ON")
    if str(path) != ":memory:":
        db.enable_wal()
    db.execute("PRAGMA synchronous = NORMAL")
    if migrate:
        migrations.apply(db)
    return db


@contextlib.contextmanager
def write(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """An atomic write transaction, taking the write lock up front (``BEGIN IMMEDIATE``).

    Taking the lock at the start avoids the deadlock two deferred transactions reach when both try to
    upgrade to writers. Nested calls become savepoints, through sqlite-utils' ``atomic()``.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.rollback()
        raise
    else:
        try:
            db.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise


def checkpoint(db: sqlite_utils.Database) -> None:
    """Fold the WAL into the database file and truncate it, so old page images do not linger."""
    with contextlib.suppress(sqlite3.OperationalError):
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
