"""Accounts on the web: password hashing and checks, sign-up, login, sessions, CSRF tokens and API
bearer tokens.

Why these choices: argon2-cffi is the maintained argon2 binding (memory-hard, salted, with
``check_needs_rehash``). A login that names no real account still verifies the password against a
hash made with the same parameters, so a wrong handle costs the same time as a wrong password and
timing does not tell which handles exist. New passwords are scored by zxcvbn (Dropbox's estimator,
with its lists of the most common passwords, names and words): one it guesses in under a million
tries (score 0 or 1: "password1", "letmein!", the handle itself) is refused.

Sessions are kept on the server (table ``sessions``): the signed cookie holds only a random session
id, and only its SHA-256 is stored, so logging out or changing the password ends a session for good
and a copied cookie stops working. API tokens are 256-bit random strings, stored likewise as SHA-256
(the token is shown once).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlite_utils import Database
from zxcvbn import zxcvbn

from notebazaar.pipeline import community
from notebazaar.pipeline.db import write
from notebazaar.pipeline.errors import Forbidden, NotFound, ValidationError
from notebazaar.pipeline.validation import check_text

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 256
MIN_PASSWORD_SCORE = 2  # zxcvbn's score: 2 means "somewhat guessable", at least 10^6 guesses
_SCORED_CHARS = 72  # zxcvbn scores at most this many characters; a longer password is scored by its start
TOKEN_PREFIX = "nb_"

_hasher = PasswordHasher()
_dummy_hashes: dict[str, str] = {}


def check_new_password(password: Any, handle: str = "") -> str:
    """A password fit to set: long enough, and not one zxcvbn guesses quickly (common passwords,
    keyboard walks, dates, the handle). The message says what is wrong and what would do."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise ValidationError(f"the password must be at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValidationError(f"the password must be at most {MAX_PASSWORD_CHARS} characters")
    found = zxcvbn(password[:_SCORED_CHARS], user_inputs=[handle] if handle else None)
    if found["score"] < MIN_PASSWORD_SCORE:
        warning = found["feedback"].get("warning") or "It is too easy to guess."
        raise ValidationError(
            f"that password is too common or too easy to guess ({warning.rstrip('.')}); use a longer one,"
            " for example three or four unrelated words"
        )
    return password


def hash_password(password: str, handle: str = "") -> str:
    return _hasher.hash(check_new_password(password, handle))


def _dummy_hash() -> str:
    """A hash made with the current hasher's parameters, to verify against when there is no account."""
    params = f"{_hasher.time_cost}:{_hasher.memory_cost}:{_hasher.parallelism}:{_hasher.hash_len}"
    if params not in _dummy_hashes:
        _dummy_hashes[params] = _hasher.hash(secrets.token_urlsafe(16))
    return _dummy_hashes[params]


def sign_up(db: Database, handle: str, password: str, community_slug: str, *, grant: int) -> int:
    """Create an account that reads and informs in one community, with a sign-up grant of credits.

    The password is checked before anything is written, so a refused sign-up changes nothing.
    """
    password_hash = hash_password(password, handle if isinstance(handle, str) else "")
    com = community.get_community(db, community_slug)
    with write(db):
        account_id = community.create_account(db, handle, password_hash=password_hash)
        community.grant(db, account_id, com.id, "reader")
        community.grant(db, account_id, com.id, "informer")
        if grant > 0:
            community.mint(db, account_id, grant, key=f"web:signup-grant:{account_id}")
    return account_id


def log_in(db: Database, handle: str, password: str) -> int:
    """The account id for a correct handle and password; one vague message for any failure, after
    the same argon2 work whether or not the handle exists."""
    refused = Forbidden("wrong handle or password")
    try:
        account: dict[str, Any] | None = community.get_account(db, handle)
    except (NotFound, ValidationError):
        account = None
    return _verify(db, account, password, refused)


def _verify(db: Database, account: dict[str, Any] | None, password: Any, refused: Exception) -> int:
    stored = account["password_hash"] if account is not None else None
    if not isinstance(password, str):
        password = ""
    try:
        _hasher.verify(stored or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        raise refused from None
    if account is None or not stored:
        raise refused  # matched the dummy hash: never a login
    if _hasher.check_needs_rehash(stored):
        db["accounts"].update(account["id"], {"password_hash": _hasher.hash(password)})
    return int(account["id"])


def set_password(db: Database, account_id: int, password: str) -> int:
    """Set an account's password (checked as a new one) and end all its sessions, in one
    transaction. Returns how many sessions ended. API tokens are kept: they are revoked one by one."""
    account = community.get_account(db, account_id)
    password_hash = hash_password(password, account["handle"])
    with write(db):
        db["accounts"].update(account_id, {"password_hash": password_hash})
        return end_sessions(db, account_id)


def change_password(db: Database, account_id: int, current: str, new: str) -> int:
    """A signed-in account changes its own password, proving the current one first."""
    account = community.get_account(db, account_id)
    _verify(db, account, current, Forbidden("the current password is wrong"))
    if new == current:
        raise ValidationError("the new password is the same as the current one")
    return set_password(db, account_id, new)


# --- sessions -------------------------------------------------------------------------------------


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def start_session(db: Database, account_id: int, *, days: int, now: float | None = None) -> str:
    """A new server-side session for ``account_id``; the return value goes in the signed cookie."""
    now = time.time() if now is None else now
    session_id = secrets.token_urlsafe(32)
    with write(db):
        db.execute("DELETE FROM sessions WHERE expires_at <= ?", [now])  # keep the table small
        db["sessions"].insert(
            {
                "id_hash": _digest(session_id),
                "account_id": account_id,
                "created_at": now,
                "expires_at": now + days * 86400,
            }
        )
    return session_id


def session_account(db: Database, session_id: str, *, now: float | None = None) -> int | None:
    """The account of a live session (None once it was ended, expired, or never existed)."""
    now = time.time() if now is None else now
    row = db.execute(
        "SELECT account_id FROM sessions WHERE id_hash = ? AND expires_at > ?", [_digest(session_id), now]
    ).fetchone()
    return int(row[0]) if row else None


def end_session(db: Database, session_id: str) -> None:
    with write(db):
        db.execute("DELETE FROM sessions WHERE id_hash = ?", [_digest(session_id)])


def end_sessions(db: Database, account_id: int) -> int:
    """End every session of an account (a password change, or an operator's order)."""
    with write(db):
        return int(db.execute("DELETE FROM sessions WHERE account_id = ?", [account_id]).rowcount)


# --- CSRF -----------------------------------------------------------------------------------------


def csrf_token(session: dict[str, Any]) -> str:
    """The session's CSRF token, created on first use. Forms carry it in a hidden field."""
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return str(token)


def csrf_ok(session: dict[str, Any], submitted: str | None) -> bool:
    expected = session.get("csrf")
    return bool(expected and submitted and secrets.compare_digest(str(expected), submitted))


# --- API tokens -----------------------------------------------------------------------------------


def create_token(db: Database, account_id: int, label: str) -> str:
    """A new bearer token for ``account_id``. Only its hash is stored: show the return value once."""
    label = check_text("token label", label, max_chars=100, required=True)
    community.get_account(db, account_id)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with write(db):
        db["api_tokens"].insert(
            {
                "token_hash": _digest(token),
                "account_id": account_id,
                "label": label,
                "created_at": time.time(),
            }
        )
    return token


def account_for_token(db: Database, token: str) -> int | None:
    row = db.execute("SELECT account_id FROM api_tokens WHERE token_hash = ?", [_digest(token)]).fetchone()
    return int(row[0]) if row else None


def list_tokens(db: Database, account_id: int) -> list[dict[str, Any]]:
    """Labels and dates of an account's tokens (the tokens themselves are not recoverable)."""
    return list(
        db.query(
            "SELECT substr(token_hash, 1, 12) AS fingerprint, label, created_at FROM api_tokens"
            " WHERE account_id = ? ORDER BY created_at DESC",
            [account_id],
        )
    )


def revoke_token(db: Database, account_id: int, fingerprint: str) -> None:
    with write(db):
        cursor = db.execute(
            "DELETE FROM api_tokens WHERE account_id = ? AND substr(token_hash, 1, 12) = ?",
            [account_id, fingerprint],
        )
        if cursor.rowcount == 0:
            raise NotFound(f"no token {fingerprint!r} of yours")
