"""Sealing notes: AES-GCM with a fresh key per offer, and a commitment the informer can open.

A sealed note's plaintext (classification, text, sources) is only ever in memory. At rest it is
AES-GCM ciphertext; its 256-bit key sits in ``offer_keys`` until the offer is bought or shredded.
Shredding deletes the key (SQLite's ``secure_delete`` overwrites the freed bytes), so the
ciphertext can never be opened again.

Why a shredded key does not linger on disk: the database runs in WAL mode, so a page that held a
key is first written to the WAL, and deleting the row appends a new image of the page without
erasing the old one. ``secure_delete`` zeroes the freed bytes in the new image, and the WAL is
checkpointed and truncated after every settlement (:func:`notebazaar.pipeline.db.checkpoint`),
so once ``close_market`` returns no file in the state folder holds a destroyed key or its old page.
Measured with ``notebazaar bench --profile`` (issue 18), the checkpoint costs one fsync per
settlement, about 33 ms per 32-offer market on the shared 2-core machine (load average ~18), a few
per cent of a market's own work and well under 1% of its time beside the model; it stays. What
would replace it, should it ever dominate, is keys that never reach the database's pages in the
clear: each offer key wrapped (AES-GCM) under a per-market key kept in a small file of its own,
deleted when the market's last key is shredded, so that stale WAL frames hold only wrapped keys
whose wrapping key is gone (docs/scaling.md).

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

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


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
    return NoteContent.from_canonical(AESGCM(key).decrypt(nonce, ciphertext, associated_data))


def verify_receipt(content: NoteContent, salt: str, expected: str) -> bool:
    """True when ``content`` and ``salt`` open the commitment ``expected``."""
    return secrets.compare_digest(commitment(content, salt), expected)
