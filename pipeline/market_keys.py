"""Market keys: one key per post's market tree that wraps every offer key in it, kept off the database.

Why: the database runs in WAL mode, so every page that ever held an offer key is first written to
the WAL, and deleting the key later appends a new image of the page without erasing the old one.
Until this module, settlement checkpointed and truncated the WAL after every market (``PRAGMA
wal_checkpoint(TRUNCATE)``) so that a shredded key's old page did not linger: two fsyncs and a copy
of every page the market wrote, the costliest statement of a bench market after its commits
(``tools/sql_census.py``, issue 18).

Now an offer key never reaches the database in the clear. :func:`wrap` wraps it (AES key wrap,
RFC 3394, from ``cryptography``) under the *market key* of the offer's post: 32 random bytes in a
file of its own beside the database (``<database>-post-<post id>.key``, mode 0600), shared by the
post's market and its sub-markets (they all end when the post's market settles). ``offer_keys``
holds the 40-byte wrapped key. When the post's market is settled (or cancelled), :func:`destroy`
deletes the file, and every wrapped key of that tree, in the database or in a stale WAL frame, can
never be unwrapped again: a shredded note stays unreadable without a checkpoint. (Deleting a file,
like truncating the WAL before, frees its blocks on the disk without overwriting them.) An offer
shredded while its market is still open (withdrawn, banned) is unreadable through the database at
once, and through old WAL frames once the market settles, as it was with the checkpoint.

A file the process could not delete (it died between the settlement's commit and the deletion) is
deleted by :func:`sweep`, at the start of every pass of the worker (``close_due``), or by closing
that market again. A close that shreds notes but does not settle the post's market (it paused on a
sub-market, or it was a sub-market's) still checkpoints the WAL, since the market key that could
open their old pages lives on. Offer keys an older notebazaar stored in
the clear (32 bytes) are wrapped on upgrade (migration ``m100_wrap_offer_keys``, then one
checkpoint); one found in the clear all the same is read as it is. A database in memory has no WAL:
its market keys live in memory, with the database object.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
import weakref
from pathlib import Path

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from sqlite_utils import Database

from notebazaar.pipeline.errors import StorageError
from notebazaar.pipeline.sealing import Unreadable

KEY_BYTES = 32
CLEAR_KEY_BYTES = 32  # an offer key stored unwrapped (before market keys)
SUFFIX = ".key"
STRAY_SECONDS = 60  # a temporary file older than this was left by a process that died writing it
# A market key with no market yet may belong to a transaction still open (a bot adds the post, opens
# its market and seals the offer in one); one this old was left by a transaction that never committed.
ORPHAN_SECONDS = 3600

_files: weakref.WeakKeyDictionary[Database, Path | None] = weakref.WeakKeyDictionary()
_in_memory: weakref.WeakKeyDictionary[Database, dict[int, bytes]] = weakref.WeakKeyDictionary()


def _database_file(db: Database) -> Path | None:
    """The database's file, or None for a database in memory (asked of SQLite once per object).
    Resolved, so processes that opened it by different paths (a link) find the same keys."""
    if db not in _files:
        main = next((row[2] for row in db.execute("PRAGMA database_list") if row[1] == "main"), "")
        _files[db] = Path(main).resolve() if main else None
    return _files[db]


def key_file(db: Database, post_id: int) -> Path | None:
    """Where the market key of ``post_id``'s markets is kept (None for a database in memory)."""
    base = _database_file(db)
    return None if base is None else base.with_name(f"{base.name}-post-{int(post_id)}{SUFFIX}")


def _load(db: Database, post_id: int, *, create: bool) -> bytes | None:
    path = key_file(db, post_id)
    if path is None:
        keys = _in_memory.setdefault(db, {})
        if create and post_id not in keys:
            keys[post_id] = secrets.token_bytes(KEY_BYTES)
        return keys.get(post_id)
    try:
        found = path.read_bytes()
    except FileNotFoundError:
        if not create:
            return None
        return _create(path)
    except OSError as exc:
        raise StorageError(f"cannot read the market key {path.name}: {exc.strerror}") from None
    return found if len(found) == KEY_BYTES else None


def _create(path: Path) -> bytes:
    """Write a new market key durably, then give it its name in one step (``link`` fails if it
    exists), so no process ever reads a half-written key."""
    temporary = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the name, too, survives a power cut once the offer is committed
        finally:
            os.close(folder)
        return path.read_bytes()
    except OSError as exc:
        raise StorageError(f"cannot write the market key {path.name}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def wrap(db: Database, post_id: int, key: bytes) -> bytes:
    """``key`` wrapped under the market key of ``post_id`` (created if this is the post's first
    offer). Call inside the transaction that stores the offer, after checking its market is open."""
    market_key = _load(db, post_id, create=True)
    if market_key is None:
        path = key_file(db, post_id)
        raise StorageError(f"the market key {path.name if path else post_id} is damaged")
    return aes_key_wrap(market_key, key)


def load(db: Database, post_id: int) -> bytes | None:
    """The market key of ``post_id``, or None when it is gone (destroyed, or never written). A
    close reads it once for all its offers; drop it when the close ends."""
    return _load(db, post_id, create=False)


def unwrap(db: Database, post_id: int, stored: bytes) -> bytes | None:
    """The offer key in ``stored``, or None when the post's market key is gone. Raises
    :class:`Unreadable` when ``stored`` was damaged."""
    if len(stored) == CLEAR_KEY_BYTES:
        return bytes(stored)
    return unwrap_with(load(db, post_id), stored)


def unwrap_with(market_key: bytes | None, stored: bytes) -> bytes | None:
    """:func:`unwrap` with the market key already read (:func:`load`)."""
    if len(stored) == CLEAR_KEY_BYTES:
        return bytes(stored)
    if market_key is None:
        return None
    try:
        return aes_key_unwrap(market_key, bytes(stored))
    except (InvalidUnwrap, ValueError):
        raise Unreadable("the offer's key cannot be unwrapped") from None


def destroy(db: Database, post_id: int) -> None:
    """Delete the market key of ``post_id``: every offer key wrapped under it is gone for good.
    Call once the post's market is settled, after the commit."""
    path = key_file(db, post_id)
    if path is None:
        _in_memory.get(db, {}).pop(post_id, None)
        return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def sweep(db: Database) -> list[int]:
    """Delete the market keys whose post's market is settled or gone (a process that died before
    :func:`destroy`), and stray temporary files. Returns the posts whose key it deleted."""
    base = _database_file(db)
    if base is None:
        return []
    prefix = f"{base.name}-post-"
    swept = []
    try:
        names = [p.name for p in base.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return []
    for name in names:
        post = name[len(prefix) :].split(".", 1)[0]
        if name.endswith(".tmp") or not post.isdigit():
            _delete_if_older(base.parent / name, STRAY_SECONDS)  # not one being written now
            continue
        row = db.execute(
            "SELECT status FROM markets WHERE post_id = ? AND parent_offer_id IS NULL", [int(post)]
        ).fetchone()
        if row is not None and row[0] == "settled":
            destroy(db, int(post))
            swept.append(int(post))
        elif row is None and _delete_if_older(base.parent / name, ORPHAN_SECONDS):
            swept.append(int(post))
    return swept


def _delete_if_older(path: Path, seconds: float) -> bool:
    with contextlib.suppress(OSError):
        if time.time() - path.stat().st_mtime > seconds:
            path.unlink()
            return True
    return False
