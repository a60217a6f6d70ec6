"""Moderator actions: unpublishing revealed notes, banning and unbanning accounts. Each is checked
for the moderator role and audited.

What a ban does to money (the rule, also in the README's market rules): a banned account's offers
in the community are never inspected, bought or paid.

- Offers still **sealed** (their market has not run its auction) are shredded at the ban with the
  whole bid refunded, as on a withdrawal: nothing was charged for them yet.
- Offers that already **won** an attention slot (auction run, not yet inspected) are shredded
  uninspected when settlement reaches them (reason ``informer_banned``): their attention charge
  stays with the pool, as for any inspected offer that is not bought, and the rest of the bid was
  refunded at the auction. Settling later, not at the ban, keeps a sub-market that is judging such
  an offer able to read its subject until it settles.
- Notes bought before the ban stay bought and paid.

A banned account cannot offer, post, fund the pool or rejoin the community. A moderator cannot ban
himself: it is never what he meant, and a moderator who should stop acting loses the role
(``notebazaar account revoke``) instead.
Community settings live in :mod:`notebazaar.pipeline.community`; prompt versions in
:mod:`notebazaar.pipeline.prompts`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlite_utils import Database

from notebazaar.pipeline import credit, ledger, outbox
from notebazaar.pipeline.community import audit, get_account, is_banned, require_moderator
from notebazaar.pipeline.db import write
from notebazaar.pipeline.errors import Conflict, Forbidden, NotFound
from notebazaar.pipeline.market import shred
from notebazaar.pipeline.settlement import BANNED
from notebazaar.pipeline.validation import check_id, check_text

# What the platforms show in place of a note a moderator unpublished; the reason is for the audit log.
MODERATOR_TAKEDOWN = "a moderator unpublished it"


@dataclass(frozen=True)
class BanReport:
    account_id: int
    shredded: list[int]  # sealed offers shredded at the ban
    refunded: int  # credits of their bids returned to the wallet


def unpublish(db: Database, moderator_id: int, reveal_id: int, reason: str) -> None:
    """Hide a revealed note from every surface, with a reason. The informer keeps the payment."""
    reveal_id = check_id("note id", reveal_id)
    row = db.execute(
        "SELECT r.unpublished_at, p.community_id FROM reveals r JOIN posts p ON p.id = r.post_id"
        " WHERE r.id = ?",
        [reveal_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"no revealed note {reveal_id}")
    require_moderator(db, moderator_id, int(row[1]))
    if row[0] is not None:
        raise Conflict(f"note {reveal_id} is already unpublished")
    reason = check_text("reason", reason, max_chars=500, required=True)
    with write(db):
        db.execute(
            "UPDATE reveals SET unpublished_at = ?, unpublish_reason = ?, hidden_by = 'moderator'"
            " WHERE id = ?",
            [time.time(), reason, reveal_id],
        )
        db.execute("DELETE FROM documents WHERE kind = 'reveal' AND ref_id = ?", [reveal_id])
        credit.review(db, reveal_id)  # a hidden note no longer exposes its readers
        outbox.flag_takedown(db, reveal_id, MODERATOR_TAKEDOWN)  # the reason itself stays private
        audit(db, moderator_id, "note.unpublish", f"reveal:{reveal_id}", {"reason": reason}, int(row[1]))


def ban(
    db: Database,
    moderator_id: int,
    account_id: int,
    community_id: int,
    reason: str,
    *,
    now: float | None = None,
) -> BanReport:
    """Ban an account from a community, shredding its sealed offers there with their bids refunded,
    in one transaction. Refused for a moderator's own account and for an account already banned."""
    require_moderator(db, moderator_id, community_id)
    account_id = check_id("account id", account_id)
    if account_id == moderator_id:
        raise Forbidden("you cannot ban yourself")
    reason = check_text("reason", reason, max_chars=500, required=True)
    get_account(db, account_id)
    now = time.time() if now is None else now
    shredded: list[int] = []
    refunded = 0
    with write(db):
        if is_banned(db, account_id, community_id):
            raise Conflict(f"account {account_id} is already banned from this community")
        db.execute(
            "INSERT INTO bans (account_id, community_id, reason, banned_by, banned_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [account_id, community_id, reason, moderator_id, now],
        )
        sealed = db.execute(
            "SELECT o.id, o.market_id, o.bid FROM offers o JOIN markets m ON m.id = o.market_id"
            " WHERE o.informer_id = ? AND m.community_id = ? AND o.status = 'sealed' ORDER BY o.id",
            [account_id, community_id],
        ).fetchall()
        for offer_id, market_id, bid in sealed:
            if bid > 0:
                ledger.transfer(
                    db,
                    f"offer:{offer_id}:ban-refund",
                    [ledger.Move(ledger.escrow(int(market_id)), ledger.wallet(account_id), int(bid))],
                    kind="refund_bid",
                )
            shred(db, int(offer_id), "shredded", BANNED)
            shredded.append(int(offer_id))
            refunded += int(bid)
        detail = {"reason": reason, "offers_shredded": len(shredded), "refunded": refunded}
        audit(db, moderator_id, "informer.ban", f"account:{account_id}", detail, community_id)
    return BanReport(account_id, shredded, refunded)


def unban(db: Database, moderator_id: int, account_id: int, community_id: int) -> None:
    """Lift a ban. The account's roles were never removed, so it can offer, post and fund again;
    offers shredded by the ban stay shredded."""
    require_moderator(db, moderator_id, community_id)
    account_id = check_id("account id", account_id)
    with write(db):
        cursor = db.execute(
            "DELETE FROM bans WHERE account_id = ? AND community_id = ?", [account_id, community_id]
        )
        if cursor.rowcount == 0:
            raise NotFound(f"account {account_id} is not banned from this community")
        audit(db, moderator_id, "informer.unban", f"account:{account_id}", {}, community_id)


def audit_log(db: Database, community_id: int, *, limit: int = 200) -> list[dict[str, object]]:
    return list(
        db.query(
            "SELECT l.id, l.at, a.handle AS actor, l.action, l.target, l.detail FROM audit_log l"
            " LEFT JOIN accounts a ON a.id = l.actor_id WHERE l.community_id = ?"
            " ORDER BY l.id DESC LIMIT ?",
            [community_id, limit],
        )
    )
