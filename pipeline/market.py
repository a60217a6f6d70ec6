"""Markets and sealed offers: opening a market on a post, submitting, withdrawing and replacing
offers, resolving posts. Closing and settling live in :mod:`notebazaar.pipeline.settlement`.

Idempotency keys for the ledger are derived from ids (``offer:<id>:escrow``, ``market:<id>:budget``),
so a retried step can never move credits twice.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from notebazaar.pipeline import ledger, market_keys, records
from notebazaar.pipeline.community import (
    Community,
    add_post,
    audit,
    get_account,
    get_community,
    get_post,
    is_banned,
    is_writer,
)
from notebazaar.pipeline.config import LimitSettings
from notebazaar.pipeline.db import one_row, write
from notebazaar.pipeline.errors import (
    Conflict,
    Forbidden,
    LimitExceeded,
    MarketClosed,
    NotFound,
    ValidationError,
)
from notebazaar.pipeline.sealing import NoteContent, seal
from notebazaar.pipeline.validation import check_amount, check_classification, check_id, check_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Receipt:
    """What an informer gets back: the offer id and a commitment it can later open with the salt."""

    offer_id: int
    market_id: int
    commitment: str
    salt: str
    bid: int
    price: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def open_market(
    db: Database,
    post_id: int,
    *,
    now: float | None = None,
    window_seconds: int | None = None,
    parent_offer_id: int | None = None,
    budget: int | None = None,
) -> int:
    """Open the market on a post. Opening a market on a post that already has one returns it.

    A market on a post takes **nothing** from the pool when it opens (rule 6 in
    :mod:`notebazaar.pipeline.rules`): ``budget`` records the most it may take, the community's
    ``budget_per_market``, and settlement takes it (or what the pool holds, if less) only once the
    auction has an offer to inspect. A sub-market (``parent_offer_id``) is opened by settlement
    itself and takes its ``budget`` at once from its parent's budget, which is already held.
    The community's settings are copied onto the market, so a later change does not affect it.
    """
    post = get_post(db, check_id("post id", post_id))
    community = get_community(db, int(post["community_id"]))
    now = time.time() if now is None else now
    window = community.window_seconds if window_seconds is None else window_seconds
    with write(db):
        if parent_offer_id is None:
            row = db.execute(
                "SELECT id FROM markets WHERE post_id = ? AND parent_offer_id IS NULL", [post_id]
            ).fetchone()
            if row:
                return int(row[0])
            depth = 0
            source = None
            planned = community.budget_per_market if budget is None else budget
        else:
            parent = db.execute(
                "SELECT o.market_id, m.depth FROM offers o JOIN markets m ON m.id = o.market_id"
                " WHERE o.id = ?",
                [parent_offer_id],
            ).fetchone()
            if not parent:
                raise NotFound(f"no offer {parent_offer_id}")
            depth = int(parent[1]) + 1
            source = ledger.budget(int(parent[0]))
            wanted = community.budget_per_market if budget is None else budget
            planned = min(wanted, ledger.balance(db, source))
        cursor = db.execute(
            "INSERT INTO markets (post_id, community_id, parent_offer_id, depth, status,"
            " attention_slots, reserve, price_of_information, auction, budget, opened_at, closes_at,"
            " payment_hold_hours) VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                post_id,
                community.id,
                parent_offer_id,
                depth,
                community.attention_slots,
                community.reserve,
                community.price_of_information,
                community.auction,
                planned,
                now,
                now + window,
                community.payment_hold_hours,
            ],
        )
        market_id = int(cursor.lastrowid)  # type: ignore[arg-type]
        if source is not None and planned > 0:
            ledger.transfer(
                db,
                budget_key(market_id),
                [ledger.Move(source, ledger.budget(market_id), planned)],
                kind="market_budget",
            )
    log.info("market %s opened on post %s (budget up to %s)", market_id, post_id, planned)
    return market_id


def budget_key(market_id: int) -> str:
    """The ledger key of the transfer that gives a market its budget (once, whenever it happens)."""
    return f"market:{market_id}:budget"


def budget_left(db: Database, market: dict[str, Any]) -> int:
    """What a market can still spend: its budget account, or, for a market on a post still open
    (which holds nothing yet, rule 6), what it would take from the pool if bidding closed now."""
    held = ledger.balance(db, ledger.budget(int(market["id"])))
    if market["status"] != "open" or market["parent_offer_id"] is not None:
        return held
    if ledger.has_transaction(db, budget_key(int(market["id"]))):
        return held  # opened before rule 6, when markets took their budget at once
    return min(int(market["budget"]), ledger.balance(db, ledger.pool(int(market["community_id"]))))


def request_notes(
    db: Database,
    community_id: int,
    text: str,
    *,
    platform: str = "web",
    author: str | None = None,
    now: float | None = None,
) -> tuple[int, int]:
    """A reader asks for notes on a post: the post and its market, in one transaction, so a
    refused market never leaves a post without one. Returns (post id, market id)."""
    with write(db):
        post_id = add_post(db, community_id, text, platform=platform, author=author, now=now)
        return post_id, open_market(db, post_id, now=now)


def get_market(db: Database, market_id: int) -> dict[str, Any]:
    row = one_row(db, "SELECT * FROM markets WHERE id = ?", [check_id("market id", market_id)])
    if row is None:
        raise NotFound(f"no market {market_id}")
    return row


def _validated_content(limits: LimitSettings, classification: Any, text: Any, sources: Any) -> NoteContent:
    classification = check_classification(classification)
    text = check_text("note text", text, max_chars=limits.max_note_chars, required=True)
    if sources is None:
        sources = []
    if isinstance(sources, str) or not isinstance(sources, list | tuple):
        raise LimitExceeded("sources must be a list of links or citations")
    if len(sources) > limits.max_sources:
        raise LimitExceeded(f"{len(sources)} sources given; the limit is {limits.max_sources}")
    clean = tuple(
        check_text(f"source {i + 1}", s, max_chars=limits.max_source_chars, required=True)
        for i, s in enumerate(sources)
    )
    return NoteContent(classification, text, clean)


def submit_offer(
    db: Database,
    market_id: int,
    informer_id: int,
    *,
    classification: Any,
    text: Any,
    sources: Any = (),
    bid: Any,
    price: Any,
    limits: LimitSettings | None = None,
    teaser: Any = None,
    now: float | None = None,
) -> Receipt:
    """Seal a note and escrow its bid. Refused, with nothing changed, if anything is off."""
    limits = limits or LimitSettings()
    content = _validated_content(limits, classification, text, sources)  # a str is refused, not split
    bid = check_amount("bid", bid, maximum=limits.max_amount)
    price = check_amount("price", price, minimum=1, maximum=limits.max_amount)
    if teaser is not None:
        teaser = check_text("teaser", teaser, max_chars=280) or None
    get_account(db, check_id("informer id", informer_id))
    now = time.time() if now is None else now
    sealed = seal(content)
    with write(db):
        market = get_market(db, market_id)
        _require_open(market, now)
        if bid < market["reserve"]:
            raise ValidationError(
                f"the bid of {bid} credits is below market {market_id}'s reserve of"
                f" {market['reserve']} credits: the judge never reads a note that bids less"
            )
        if is_banned(db, informer_id, int(market["community_id"])):
            raise Forbidden("this informer is banned from the community")
        open_offers = db.execute(
            "SELECT COUNT(*) FROM offers WHERE market_id = ? AND informer_id = ? AND status = 'sealed'",
            [market_id, informer_id],
        ).fetchone()[0]
        if open_offers >= limits.max_open_offers_per_informer:
            raise LimitExceeded(
                f"this informer already has {open_offers} open offers in market {market_id};"
                f" the limit is {limits.max_open_offers_per_informer}"
            )
        if is_writer(db, informer_id):
            _check_writer_cap(db, informer_id, get_community(db, int(market["community_id"])), now)
        wallet_balance = ledger.balance(db, ledger.wallet(informer_id))
        if wallet_balance < bid:
            raise ledger.InsufficientFunds(f"the bid is {bid} credits but the wallet holds {wallet_balance}")
        cursor = db.execute(
            "INSERT INTO offers (market_id, informer_id, status, bid, price, teaser, commitment,"
            " nonce, ciphertext, submitted_at) VALUES (?, ?, 'sealed', ?, ?, ?, ?, ?, ?, ?)",
            [
                market_id,
                informer_id,
                bid,
                price,
                teaser,
                sealed.commitment,
                sealed.nonce,
                sealed.ciphertext,
                now,
            ],
        )
        offer_id = int(cursor.lastrowid)  # type: ignore[arg-type]
        db.execute(
            "INSERT INTO offer_keys (offer_id, key) VALUES (?, ?)",
            [offer_id, market_keys.wrap(db, int(market["post_id"]), sealed.key)],
        )
        if bid > 0:
            ledger.transfer(
                db,
                f"offer:{offer_id}:escrow",
                [ledger.Move(ledger.wallet(informer_id), ledger.escrow(market_id), bid)],
                kind="escrow_bid",
            )
    log.info("offer %s sealed in market %s (bid %s, price %s)", offer_id, market_id, bid, price)
    return Receipt(offer_id, market_id, sealed.commitment, sealed.salt, bid, price)


DAY_SECONDS = 86_400


def writer_daily_cap(db: Database, informer_id: int, community: Community) -> int:
    """How many offers a registered writer may make in ``community`` in any 24 hours: the
    community's ``writer_offers_per_day``, plus ``writer_offers_per_right_note`` for each right note
    of its track record beyond its wrong ones (:func:`notebazaar.pipeline.records.track_record`).
    As X's AI note writers, a new writer starts small and earns its room."""
    record = records.track_record(db, informer_id)
    earned = max(0, record.right - record.wrong)
    return community.writer_offers_per_day + community.writer_offers_per_right_note * earned


def writer_offers_today(db: Database, informer_id: int, community_id: int, now: float) -> int:
    """The writer's offers in the community's markets in the 24 hours before ``now``, withdrawn or
    replaced ones included (a withdrawal gives back the escrow, not the room)."""
    return int(
        db.execute(
            "SELECT COUNT(*) FROM offers o JOIN markets m ON m.id = o.market_id"
            " WHERE o.informer_id = ? AND m.community_id = ? AND o.submitted_at > ?",
            [informer_id, community_id, now - DAY_SECONDS],
        ).fetchone()[0]
    )


def _check_writer_cap(db: Database, informer_id: int, community: Community, now: float) -> None:
    cap = writer_daily_cap(db, informer_id, community)
    made = writer_offers_today(db, informer_id, community.id, now)
    if made >= cap:
        raise LimitExceeded(
            f"this writer made {made} offers in {community.slug} in the last 24 hours; its cap is {cap}"
            f" ({community.writer_offers_per_day} a day, +{community.writer_offers_per_right_note}"
            " per right note of its track record)"
        )


def _require_open(market: dict[str, Any], now: float) -> None:
    if market["status"] != "open":
        raise MarketClosed(f"market {market['id']} is {market['status']}; it takes no offers")
    if now >= market["closes_at"]:
        raise MarketClosed(f"market {market['id']}'s bidding window has ended")


def _own_sealed_offer(db: Database, offer_id: int, informer_id: int) -> dict[str, Any]:
    offer = one_row(db, "SELECT * FROM offers WHERE id = ?", [check_id("offer id", offer_id)])
    if offer is None or offer["informer_id"] != informer_id:
        raise NotFound(f"no offer {offer_id} of yours")
    if offer["status"] != "sealed":
        raise Conflict(f"offer {offer_id} is {offer['status']}; only a sealed offer can change")
    return offer


def shred(db: Database, offer_id: int, status: str, outcome: str) -> None:
    """Destroy an offer's key and ciphertext. Its content can never be read again."""
    db.execute("DELETE FROM offer_keys WHERE offer_id = ?", [offer_id])
    db.execute(
        "UPDATE offers SET status = ?, outcome = ?, ciphertext = NULL, nonce = NULL WHERE id = ?",
        [status, outcome, offer_id],
    )


def reveal(
    db: Database,
    offer: dict[str, Any],
    market_id: int,
    post_id: int,
    content: NoteContent,
    rationale: str,
    now: float,
) -> int:
    """Store a bought note in plaintext for readers: the only place a note's text is ever written
    in the clear. Returns the reveal's id. Call inside the transaction that shreds the offer."""
    cursor = db.execute(
        "INSERT INTO reveals (offer_id, market_id, post_id, informer_id, classification, text,"
        " sources, price, rationale, revealed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            offer["id"],
            market_id,
            post_id,
            offer["informer_id"],
            content.classification,
            content.text,
            json.dumps(list(content.sources)),
            offer["price"],
            rationale,
            now,
        ],
    )
    reveal_id = int(cursor.lastrowid)  # type: ignore[arg-type]
    records.recount_note(db, reveal_id)  # a note revealed on a post resolved meanwhile counts at once
    return reveal_id


def withdraw_offer(
    db: Database, offer_id: int, informer_id: int, *, now: float | None = None, status: str = "withdrawn"
) -> None:
    """Take back a sealed offer before close: the escrow is refunded and the note shredded."""
    now = time.time() if now is None else now
    with write(db):
        offer = _own_sealed_offer(db, offer_id, informer_id)
        _require_open(get_market(db, int(offer["market_id"])), now)
        if offer["bid"] > 0:
            ledger.transfer(
                db,
                f"offer:{offer_id}:refund",
                [ledger.Move(ledger.escrow(offer["market_id"]), ledger.wallet(informer_id), offer["bid"])],
                kind="refund_bid",
            )
        shred(db, offer_id, status, status)
    log.info("offer %s %s", offer_id, status)


def replace_offer(
    db: Database,
    offer_id: int,
    informer_id: int,
    *,
    limits: LimitSettings | None = None,
    now: float | None = None,
    **new: Any,
) -> Receipt:
    """Withdraw a sealed offer and submit its replacement, atomically."""
    with write(db):
        market_id = int(_own_sealed_offer(db, offer_id, informer_id)["market_id"])
        withdraw_offer(db, offer_id, informer_id, now=now, status="replaced")
        return submit_offer(db, market_id, informer_id, limits=limits, now=now, **new)


def resolve_post(db: Database, post_id: int, resolution: str, *, actor_id: int | None = None) -> None:
    """Record the truth about a post; informers' track records follow from it."""
    resolution = check_classification(resolution)
    get_post(db, post_id)
    with write(db):
        post = get_post(db, post_id)  # read inside the transaction: the counters move from this value
        db.execute(
            "UPDATE posts SET resolution = ?, resolved_at = ? WHERE id = ?",
            [resolution, time.time(), post_id],
        )
        records.post_resolved(db, post_id, int(post["community_id"]), post["resolution"], resolution)
        audit(
            db,
            actor_id,
            "post.resolve",
            f"post:{post_id}",
            {"resolution": resolution},
            int(post["community_id"]),
        )


def market_view(db: Database, market_id: int) -> dict[str, Any]:
    """A market's public state: no sealed content, only amounts, statuses and reveals."""
    market = get_market(db, market_id)
    offers = [
        {
            k: o[k]
            for k in ("id", "informer_id", "status", "bid", "price", "rank", "charge", "outcome", "teaser")
        }
        for o in db["offers"].rows_where("market_id = ?", [market_id], order_by="id")
    ]
    inspections = list(db["inspections"].rows_where("market_id = ?", [market_id], order_by="id"))
    reveals = list(
        db["reveals"].rows_where("market_id = ? AND unpublished_at IS NULL", [market_id], order_by="id")
    )
    return {
        "market": market,
        "post": get_post(db, int(market["post_id"])),
        "budget_left": budget_left(db, market),
        "offers": offers,
        "inspections": [
            {k: i[k] for k in ("offer_id", "p_before", "p_after", "kl", "value", "bought", "reason")}
            for i in inspections
        ],
        "reveals": reveals,
        "sub_markets": _sub_markets(db, market_id),
    }


def _sub_markets(db: Database, market_id: int) -> list[dict[str, Any]]:
    from notebazaar.pipeline.recursion import sub_markets  # recursion builds on this module

    return sub_markets(db, market_id)
