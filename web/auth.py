"""Accounts on the web: password hashing, sign-up, login, CSRF tokens and API bearer tokens.

Why these choices: argon2-cffi is the maintained argon2 binding (memory-hard, salted, with
``check_needs_rehash``); sessions are Starlette's signed cookies (itsdangerous), so the server keeps
no session table; API tokens are 256-bit random strings, so a plain SHA-256 of the token is enough
to store (only the hash is kept; the token is shown once).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlite_utils import Database

from notebazaar.pipeline import community
from notebazaar.pipeline.db import write
from notebazaar.pipeline.errors import Forbidden, NotFound, ValidationError
from notebazaar.pipeline.validation import check_text

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 256
TOKEN_PREFIX = "nb_"

_hasher = PasswordHasher()


def _check_password(password: Any) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise ValidationError(f"the password must be at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValidationError(f"the password must be at most {MAX_PASSWORD_CHARS} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(_check_password(password))


def sign_up(db: Database, handle: str, password: str, community_slug: str, *, grant: int) -> int:
    """Create an account that reads and informs in one community, with a sign-up grant of credits.

    The password is checked before anything is written, so a refused sign-up changes nothing.
    """
    password_hash = hash_password(password)
    com = community.get_community(db, community_slug)
    with write(db):
        account_id = community.create_account(db, handle, password_hash=password_hash)
        community.grant(db, account_id, com.id, "reader")
        community.grant(db, account_id, com.id, "informer")
        if grant > 0:
            community.mint(db, account_id, grant, key=f"web:signup-grant:{account_id}")
    return account_id


def log_in(db: Database, handle: str, password: str) -> int:
    """The account id for a correct handle and password; one vague message for any failure."""
    refused = Forbidden("wrong handle or password")
    try:
        account = community.get_account(db, handle)
    except (NotFound, ValidationError):
        raise refused from None
    stored = account["password_hash"]
    if not stored or not isinstance(password, str):
        raise refused
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        raise refused from None
    if _hasher.check_needs_rehash(stored):
        db["accounts"].update(account["id"], {"password_hash": _hasher.hash(password)})
    return int(account["id"])


def set_password(db: Database, account_id: int, password: str) -> None:
    db["accounts"].update(account_id, {"password_hash": hash_password(password)})


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


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(db: Database, account_id: int, label: str) -> str:
    """A new bearer token for ``account_id``. Only its hash is stored: show the return value once."""
    label = check_text("token label", label, max_chars=100, required=True)
    community.get_account(db, account_id)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with write(db):
        db["api_tokens"].insert(
            {
                "token_hash": _token_hash(token),
                "account_id": account_id,
                "label": label,
                "created_at": time.time(),
            }
        )
    return token


def account_for_token(db: Database, token: str) -> int | None:
    row = db.execute(
        "SELECT account_id FROM api_tokens WHERE token_hash = ?", [_token_hash(token)]
    ).fetchone()
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
