"""Read-only questions the Discord bot asks that the core does not answer directly.

They read amounts, statuses and ids only, never sealed content.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from notebazaar.bot.discord.refs import MessageRef, external_id
from notebazaar.pipeline.errors import MarketClosed, NotFound, ValidationError

PLATFORM = "discord"


def find_post(db: Database, ref: MessageRef, community_id: int) -> dict[str, Any]:
    """The stored post for a Discord message of this community, or a NotFound that says what to do."""
    if ref.channel_id is not None:
        rows = db.execute(
            "SELECT * FROM posts WHERE platform = ? AND external_id = ?",
            [PLATFORM, external_id(ref.channel_id, ref.message_id)],
        )
    else:  # message ids are snowflakes, unique across channels
        rows = db.execute(
            "SELECT * FROM posts WHERE platform = ? AND external_id LIKE ?",
            [PLATFORM, f"%:{ref.message_id}"],
        )
    columns = [c[0] for c in rows.description]
    found = [dict(zip(columns, r, strict=True)) for r in rows.fetchall()]
    if not found:
        raise NotFound(
            "no market is open on that message; open one with the message's Apps > Request notes menu"
        )
    post = found[0]
    if int(post["community_id"]) != community_id:
        raise NotFound("that message belongs to another community")
    return post


def market_for_post(db: Database, post_id: int) -> dict[str, Any]:
    """The top-level market on a post."""
    rows = list(db["markets"].rows_where("post_id = ? AND parent_offer_id IS NULL", [post_id]))
    if not rows:
        raise NotFound(
            "no market is open on that message; open one with the message's Apps > Request notes menu"
        )
    return rows[0]


def open_market_for_post(db: Database, post_id: int, *, now: float | None = None) -> dict[str, Any]:
    """The post's market, if it still takes offers; a refusal that says so otherwise.

    Asked before the note form opens, so nobody types a note that cannot be offered; the core
    refuses a closed market again when the offer is sealed."""
    market = market_for_post(db, post_id)
    now = time.time() if now is None else now
    if market["status"] != "open" or now >= float(market["closes_at"]):
        raise MarketClosed(f"market #{market['id']} on that message takes no more notes (bidding has closed)")
    return market


@dataclass(frozen=True)
class SubMarket:
    """A sub-market an informer can offer into: public facts only (the parent offer's teaser, never
    its sealed note)."""

    id: int
    parent_offer_id: int
    teaser: str
    post_url: str | None
    closes_at: float
    budget: int


_SUB_MARKET_COLUMNS = (
    "SELECT m.id, m.parent_offer_id, COALESCE(o.teaser, ''), p.url, m.closes_at, m.budget,"
    " m.community_id, m.status FROM markets m JOIN posts p ON p.id = m.post_id"
    " LEFT JOIN offers o ON o.id = m.parent_offer_id"
)


def _sub_market(row: Any) -> SubMarket:
    return SubMarket(int(row[0]), int(row[1]), row[2], row[3] or None, float(row[4]), int(row[5]))


def open_sub_market(
    db: Database, market_id: int, community_id: int, *, now: float | None = None
) -> SubMarket:
    """The open sub-market ``market_id`` of this community, or a refusal that says what is wrong.

    The core refuses offers into a closed market too (inside the transaction that would seal the
    offer); checking here lets the bot refuse before the informer fills in the form."""
    now = time.time() if now is None else now
    row = db.execute(f"{_SUB_MARKET_COLUMNS} WHERE m.id = ?", [market_id]).fetchone()
    if row is None or int(row[6]) != community_id:
        raise NotFound(f"no sub-market #{market_id} in this server; /market show lists a post's open ones")
    if row[1] is None:
        raise ValidationError(
            f"market #{market_id} is a post's market, not a sub-market; offer a note on the post"
            " with /note submit"
        )
    if row[7] != "open":
        raise MarketClosed(f"sub-market #{market_id} is {row[7]}; it takes no more offers")
    if now >= float(row[4]):
        raise MarketClosed(f"sub-market #{market_id}'s bidding window has ended; it takes no more offers")
    return _sub_market(row)


def open_sub_markets(
    db: Database, community_id: int, *, now: float | None = None, limit: int = 100
) -> list[SubMarket]:
    """This community's sub-markets still taking offers, closing soonest first."""
    now = time.time() if now is None else now
    rows = db.execute(
        f"{_SUB_MARKET_COLUMNS} WHERE m.community_id = ? AND m.parent_offer_id IS NOT NULL"
        " AND m.status = 'open' AND m.closes_at > ? ORDER BY m.closes_at, m.id LIMIT ?",
        [community_id, now, limit],
    ).fetchall()
    return [_sub_market(r) for r in rows]


def informer_offers(db: Database, account_id: int, *, limit: int = 15) -> list[dict[str, Any]]:
    """An informer's latest offers with their markets' state (no content: it is sealed or shredded)."""
    return list(
        db.query(
            "SELECT o.id, o.market_id, o.status, o.bid, o.price, o.charge, o.outcome, o.submitted_at,"
            " m.status AS market_status, m.closes_at, p.url AS post_url, r.id AS reveal_id"
            " FROM offers o JOIN markets m ON m.id = o.market_id JOIN posts p ON p.id = m.post_id"
            " LEFT JOIN reveals r ON r.offer_id = o.id"
            " WHERE o.informer_id = ? ORDER BY o.id DESC LIMIT ?",
            [account_id, limit],
        )
    )


def escrowed(db: Database, account_id: int) -> int:
    """Credits of an informer's sealed offers held in escrow (refunded or charged at close)."""
    row = db.execute(
        "SELECT COALESCE(SUM(bid), 0) FROM offers WHERE informer_id = ? AND status = 'sealed'",
        [account_id],
    ).fetchone()
    return int(row[0])


def earned(db: Database, account_id: int) -> int:
    """Credits an informer has been paid for revealed notes."""
    row = db.execute(
        "SELECT COALESCE(SUM(price), 0) FROM reveals WHERE informer_id = ?", [account_id]
    ).fetchone()
    return int(row[0])
