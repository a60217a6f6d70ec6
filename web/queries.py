"""Read-only queries the pages need and the pipeline does not offer (joins for display).

None of these touch sealed content: offers hold only ciphertext, and the web never unseals.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlite_utils import Database

from notebazaar.pipeline import community, ratings, rewards
from notebazaar.pipeline.market import budget_left, get_market
from notebazaar.pipeline.recursion import sub_markets

_REVEAL_COLUMNS = (
    "r.id, r.offer_id, r.post_id, r.market_id, r.classification, r.text, r.sources, r.price,"
    " r.revealed_at, r.unpublished_at, r.unpublish_reason, a.handle AS informer, r.informer_id"
)


def _reveal(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row["sources"] = json.loads(row["sources"] or "[]")
    return row


def reveals_for_posts(
    db: Database, post_ids: list[int], *, reader_id: int | None = None
) -> dict[int, list[dict[str, Any]]]:
    """Published (not unpublished) notes of top-level markets, grouped by post, each with its
    bridging status (``status``, None before the first scoring), its rating counts and, for a
    signed-in reader, ``my_rating``."""
    out: dict[int, list[dict[str, Any]]] = {pid: [] for pid in post_ids}
    if not post_ids:
        return out
    marks = ",".join("?" * len(post_ids))
    rows = [
        _reveal(row)
        for row in db.query(
            f"SELECT {_REVEAL_COLUMNS}, s.status FROM reveals r JOIN accounts a ON a.id = r.informer_id"
            " JOIN markets m ON m.id = r.market_id LEFT JOIN note_statuses s ON s.reveal_id = r.id"
            f" WHERE r.post_id IN ({marks}) AND r.unpublished_at IS NULL AND m.parent_offer_id IS NULL"
            " ORDER BY r.id",
            post_ids,
        )
    ]
    ids = [int(r["id"]) for r in rows]
    counts = ratings.counts(db, ids)
    mine = ratings.ratings_by(db, reader_id, ids) if reader_id is not None else {}
    for row in rows:
        row["ratings"] = counts[int(row["id"])]
        row["my_rating"] = mine.get(int(row["id"]))
        out[int(row["post_id"])].append(row)
    return out


def hidden_notes(db: Database, post_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Notes readers' ratings hid (bridging status not helpful, or undecided with an author's record
    more wrong than right: rule 8), grouped by post: id, when, why and the scores; never their text
    (a moderator's unpublishing is not listed)."""
    out: dict[int, list[dict[str, Any]]] = {pid: [] for pid in post_ids}
    if not post_ids:
        return out
    marks = ",".join("?" * len(post_ids))
    for row in db.query(
        "SELECT r.id, r.post_id, r.unpublished_at AS hidden_at, r.unpublish_reason AS hidden_reason,"
        " s.status, s.intercept, s.factor, s.ratings FROM reveals r"
        " LEFT JOIN note_statuses s ON s.reveal_id = r.id"
        f" WHERE r.post_id IN ({marks}) AND r.hidden_by = 'readers' ORDER BY r.id",
        post_ids,
    ):
        out[int(row["post_id"])].append(dict(row) | {"hidden": True})
    return out


def _with_time_left(row: dict[str, Any], now: float) -> dict[str, Any]:
    row = dict(row)
    closes_at = row.get("closes_at")
    row["seconds_left"] = max(0, int(closes_at - now)) if closes_at is not None else None
    return row


def feed(
    db: Database, *, community_id: int | None = None, limit: int = 50, reader_id: int | None = None
) -> list[dict[str, Any]]:
    """Newest posts with their market's state and their revealed notes."""
    where, params = ("WHERE p.community_id = ?", [community_id]) if community_id else ("", [])
    posts = [
        _with_time_left(r, time.time())
        for r in db.query(
            "SELECT p.id, p.text, p.author, p.url, p.platform, p.created_at, p.community_id,"
            " c.slug AS community, m.id AS market_id, m.status AS market_status, m.closes_at"
            " FROM posts p JOIN communities c ON c.id = p.community_id"
            " LEFT JOIN markets m ON m.post_id = p.id AND m.parent_offer_id IS NULL"
            f" {where} ORDER BY p.id DESC LIMIT ?",
            [*params, limit],
        )
    ]
    ids = [int(p["id"]) for p in posts]
    notes = reveals_for_posts(db, ids, reader_id=reader_id)
    hidden = hidden_notes(db, ids)
    for post in posts:
        post["notes"] = notes[int(post["id"])]
        post["hidden_notes"] = hidden[int(post["id"])]
    return posts


def post_detail(db: Database, post_id: int, *, reader_id: int | None = None) -> dict[str, Any] | None:
    rows = list(
        db.query(
            "SELECT p.id, p.text, p.author, p.url, p.platform, p.created_at, p.community_id,"
            " p.resolution, c.slug AS community, c.name AS community_name FROM posts p"
            " JOIN communities c ON c.id = p.community_id WHERE p.id = ?",
            [post_id],
        )
    )
    if not rows:
        return None
    post = dict(rows[0])
    post["market"] = market_state(db, post_id)
    post["notes"] = reveals_for_posts(db, [post_id], reader_id=reader_id)[post_id]
    post["hidden_notes"] = hidden_notes(db, [post_id])[post_id]
    # Sub-markets about the market's offers (recursion): public teaser, status and time left only.
    post["sub_markets"] = sub_markets(db, int(post["market"]["id"])) if post["market"] else []
    return post


def market_state(db: Database, post_id: int) -> dict[str, Any] | None:
    """The post's top-level market: status, time left, budget, and how many offers it holds.

    Offer counts are public; who offered what is not shown here (an informer sees its own offers on
    its dashboard).
    """
    rows = list(
        db.query(
            "SELECT id, status, opened_at, closes_at, closed_at, settled_at, budget, attention_slots,"
            " reserve, price_of_information, auction, prior, belief FROM markets"
            " WHERE post_id = ? AND parent_offer_id IS NULL",
            [post_id],
        )
    )
    if not rows:
        return None
    market = _with_time_left(rows[0], time.time())
    market_id = int(market["id"])
    market["budget_left"] = budget_left(db, get_market(db, market_id))  # an open market: what it could take
    counts = dict(
        db.execute(
            "SELECT status, COUNT(*) FROM offers WHERE market_id = ? GROUP BY status", [market_id]
        ).fetchall()
    )
    market["offer_counts"] = counts
    market["sealed_offers"] = int(counts.get("sealed", 0))
    return market


def informer_offers(db: Database, account_id: int) -> list[dict[str, Any]]:
    """An informer's own offers with their market and post. Never another informer's."""
    return [
        _with_time_left(r, time.time())
        for r in db.query(
            "SELECT o.id, o.market_id, o.status, o.bid, o.price, o.rank, o.charge, o.outcome, o.teaser,"
            " o.commitment, o.submitted_at, m.status AS market_status, m.closes_at, m.post_id,"
            " p.text AS post_text, c.slug AS community, r.id AS reveal_id, r.unpublished_at"
            " FROM offers o JOIN markets m ON m.id = o.market_id JOIN posts p ON p.id = m.post_id"
            " JOIN communities c ON c.id = m.community_id LEFT JOIN reveals r ON r.offer_id = o.id"
            " WHERE o.informer_id = ? ORDER BY o.id DESC",
            [account_id],
        )
    ]


def earnings(db: Database, account_id: int) -> dict[str, int]:
    """What an informer was paid for bought notes, and what its bids cost in attention charges, as
    the ledger has them (the rows of the reward export): a price still held under
    ``payment_hold_hours``, or returned to the pool by readers' verdict, is not counted as paid, and
    a charge refunded for a note the judge could not read is not counted as charged."""
    rows = list(rewards.offer_rewards(db, informer_id=account_id))
    paid = sum(int(r["paid"]) for r in rows)
    charged = sum(int(r["charged"]) for r in rows)
    bought = int(
        db.execute(
            "SELECT COUNT(*) FROM offers WHERE informer_id = ? AND status = 'bought'", [account_id]
        ).fetchone()[0]
    )
    return {"paid": paid, "attention_charges": charged, "net": paid - charged, "notes_bought": bought}


def roles_of(db: Database, account_id: int) -> list[dict[str, Any]]:
    """The roles the account holds, as :func:`notebazaar.pipeline.community.has_role` counts them
    (a moderator banned from a community does not moderate it)."""
    return [
        r
        for r in db.query(
            "SELECT c.id AS community_id, c.slug AS community, r.role FROM roles r"
            " JOIN communities c ON c.id = r.community_id WHERE r.account_id = ? ORDER BY c.slug, r.role",
            [account_id],
        )
        if community.has_role(db, account_id, int(r["community_id"]), str(r["role"]))
    ]


def moderated_communities(db: Database, account_id: int) -> list[dict[str, Any]]:
    return [
        c
        for c in db.query(
            "SELECT c.id, c.slug, c.name FROM communities c JOIN roles r ON r.community_id = c.id"
            " WHERE r.account_id = ? AND r.role = 'moderator' ORDER BY c.slug",
            [account_id],
        )
        if community.has_role(db, account_id, int(c["id"]), "moderator")
    ]


def communities(db: Database) -> list[dict[str, Any]]:
    return list(db.query("SELECT id, slug, name FROM communities ORDER BY slug"))


def community_markets(db: Database, community_id: int, *, limit: int = 100) -> list[dict[str, Any]]:
    return [
        _with_time_left(r, time.time())
        for r in db.query(
            "SELECT m.id, m.post_id, m.status, m.closes_at, m.budget, m.cancel_reason, p.text AS post_text,"
            " (SELECT COUNT(*) FROM offers o WHERE o.market_id = m.id AND o.status = 'sealed') AS sealed"
            " FROM markets m JOIN posts p ON p.id = m.post_id"
            " WHERE m.community_id = ? AND m.parent_offer_id IS NULL ORDER BY m.id DESC LIMIT ?",
            [community_id, limit],
        )
    ]


def community_reveals(db: Database, community_id: int, *, limit: int = 100) -> list[dict[str, Any]]:
    """Every revealed note of the community, unpublished ones included (for moderators)."""
    return [
        _reveal(r)
        for r in db.query(
            f"SELECT {_REVEAL_COLUMNS} FROM reveals r JOIN accounts a ON a.id = r.informer_id"
            " JOIN posts p ON p.id = r.post_id WHERE p.community_id = ? ORDER BY r.id DESC LIMIT ?",
            [community_id, limit],
        )
    ]


def community_informers(db: Database, community_id: int) -> list[dict[str, Any]]:
    return list(
        db.query(
            "SELECT a.id, a.handle, b.reason AS ban_reason, b.banned_at FROM roles r"
            " JOIN accounts a ON a.id = r.account_id"
            " LEFT JOIN bans b ON b.account_id = a.id AND b.community_id = r.community_id"
            " WHERE r.community_id = ? AND r.role = 'informer' ORDER BY a.handle",
            [community_id],
        )
    )


def judge_failures(db: Database, community_id: int) -> dict[str, Any]:
    """The judge's failures in the community's markets, by reason (priors as ``prior:<reason>``),
    out of its calls: a judge that fails is shown, never mistaken for one with nothing to say."""
    calls = db.execute(
        "SELECT (SELECT COUNT(*) FROM markets WHERE community_id = ? AND prior IS NOT NULL)"
        " + (SELECT COUNT(*) FROM inspections i JOIN markets m ON m.id = i.market_id"
        " WHERE m.community_id = ?)",
        [community_id, community_id],
    ).fetchone()[0]
    reasons: dict[str, int] = {}
    for reason, count in db.execute(
        "SELECT i.reason, COUNT(*) FROM inspections i JOIN markets m ON m.id = i.market_id"
        " WHERE m.community_id = ? AND i.reason LIKE 'judge_error:%' GROUP BY i.reason",
        [community_id],
    ):
        reasons[str(reason).removeprefix("judge_error:")] = int(count)
    for reason, count in db.execute(
        "SELECT prior_error, COUNT(*) FROM markets WHERE community_id = ? AND prior_error IS NOT NULL"
        " GROUP BY prior_error",
        [community_id],
    ):
        reasons["prior:" + str(reason).removeprefix("judge_error:")] = int(count)
    return {"calls": int(calls), "failed": sum(reasons.values()), "reasons": dict(sorted(reasons.items()))}
