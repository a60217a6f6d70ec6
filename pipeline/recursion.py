"""Recursive sub-markets: before buying an uncertain offer, the judge buys notes about it.

The seed's contractor may buy information about a piece of information before buying it ("that
study was retracted"). Here, when the judge's verdict on an inspected offer is *uncertain*
(:func:`notebazaar.pipeline.rules.is_uncertain`) and depth, breadth and budget allow, settlement opens a
**sub-market** about that offer and pauses the parent market until it settles. A sub-market is an
ordinary market (sealed offers, attention auction, the amnesic judge, the KL rule) whose subject is
the parent offer's content, decrypted in memory only; a sub-note's classification ``misleading``
means "the parent offer is unreliable". Its final belief discounts the judge's verdict on the parent
(:func:`notebazaar.pipeline.rules.distrust`, :func:`notebazaar.pipeline.rules.discounted`).

Secrecy: a sub-note bought in a sub-market is paid at once but stays sealed (status ``bought``,
outcome ``held``, its key kept) until the parent offer's fate is known. If the parent is bought, its
held sub-notes are revealed with it; if not, they are shredded, since revealing them would leak the
parent. Both happen in the transaction that decides the parent, so a crash can never leave one
without the other.

Memory: an offer its sub-market discredited (:func:`notebazaar.pipeline.rules.distrust` 1) counts as a wrong
note in its informer's track record (:func:`notebazaar.pipeline.records.track_record`); only that count
survives the shredding, never the note or its sub-notes.

Money: a sub-market's budget comes from the parent market's budget account and its unspent budget
goes back there (:func:`notebazaar.pipeline.settlement._finish`), so a sub-market's spend counts toward the
parent's and can never exceed it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from notebazaar.pipeline import market_keys, rules
from notebazaar.pipeline.config import RecursionSettings
from notebazaar.pipeline.db import rows
from notebazaar.pipeline.errors import NotFound
from notebazaar.pipeline.judge import NoteView, PostView, TrackRecord
from notebazaar.pipeline.market import open_market, reveal, shred
from notebazaar.pipeline.records import track_record
from notebazaar.pipeline.sealing import NoteContent, unseal

HELD = "held"  # outcome of a bought sub-note whose parent offer is not decided yet


@dataclass(frozen=True)
class Waiting:
    """The parent offer's decision waits on this sub-market."""

    sub_market_id: int


def _content(db: Database, offer_id: int) -> NoteContent | None:
    row = db.execute(
        "SELECT k.key, o.nonce, o.ciphertext, m.post_id FROM offers o"
        " JOIN offer_keys k ON k.offer_id = o.id JOIN markets m ON m.id = o.market_id WHERE o.id = ?",
        [offer_id],
    ).fetchone()
    if row is None or row[2] is None:
        return None
    key = market_keys.unwrap(db, int(row[3]), row[0])
    return None if key is None else unseal(key, row[1], row[2])


def _note_view(offer: dict[str, Any], content: NoteContent, track: TrackRecord | None = None) -> NoteView:
    return NoteView(
        offer_id=int(offer["id"]),
        informer_id=int(offer["informer_id"]),
        classification=content.classification,
        text=content.text,
        sources=content.sources,
        price=int(offer["price"]),
        track=track or TrackRecord(),
    )


def subject_view(db: Database, market: dict[str, Any]) -> PostView:
    """What a sub-market judges: the parent offer's note *on its post* (the post's text, then the
    note's), decrypted in memory only. The post is part of the subject because the question is
    whether the note is a reliable note on that post: evidence about the post bears on it.
    ``about`` carries the note itself and its informer's track record, from which the judge takes
    its prior doubt about the note.

    Its id is the negated parent offer id, so no judge cache keyed by post id can mix it up with
    the post itself."""
    parent_offer_id = int(market["parent_offer_id"])
    content = _content(db, parent_offer_id)
    if content is None:
        raise NotFound(f"offer {parent_offer_id}, the subject of sub-market {market['id']}, is sealed away")
    offer = db["offers"].get(parent_offer_id)
    about = _note_view(offer, content, track_record(db, int(offer["informer_id"])))
    post = db.execute("SELECT text FROM posts WHERE id = ?", [market["post_id"]]).fetchone()[0]
    return PostView(
        -parent_offer_id, int(market["community_id"]), f"{post}\n\n{content.text}", "submarket", about
    )


def held_notes(db: Database, market_id: int) -> tuple[NoteView, ...]:
    """Sub-notes bought in this sub-market but still sealed, for the judge's context (memory only)."""
    out = []
    for o in rows(
        db, "SELECT * FROM offers WHERE market_id = ? AND outcome = ? ORDER BY id", [market_id, HELD]
    ):
        content = _content(db, int(o["id"]))
        if content is not None:
            out.append(_note_view(o, content))
    return tuple(out)


def hold(db: Database, offer_id: int) -> None:
    """Mark a paid sub-note bought but keep it sealed until its parent offer is decided."""
    db.execute("UPDATE offers SET status = 'bought', outcome = ? WHERE id = ?", [HELD, offer_id])


def follow_parent(db: Database, offer_id: int, *, revealed: bool, now: float) -> None:
    """Reveal (parent bought) or shred (parent not bought) the held sub-notes about ``offer_id``,
    and theirs in turn. Runs inside the transaction that decides the parent."""
    for sub_market_id, post_id in db.execute(
        "SELECT id, post_id FROM markets WHERE parent_offer_id = ?", [offer_id]
    ).fetchall():
        held = list(
            rows(db, "SELECT * FROM offers WHERE market_id = ? AND outcome = ?", [sub_market_id, HELD])
        )
        for offer in held:
            if revealed:
                _reveal(db, offer, int(sub_market_id), int(post_id), now)
            else:
                shred(db, int(offer["id"]), "bought", "shredded_with_parent")
            follow_parent(db, int(offer["id"]), revealed=revealed, now=now)


def _reveal(db: Database, offer: dict[str, Any], market_id: int, post_id: int, now: float) -> None:
    content = _content(db, int(offer["id"]))
    if content is not None:
        reveal(db, offer, market_id, post_id, content, "revealed with the offer it is about", now)
    shred(db, int(offer["id"]), "bought", "revealed_with_parent")


def weigh(
    db: Database,
    market: dict[str, Any],
    offer: dict[str, Any],
    *,
    p_before: float,
    p_after: float,
    budget_left: int,
    settings: RecursionSettings | None,
    now: float,
) -> float | Waiting:
    """The p_after the purchase rule should use for ``offer``, or the sub-market it must wait on.

    An existing sub-market is always honoured (even if recursion was switched off meanwhile), so
    a resumed settlement decides exactly as the paused one would have. Otherwise a sub-market is
    opened only when the settings allow one here and the verdict is uncertain. Call inside the
    write transaction that records the decision."""
    row = db.execute(
        "SELECT id, status, prior, belief FROM markets WHERE parent_offer_id = ? ORDER BY id LIMIT 1",
        [offer["id"]],
    ).fetchone()
    if row is not None:
        if row[1] != "settled":
            return Waiting(int(row[0]))
        if row[2] is None or row[3] is None:
            return p_after
        return rules.discounted(p_before, p_after, rules.distrust(float(row[2]), float(row[3])))
    if settings is None or not settings.enabled or int(market["depth"]) >= settings.max_depth:
        return p_after
    opened = db.execute(
        "SELECT COUNT(*) FROM markets WHERE parent_offer_id IN (SELECT id FROM offers WHERE market_id = ?)",
        [market["id"]],
    ).fetchone()[0]
    if opened >= settings.max_breadth:
        return p_after
    price = int(offer["price"])
    if not rules.is_uncertain(
        p_before=p_before,
        p_after=p_after,
        price=price,
        price_of_information=int(market["price_of_information"]),
        remaining_budget=budget_left,
        band=settings.uncertain_band,
    ):
        return p_after
    budget = rules.sub_budget(budget_left, price, settings.budget_share, settings.min_budget)
    if budget <= 0:
        return p_after
    sub_id = open_market(
        db,
        int(market["post_id"]),
        parent_offer_id=int(offer["id"]),
        budget=budget,
        window_seconds=settings.window_seconds,
        now=now,
    )
    return Waiting(sub_id)


def waiting_offer_ids(db: Database, market_id: int) -> set[int]:
    """This market's winning offers that a sub-market was opened about (they keep their turn)."""
    return {
        int(r[0])
        for r in db.execute(
            "SELECT o.id FROM offers o JOIN markets m ON m.parent_offer_id = o.id"
            " WHERE o.market_id = ? AND o.status = 'won'",
            [market_id],
        )
    }


def pending_sub_markets(db: Database, market_id: int) -> list[int]:
    """Sub-markets about this market's offers that have not settled yet."""
    return [
        int(r[0])
        for r in db.execute(
            "SELECT m.id FROM markets m JOIN offers o ON o.id = m.parent_offer_id"
            " WHERE o.market_id = ? AND m.status != 'settled' ORDER BY m.id",
            [market_id],
        )
    ]


def sub_markets(db: Database, market_id: int, *, now: float | None = None) -> list[dict[str, Any]]:
    """Public facts about the sub-markets of a market's offers, for surfaces: which offer each is
    about (its public teaser only), status, time left, budget. Nothing sealed."""
    now = time.time() if now is None else now
    rows = db.execute(
        "SELECT m.id, m.parent_offer_id, o.teaser, m.status, m.closes_at, m.budget, m.depth,"
        " (SELECT COUNT(*) FROM offers s WHERE s.market_id = m.id) FROM markets m"
        " JOIN offers o ON o.id = m.parent_offer_id WHERE o.market_id = ? ORDER BY m.id",
        [market_id],
    ).fetchall()
    return [
        {
            "id": int(r[0]),
            "parent_offer_id": int(r[1]),
            "teaser": r[2] or "",
            "status": r[3],
            "open": r[3] == "open" and now < float(r[4]),
            "seconds_left": max(0, int(float(r[4]) - now)) if r[3] == "open" else 0,
            "budget": int(r[5]),
            "depth": int(r[6]),
            "offers": int(r[7]),
            "notes": revealed_sub_notes(db, int(r[0])),
        }
        for r in rows
    ]


def revealed_sub_notes(db: Database, sub_market_id: int) -> list[dict[str, Any]]:
    """Sub-notes revealed with the offer they are about (none while it is undecided or unbought)."""
    return [
        {
            "id": int(r[0]),
            "offer_id": int(r[1]),
            "classification": r[2],
            "text": r[3],
            "sources": json.loads(r[4] or "[]"),
            "price": int(r[5]),
        }
        for r in db.execute(
            "SELECT id, offer_id, classification, text, sources, price FROM reveals"
            " WHERE market_id = ? AND unpublished_at IS NULL ORDER BY id",
            [sub_market_id],
        )
    ]


def open_sub_markets(db: Database, post_id: int, *, now: float | None = None) -> list[dict[str, Any]]:
    """Every sub-market on a post still taking offers (for bots' listings)."""
    now = time.time() if now is None else now
    rows = db.execute(
        "SELECT m.id, m.parent_offer_id, o.teaser, m.closes_at, m.budget, m.depth FROM markets m"
        " JOIN offers o ON o.id = m.parent_offer_id"
        " WHERE m.post_id = ? AND m.status = 'open' AND m.closes_at > ? ORDER BY m.id",
        [post_id, now],
    ).fetchall()
    return [
        {
            "id": int(r[0]),
            "parent_offer_id": int(r[1]),
            "teaser": r[2] or "",
            "seconds_left": max(0, int(float(r[3]) - now)),
            "budget": int(r[4]),
            "depth": int(r[5]),
        }
        for r in rows
    ]
