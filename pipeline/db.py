"""Opening the database: pragmas, migrations, and write transactions.

This is the one module that knows the database is SQLite at the connection level (the pragmas, WAL,
``BEGIN IMMEDIATE`` as the write lock, ``secure_delete`` and the checkpoint that keep shredded keys
off the disk, and the change marker the retriever polls); moving state to PostgreSQL starts here
(docs/scaling.md lists what else assumes SQLite: the SQL dialect of the queries).

Why these pragmas: WAL lets the web app read while the worker settles; ``foreign_keys`` is off by
default in SQLite; ``secure_delete`` makes SQLite overwrite deleted content, so a destroyed offer key
or ciphertext does not linger in free pages (plaintext of a sealed note is never written at all).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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


def rows(db: sqlite_utils.Database, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The rows of a SELECT as dicts, in one statement (``Database.query`` wraps every read in a
    savepoint: three statements where the market's hot path needs one)."""
    cursor = db.execute(sql, list(params))
    keys = [d[0] for d in cursor.description]
    return [dict(zip(keys, r, strict=True)) for r in cursor.fetchall()]


def one_row(db: sqlite_utils.Database, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
    """The first row of a SELECT as a dict, or None."""
    cursor = db.execute(sql, list(params))
    found = cursor.fetchone()
    return None if found is None else dict(zip([d[0] for d in cursor.description], found, strict=True))


def change_marker(db: sqlite_utils.Database) -> tuple[int, int]:
    """A value that changes whenever anything was written to the database: other connections'
    commits (``PRAGMA data_version``) and this connection's own writes (``total_changes``). The
    retriever compares it before each search to skip its freshness check when nothing changed."""
    version = int(db.execute("PRAGMA data_version").fetchone()[0])
    return version, int(db.conn.total_changes)


def checkpoint(db: sqlite_utils.Database) -> None:
    """Fold the WAL into the database file and truncate it, so old page images do not linger."""
    with contextlib.suppress(sqlite3.OperationalError):
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
