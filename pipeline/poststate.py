"""Is the post still there to show a note under? Asked just before a market settles.

A note bought on a post that was deleted, locked or is in a community that banned the bot is paid
for and never shown. So before the attention auction, settlement asks a *post check* (a callable a
platform adapter supplies; the pipeline imports no bot) what the platform says about the post:

* ``open``: settle as usual;
* ``unknown``: the platform cannot tell right now (an outage): skip the market this pass, it stays
  due and is asked again on the next one;
* ``gone``: cancel the market: every sealed offer's bid is refunded and its note shredded, the
  budget returns to the pool, and the market ends ``settled`` with ``cancel_reason`` set.

An adapter answers ``open`` for posts of other platforms, which it cannot check; so each bot closes
only its own platform's markets, and the web worker leaves the :data:`CHECKED_PLATFORMS` to them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlite_utils import Database

from notebazaar.pipeline import ledger, market_keys
from notebazaar.pipeline.community import audit
from notebazaar.pipeline.db import write
from notebazaar.pipeline.market import get_market, shred

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PostState:
    verdict: Literal["open", "unknown", "gone"]
    reason: str = ""

    @classmethod
    def open(cls) -> PostState:
        return cls("open")

    @classmethod
    def unknown(cls, reason: str) -> PostState:
        return cls("unknown", reason)

    @classmethod
    def gone(cls, reason: str) -> PostState:
        return cls("gone", reason)

    @classmethod
    def after_failure(cls, transient: bool, reason: str) -> PostState:
        """What a failed lookup says: ask again later if it was transient, else the post is gone."""
        return cls.unknown(reason) if transient else cls.gone(reason)


# Platforms whose bot checks a post before its market settles (and closes those markets itself).
CHECKED_PLATFORMS = ("discord", "reddit")

# Given the post's row (id, platform, external_id, community_id, url, ...), what the platform says.
PostCheck = Callable[[dict[str, Any]], PostState]


def cancel_market(db: Database, market_id: int, reason: str, *, now: float | None = None) -> bool:
    """Cancel an open market whose post cannot show notes: refund every sealed bid, shred every
    note, return the budget. Idempotent (ledger keys from ids); returns False if it was not open."""
    now = time.time() if now is None else now
    with write(db):
        market = get_market(db, market_id)
        if market["status"] != "open":
            return False
        for offer in db["offers"].rows_where("market_id = ? AND status = 'sealed'", [market_id]):
            if offer["bid"] > 0:
                ledger.transfer(
                    db,
                    f"offer:{offer['id']}:refund",
                    [
                        ledger.Move(
                            ledger.escrow(market_id), ledger.wallet(int(offer["informer_id"])), offer["bid"]
                        )
                    ],
                    kind="refund_bid",
                )
            shred(db, int(offer["id"]), "shredded", "market_cancelled")
        left = ledger.balance(db, ledger.budget(market_id))
        if left > 0:
            ledger.transfer(
                db,
                f"market:{market_id}:budget-return",
                [ledger.Move(ledger.budget(market_id), ledger.pool(int(market["community_id"])), left)],
                kind="budget_return",
            )
        db.execute(
            "UPDATE markets SET status = 'settled', closed_at = ?, settled_at = ?, cancelled_at = ?,"
            " cancel_reason = ? WHERE id = ?",
            [now, now, now, reason[:300], market_id],
        )
        audit(
            db,
            None,
            "market.cancel",
            f"market:{market_id}",
            {"reason": reason[:300], "budget_returned": left},
            int(market["community_id"]),
        )
    if market["parent_offer_id"] is None:  # the post's market tree has ended: its notes with it
        market_keys.destroy(db, int(market["post_id"]))
    log.info("market %s cancelled before settling (%s); budget %s returned", market_id, reason, left)
    return True
