"""Opening the database: pragmas, migrations, and write transactions.

This is the one module that knows the database is SQLite at the connection level (the pragmas, WAL,
``BEGIN IMMEDIATE`` as the write lock, ``secure_delete``, the checkpoint that clears a deleted row's
old page images out of the WAL, and the change marker the retriever polls); moving state to
PostgreSQL starts here (docs/scaling.md lists what else assumes SQLite: the SQL dialect of the
queries, and the market keys kept beside the database file, :mod:`notebazaar.pipeline.market_keys`).

Why these pragmas: WAL lets the web app read while the worker settles; ``foreign_keys`` is off by
default in SQLite; ``secure_delete`` makes SQLite overwrite deleted content, so a destroyed offer key
or ciphertext does not linger in free pages (plaintext of a sealed note is never written at all).
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlite_utils

from notebazaar.pipeline.errors import StorageError
from notebazaar.pipeline.migrations import migrations


def open_db(
    path: str | Path, *, migrate: bool = True, must_exist: bool = False, read_only: bool = False
) -> sqlite_utils.Database:
    """Open the database at ``path`` and bring its schema up to date.

    It is created if missing, unless ``must_exist`` (for commands that only read: a mistyped path
    must not become an empty database that reads as "ok"). ``read_only`` opens it for reading
    only (SQLite's ``mode=ro``): no WAL switch, no migrations, so a database on read-only storage
    can still be read. A database written by a newer notebazaar (migrations this code does not
    know) is refused either way. Every problem is a :class:`StorageError` naming it.
    """
    path = Path(path)
    memory = str(path) == ":memory:"
    if not memory:
        if (must_exist or read_only) and not path.is_file():
            raise StorageError(f"no database at {path}: check the --db path")
        if not read_only:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create the folder {path.parent}: {exc.strerror}") from None
    target = f"file:{quote(str(path.resolve()))}?mode=ro" if read_only and not memory else str(path)
    try:
        conn = sqlite3.connect(
            target, timeout=30.0, check_same_thread=False, isolation_level=None, uri=read_only and not memory
        )
    except sqlite3.Error as exc:
        raise StorageError(describe(path, exc)) from None
    try:
        db = sqlite_utils.Database(conn, strict=True)
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA busy_timeout = 30000")
        db.execute("PRAGMA secure_delete = ON")
        if not memory and not read_only:
            db.enable_wal()
        db.execute("PRAGMA synchronous = NORMAL")
        if migrate or read_only:  # migrate=False: the caller's process checked it at start-up
            _check_schema(db, path, apply=migrate and not read_only)
    except sqlite3.Error as exc:
        conn.close()
        raise StorageError(describe(path, exc)) from None
    except StorageError:
        conn.close()
        raise
    return db


def _check_schema(db: sqlite_utils.Database, path: Path, *, apply: bool) -> None:
    """Refuse a schema from a newer notebazaar; apply pending migrations if ``apply``."""
    unknown = [m.name for m in migrations.applied(db) if m.name not in _known_migrations()]
    if unknown:
        raise StorageError(
            f"{path} was written by a newer notebazaar (schema {', '.join(unknown)}, which this version"
            " does not know): upgrade notebazaar to use it"
        )
    if apply:
        pending = {m.name for m in migrations.pending(db)}
        migrations.apply(db)
        if WRAP_MIGRATION in pending and str(path) != ":memory:":
            checkpoint(db)  # the clear keys' old pages out of the WAL and the file (m100)


def _nearly_full(path: Path) -> bool:
    """Whether the database's file system has (almost) no room left: SQLite reports a write that
    ran out of space in its WAL or shared memory as a plain I/O error."""
    try:
        return shutil.disk_usage(path.resolve().parent).free < 1024 * 1024
    except OSError:
        return False


WRAP_MIGRATION = "m100_wrap_offer_keys"


@functools.cache
def _known_migrations() -> frozenset[str]:
    """Every migration this code defines (all of them are pending on an empty database)."""
    return frozenset(m.name for m in migrations.pending(sqlite_utils.Database(memory=True)))


def describe(path: str | Path, exc: sqlite3.Error) -> str:
    """One line naming what SQLite's error means for the database at ``path``."""
    name = getattr(exc, "sqlite_errorname", "")
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "malformed" in str(exc):
        return f"{path} is not a notebazaar database, or it is damaged ({exc})"
    if name == "SQLITE_FULL" or (name.startswith("SQLITE_IOERR") and _nearly_full(Path(path))):
        return f"cannot write {path}: the disk or the database is full ({exc}); nothing was changed"
    if name.startswith("SQLITE_IOERR"):
        return f"cannot read or write {path}: the storage failed ({exc}, {name})"
    if name.startswith("SQLITE_READONLY"):
        return f"{path} is read-only: this command writes, so it cannot run on it ({exc})"
    if name.startswith("SQLITE_CANTOPEN"):
        return f"cannot open {path} ({exc})"
    if name in ("SQLITE_BUSY", "SQLITE_LOCKED"):
        return f"{path} is locked by another process for too long ({exc}); try again"
    return f"database {path}: {exc}"


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
