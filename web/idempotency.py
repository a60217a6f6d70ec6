"""Client idempotency keys for the API: a retried call gets the first answer and moves nothing again.

A client sends ``Idempotency-Key: <16-255 visible characters, e.g. a random UUID>`` on any call that
changes something. The first call with a key runs, and its answer is stored **in the same
transaction** as what it changed, so a crash can never leave money moved without the answer kept
(or the other way round). A second call with the same key and the same request (method, path,
query and JSON body, compared after parsing, so key order and spacing do not matter) gets the
stored answer again, with ``Idempotent-Replayed: true``, and changes nothing. The same key with
another request is a 409. Keys belong to the account of the API token (calls without a token share
one scope), and are kept for :data:`KEEP_SECONDS`. A refused call (4xx) stores nothing: nothing
moved, so it can simply be retried.

Why the answers are encrypted: an answer can hold a receipt's salt (which the design keeps out of
the database) or a new API token. Only a SHA-256 of the key is stored, and each answer is AES-GCM
ciphertext under a key derived from the client's key (HKDF), as is the fingerprint of the request
(HMAC), so the database alone cannot read an answer or test a guess of a note against it.

How an endpoint uses it (one dependency, :data:`Idempotent`)::

    @router.post("/things", status_code=201)
    def make_thing(*, body: Thing, user: ApiUser, db: DB, once: Idempotent) -> dict[str, Any]:
        return once(lambda: {"thing_id": things.make(db, user.id, body.name)})

``once(work)`` runs ``work`` inside one write transaction on the request's connection; pipeline
calls inside it nest as savepoints. ``once(work, atomic=False)`` is for work that must not hold the
write lock (closing a market, which waits on the judge; sign-up, token requests and password
changes, which spend argon2's work): the answer is stored afterwards, so such work must be safe to
run again by itself (a second close finds the market settled; a second sign-up finds the handle
taken; none of them moves money twice).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.security import HTTPAuthorizationCredentials
from sqlite_utils import Database

from notebazaar.pipeline.db import write
from notebazaar.pipeline.errors import Conflict
from notebazaar.web import auth
from notebazaar.web.deps import DB, bearer

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEEP_SECONDS = 24 * 3600
KEY_PATTERN = r"^[\x21-\x7e]{16,255}$"
ANONYMOUS = 0  # the scope of calls made without an API token (sign-up, token requests)


class Replayed(Exception):  # not an error: the app answers with the stored answer
    """The stored answer to a repeated call; the app sends it back as it was."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _derived_key(key: str, salt: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"notebazaar idempotency").derive(
        key.encode("ascii")
    )


def _key_hash(scope: int, key: str) -> str:
    return hashlib.sha256(f"{scope}\x00{key}".encode("ascii")).hexdigest()


def _fingerprint(derived: bytes, request: bytes) -> str:
    return hmac.new(derived, request, hashlib.sha256).hexdigest()


@dataclass
class Once:
    """Runs an endpoint's work at most once per idempotency key (see the module docstring)."""

    db: Database
    scope: int
    key: str | None
    request: bytes  # what identifies the request: method, path, query, canonical body
    status: int  # the endpoint's success status, stored with the answer

    def __call__(self, work: Callable[[], Any], *, atomic: bool = True) -> Any:
        if self.key is None:
            return work()
        if not atomic:
            with write(self.db):
                self._replay_if_known()
            answer = jsonable_encoder(work())
            with write(self.db):
                self._replay_if_known()  # a concurrent call with the same key finished first
                self._store(answer)
            return answer
        with write(self.db):
            self._replay_if_known()
            answer = jsonable_encoder(work())
            self._store(answer)
            return answer

    def _replay_if_known(self) -> None:
        assert self.key is not None
        row = self.db.execute(
            "SELECT salt, fingerprint, status, nonce, answer, created_at FROM idempotency_keys"
            " WHERE scope = ? AND key_hash = ?",
            [self.scope, _key_hash(self.scope, self.key)],
        ).fetchone()
        if row is None or float(row[5]) < time.time() - KEEP_SECONDS:
            return
        derived = _derived_key(self.key, row[0])
        if not hmac.compare_digest(_fingerprint(derived, self.request), row[1]):
            raise Conflict(
                f"this {HEADER} was already used for another request; use a new key for a new request"
            )
        try:
            body = json.loads(AESGCM(derived).decrypt(row[3], row[4], row[1].encode("ascii")))
        except (InvalidTag, ValueError):
            raise Conflict(f"the answer stored under this {HEADER} cannot be read; use a new key") from None
        raise Replayed(int(row[2]), body)

    def _store(self, answer: Any) -> None:
        assert self.key is not None
        now = time.time()
        salt, nonce = os.urandom(16), os.urandom(12)
        derived = _derived_key(self.key, salt)
        fingerprint = _fingerprint(derived, self.request)
        sealed = AESGCM(derived).encrypt(
            nonce, json.dumps(answer).encode("utf-8"), fingerprint.encode("ascii")
        )
        self.db.execute("DELETE FROM idempotency_keys WHERE created_at < ?", [now - KEEP_SECONDS])
        self.db.execute(
            "INSERT OR REPLACE INTO idempotency_keys (scope, key_hash, salt, fingerprint, status, nonce,"
            " answer, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [self.scope, _key_hash(self.scope, self.key), salt, fingerprint, self.status, nonce, sealed, now],
        )


def _canonical(body: bytes) -> bytes:
    """The body as parsed JSON, re-serialised in one way (raw bytes if it is not JSON)."""
    try:
        return json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return body


async def once(
    request: Request,
    db: DB,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            pattern=KEY_PATTERN,
            description="Optional. 16-255 visible ASCII characters (use a random UUID). The same key"
            " with the same request answers again what the first call answered, and changes nothing;"
            " the same key with another request is a 409. Kept for a day, per account.",
        ),
    ] = None,
) -> Once:
    """The dependency: an :class:`Once` bound to this request, its account and its key."""
    scope = ANONYMOUS
    if credentials is not None:
        scope = auth.account_for_token(db, credentials.credentials) or ANONYMOUS
    body = await request.body()
    identity = b"\n".join(
        [request.method.encode(), request.url.path.encode(), request.url.query.encode(), _canonical(body)]
    )
    route = request.scope.get("route")
    status = int(getattr(route, "status_code", None) or 200)
    return Once(db, scope, key, identity, status)


Idempotent = Annotated[Once, Depends(once)]
