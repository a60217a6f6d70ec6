"""Sealing notes: AES-GCM with a fresh key per offer, and a commitment the informer can open.

A sealed note's plaintext (classification, text, sources) is only ever in memory. At rest it is
AES-GCM ciphertext; its 256-bit key sits in ``offer_keys`` until the offer is bought or shredded,
never in the clear: wrapped under the market key of its post (:mod:`notebazaar.pipeline.market_keys`,
a file beside the database). Shredding deletes the wrapped key (SQLite's ``secure_delete`` overwrites
the freed bytes), so the ciphertext can never be opened again.

Why a shredded key does not linger on disk: the database runs in WAL mode, so a page that held a
key is first written to the WAL, and deleting the row appends a new image of the page without
erasing the old one. The old image holds only the wrapped key, and the market key that unwraps it is
deleted when the post's market settles, so once ``close_market`` returns no file in the state folder
can open a note it shredded. Until issue 18 the WAL was checkpointed and truncated after every
settlement instead, which cost two fsyncs and a copy of the market's pages each time; measured in
docs/scaling.md.

The receipt is a commitment: SHA-256 over a random salt and the canonical JSON of the content. The
salt goes to the informer only, never to the database, so the commitment cannot be brute-forced
from the database (a classification is only one bit), yet the informer can later prove authorship
by showing content and salt.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class Unreadable(InvalidTag):
    """A sealed note that cannot be opened: its ciphertext, nonce or key was damaged (the tag does
    not verify, hence an ``InvalidTag``) or what it decrypts to is not a note. Settlement shreds
    such an offer (reason ``undecryptable``) and refunds it rather than retrying it for ever."""


@dataclass(frozen=True)
class NoteContent:
    """What an informer seals: the part of an offer that is for sale."""

    classification: str
    text: str
    sources: tuple[str, ...] = ()

    def canonical(self) -> bytes:
        return json.dumps(
            {"classification": self.classification, "text": self.text, "sources": list(self.sources)},
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
        ).encode("utf-8")

    @classmethod
    def from_canonical(cls, data: bytes) -> NoteContent:
        obj = json.loads(data.decode("utf-8"))
        return cls(obj["classification"], obj["text"], tuple(obj["sources"]))

    def __repr__(self) -> str:  # never let a sealed note reach a log through repr()
        return f"NoteContent(classification=<sealed>, text=<{len(self.text)} chars>)"


@dataclass(frozen=True)
class Sealed:
    key: bytes
    nonce: bytes
    ciphertext: bytes
    commitment: str
    salt: str


def commitment(content: NoteContent, salt: str) -> str:
    return hashlib.sha256(salt.encode("ascii") + b"\x00" + content.canonical()).hexdigest()


def seal(content: NoteContent, *, associated_data: bytes = b"") -> Sealed:
    key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, content.canonical(), associated_data)
    salt = secrets.token_hex(16)
    return Sealed(key, nonce, ciphertext, commitment(content, salt), salt)


def unseal(key: bytes, nonce: bytes, ciphertext: bytes, *, associated_data: bytes = b"") -> NoteContent:
    """The sealed note, or :class:`Unreadable` (never the exception text, which could hold bytes
    of the note)."""
    try:
        return NoteContent.from_canonical(AESGCM(key).decrypt(nonce, ciphertext, associated_data))
    except (InvalidTag, ValueError, TypeError, KeyError, AttributeError):
        raise Unreadable("the sealed note cannot be opened") from None


def verify_receipt(content: NoteContent, salt: str, expected: str) -> bool:
    """True when ``content`` and ``salt`` open the commitment ``expected``."""
    return secrets.compare_digest(commitment(content, salt), expected)
