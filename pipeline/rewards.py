"""Rewards: what the market paid for each offer, as a training signal for note writers.

The essay behind the product calls it *reinforcement learning from market feedback*: the informer can
be a model being trained, the post its input, its offer its output, and what the market pays it the
reward. This module turns the ledger into that signal, one row per offer
(``notebazaar export rewards``, ``GET /api/me/rewards``, and the simulated writers).

What a row holds, and why each number comes from where it does:

- ``charged``: the attention charge, read from the ledger (the ``offer:<id>:charge`` transfer into
  the pool, less an ``offer:<id>:charge-refund`` to the wallet when the judge could not read the
  note or refused a stranger for want of credit), so a second-price charge is what the auction
  really took, not the bid.
- ``paid``: what reached the informer's wallet for the note (the ``offer:<id>:purchase`` transfer,
  or ``offer:<id>:hold-release`` once a held payment is released under ``[market]
  payment_hold_hours``). While the price waits in escrow the row is not ``final``; a price the hold
  returned to the pool was never paid. A sub-note bought and held sealed (outcome ``held``) is
  already paid; a refund of an unused bid is neither a charge nor a payment.
- ``status``: the note's bridging status (``note_statuses``, written by the scorer of readers'
  ratings) when it has one, else null.
- ``classification``: only for a note that was revealed. An unbought note was shredded, so the
  market has neither its text nor its classification: a writer joins these rows to its own log by
  ``commitment``, which it can recompute from its note and salt
  (:func:`notebazaar.pipeline.sealing.commitment`).

``reward`` is :func:`reward`, version :data:`REWARD_VERSION`. Training code depends on it: change it
only with a new version number, and say so in the README.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlite_utils import Database

REWARD_VERSION = 1

NOTE_STATUSES = ("needs_more_ratings", "helpful", "not_helpful")


def reward(*, paid: int, charged: int, status: str | None) -> int:
    """The reward of one offer, in credits (version 1).

    Profit: ``paid - charged``. When readers' ratings have given the note a bridging status of
    ``not_helpful``, what it was paid counts against it instead: ``-paid - charged``; the market was
    wrong to buy it, and a writer must not learn to repeat it. ``helpful``, ``needs_more_ratings``
    and no status leave the profit as it is. An offer withdrawn, or never inspected, earns 0.
    """
    if status is not None and status not in NOTE_STATUSES:
        raise ValueError(f"unknown note status {status!r}")
    if status == "not_helpful":
        return -paid - charged
    return paid - charged


# The ledger transfers behind ``charged`` and ``paid``, by the idempotency keys settlement uses.
def _moved(steps: tuple[str, ...], account: str) -> str:
    """SQL: what the offer's transfers ``offer:<id>:<step>`` moved into ``account``."""
    keys = ", ".join(f"'offer:' || o.id || ':{step}'" for step in steps)
    return (
        "COALESCE((SELECT SUM(e.amount) FROM ledger_transactions t"
        " JOIN ledger_entries e ON e.transaction_id = t.id"
        " JOIN ledger_accounts la ON la.id = e.account_id"
        f" WHERE t.idempotency_key IN ({keys}) AND la.ref = {account}), 0)"
    )


_POOL, _WALLET = "'pool:' || m.community_id", "'wallet:' || o.informer_id"
_ROWS = f"""
SELECT o.id AS offer_id, o.commitment, o.market_id, m.post_id, p.text AS post_text,
       m.parent_offer_id, a.handle AS informer, o.informer_id, o.bid, o.price, o.submitted_at,
       o.status AS offer_status, o.outcome, r.id AS reveal_id, r.classification, ns.status,
       {_moved(("charge",), _POOL)} - {_moved(("charge-refund",), _WALLET)} AS charged,
       {_moved(("purchase", "hold-release"), _WALLET)} AS paid,
       EXISTS (SELECT 1 FROM held_payments h WHERE h.offer_id = o.id AND h.settled_at IS NULL) AS held
FROM offers o
JOIN markets m ON m.id = o.market_id
JOIN posts p ON p.id = m.post_id
JOIN accounts a ON a.id = o.informer_id
LEFT JOIN reveals r ON r.offer_id = o.id
LEFT JOIN note_statuses ns ON ns.reveal_id = r.id
"""


def charged(db: Database, market_id: int) -> dict[int, int]:
    """What each offer of a market was charged for attention, net of a charge given back (a note
    the judge could not read, a stranger refused for want of credit): the ``charged`` of the export."""
    return {
        int(offer_id): int(amount)
        for offer_id, amount in db.execute(
            f"SELECT o.id, {_moved(('charge',), _POOL)} - {_moved(('charge-refund',), _WALLET)}"
            " FROM offers o JOIN markets m ON m.id = o.market_id WHERE o.market_id = ?",
            [market_id],
        ).fetchall()
    }


ROW_KEYS = (
    "offer_id",
    "commitment",
    "market_id",
    "post_id",
    "post_text",
    "parent_offer_id",
    "informer",
    "classification",
    "bid",
    "price",
    "charged",
    "paid",
    "outcome",
    "final",
    "status",
    "reveal_id",
    "submitted_at",
    "reward",
    "reward_version",
)


def _row(raw: dict[str, Any]) -> dict[str, Any]:
    # An offer still sealed, or won and waiting for the judge, has no outcome yet.
    outcome = raw["outcome"] or raw["offer_status"]
    paid, charged = int(raw["paid"]), int(raw["charged"])
    return {
        "offer_id": raw["offer_id"],
        "commitment": raw["commitment"],
        "market_id": raw["market_id"],
        "post_id": raw["post_id"],
        "post_text": raw["post_text"],
        "parent_offer_id": raw["parent_offer_id"],
        "informer": raw["informer"],
        "classification": raw["classification"],
        "bid": raw["bid"],
        "price": raw["price"],
        "charged": charged,
        "paid": paid,
        "outcome": outcome,
        "final": raw["outcome"] is not None and not raw["held"],  # a held price may still go back
        "status": raw["status"],
        "reveal_id": raw["reveal_id"],
        "submitted_at": raw["submitted_at"],
        "reward": reward(paid=paid, charged=charged, status=raw["status"]),
        "reward_version": REWARD_VERSION,
    }


def offer_rewards(
    db: Database,
    *,
    informer_id: int | None = None,
    since: float | None = None,
    market_id: int | None = None,
) -> Iterator[dict[str, Any]]:
    """One row per offer (keys :data:`ROW_KEYS`), oldest first; optionally only one informer's,
    those submitted at or after ``since`` (Unix seconds), or one market's."""
    where, params = [], []
    if informer_id is not None:
        where.append("o.informer_id = ?")
        params.append(informer_id)
    if since is not None:
        where.append("o.submitted_at >= ?")
        params.append(since)
    if market_id is not None:
        where.append("o.market_id = ?")
        params.append(market_id)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    for raw in db.query(_ROWS + clause + " ORDER BY o.id", params):
        yield _row(raw)
