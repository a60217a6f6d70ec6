"""Held payments: with ``[market] payment_hold_hours`` > 0, a bought note's price waits in escrow
for readers' verdict instead of going straight to its informer.

- At purchase (in settlement's transaction) the price moves from the market's budget to the
  escrow account ``escrow:held:<offer id>`` and a ``held_payments`` row records the hold.
- When the bridging scorer settles the note's status (:func:`settle`): *not helpful* within the
  hold returns the price to the community's pool; *helpful* pays the informer at once; a hold that
  ends without either pays the informer.

Every move goes through the ledger under a key derived from the offer's id
(``offer:<id>:purchase``, ``offer:<id>:hold-release``, ``offer:<id>:hold-return``), so a retried
step never pays twice; :func:`notebazaar.pipeline.ledger.check` compares every hold with its escrow.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlite_utils import Database

from notebazaar.pipeline import ledger
from notebazaar.pipeline.db import write

log = logging.getLogger(__name__)
HOUR = 3600.0


def hold(db: Database, market: dict[str, Any], offer: dict[str, Any], reveal_id: int, now: float) -> None:
    """Put a bought note's price in escrow for ``market['payment_hold_hours']``. Call inside the
    purchase's transaction."""
    amount = int(offer["price"])
    ledger.transfer(
        db,
        f"offer:{offer['id']}:purchase",
        [ledger.Move(ledger.budget(int(market["id"])), ledger.held(int(offer["id"])), amount)],
        kind="purchase_held",
    )
    db.execute(
        "INSERT INTO held_payments (offer_id, reveal_id, market_id, community_id, informer_id, amount,"
        " held_at, release_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            offer["id"],
            reveal_id,
            market["id"],
            market["community_id"],
            offer["informer_id"],
            amount,
            now,
            now + float(market["payment_hold_hours"]) * HOUR,
        ],
    )


def _rejected_at(db: Database, reveal_id: int, now: float) -> float:
    """When the note's status last became *not helpful* (``now`` when this scoring pass made it so)."""
    row = db.execute(
        "SELECT MAX(changed_at) FROM note_status_history WHERE reveal_id = ? AND status = 'not_helpful'",
        [reveal_id],
    ).fetchone()
    return float(row[0]) if row and row[0] is not None else now


def settle(db: Database, statuses: Mapping[int, str], now: float) -> tuple[int, int]:
    """Settle open holds by the notes' statuses (reveal id -> status) and the clock; returns how
    many were paid and how many returned to the pool. Only a *not helpful* verdict reached within
    the hold returns the price: one that came after its end (the scorer did not run in between)
    pays, as the end of the hold would have."""
    paid = returned = 0
    with write(db):
        for offer_id, reveal_id, community_id, informer_id, amount, release_at in db.execute(
            "SELECT offer_id, reveal_id, community_id, informer_id, amount, release_at FROM held_payments"
            " WHERE settled_at IS NULL ORDER BY offer_id"
        ).fetchall():
            status = statuses.get(int(reveal_id))
            if status == "not_helpful" and _rejected_at(db, int(reveal_id), now) <= float(release_at):
                target, outcome, step = ledger.pool(int(community_id)), "returned", "hold-return"
            elif status == "helpful" or now >= float(release_at):
                target, outcome, step = ledger.wallet(int(informer_id)), "paid", "hold-release"
            else:
                continue
            ledger.transfer(
                db,
                f"offer:{offer_id}:{step}",
                [ledger.Move(ledger.held(int(offer_id)), target, int(amount))],
                kind=f"held_{outcome}",
            )
            db.execute(
                "UPDATE held_payments SET settled_at = ?, outcome = ? WHERE offer_id = ?",
                [now, outcome, offer_id],
            )
            if outcome == "paid":
                paid += 1
            else:
                returned += 1
            log.info("held payment of offer %s %s (%s credits)", offer_id, outcome, amount)
    return paid, returned
