"""Communities, accounts, roles, platform identities and posts: the market's participants."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from notebazaar.pipeline import ledger
from notebazaar.pipeline.config import LimitSettings, MarketSettings
from notebazaar.pipeline.db import one_row, write
from notebazaar.pipeline.errors import Conflict, Forbidden, NotFound, ValidationError
from notebazaar.pipeline.validation import (
    check_amount,
    check_id,
    check_text,
    setting_problems,
    strip_controls,
)

ROLES = ("reader", "informer", "moderator")
SETTING_KEYS = (
    "attention_slots",
    "reserve",
    "window_seconds",
    "price_of_information",
    "budget_per_market",
    "auction",
    "writer_offers_per_day",
    "writer_offers_per_right_note",
    "payment_hold_hours",
)
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_HANDLE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True)
class Community:
    id: int
    slug: str
    name: str
    attention_slots: int
    reserve: int
    window_seconds: int
    price_of_information: int
    budget_per_market: int
    auction: str
    payment_hold_hours: int
    active_prompt_id: int | None
    writer_offers_per_day: int = 5
    writer_offers_per_right_note: int = 2

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Community:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


def create_community(
    db: Database, slug: str, *, name: str | None = None, settings: MarketSettings | None = None
) -> Community:
    if not isinstance(slug, str) or not _SLUG.match(slug):
        raise ValidationError(f"community slug {slug!r} must be 1-63 lowercase letters, digits, '-' or '_'")
    settings = settings or MarketSettings()
    with write(db):
        if db.execute("SELECT 1 FROM communities WHERE slug = ?", [slug]).fetchone():
            raise Conflict(f"community {slug!r} already exists")
        db["communities"].insert(
            {"slug": slug, "name": name or slug, "created_at": time.time(), **settings.model_dump()}
        )
    return get_community(db, slug)


def get_community(db: Database, slug_or_id: str | int) -> Community:
    column = "id" if isinstance(slug_or_id, int) else "slug"
    if column == "id":
        check_id("community id", slug_or_id)
    row = one_row(db, f"SELECT * FROM communities WHERE {column} = ?", [slug_or_id])
    if row is None:
        raise NotFound(f"no community {slug_or_id!r}")
    return Community.from_row(row)


def update_settings(
    db: Database, community_id: int, changes: dict[str, Any], *, actor_id: int | None = None
) -> Community:
    """Change a community's market settings (validated as a whole) and audit the change."""
    current = get_community(db, community_id)
    unknown = set(changes) - set(SETTING_KEYS)
    if unknown:
        raise ValidationError(f"unknown community settings: {sorted(unknown)}")
    merged = {k: getattr(current, k) for k in SETTING_KEYS} | changes
    try:
        valid = MarketSettings(**merged)
    except Exception as exc:  # one line per setting that is wrong
        raise ValidationError(f"invalid community settings: {'; '.join(setting_problems(exc))}") from None
    with write(db):
        db["communities"].update(community_id, valid.model_dump())
        audit(db, actor_id, "community.settings", f"community:{community_id}", changes, community_id)
    return get_community(db, community_id)


def create_account(db: Database, handle: str, *, password_hash: str | None = None) -> int:
    if not isinstance(handle, str) or not _HANDLE.match(handle):
        raise ValidationError(f"handle {handle!r} must be 1-64 letters, digits or any of '_.:-'")
    with write(db):
        if db.execute("SELECT 1 FROM accounts WHERE handle = ?", [handle]).fetchone():
            raise Conflict(f"handle {handle!r} is taken")
        cursor = db.execute(
            "INSERT INTO accounts (handle, password_hash, created_at) VALUES (?, ?, ?)",
            [handle, password_hash, time.time()],
        )
        return int(cursor.lastrowid)  # type: ignore[arg-type]


def get_account(db: Database, handle_or_id: str | int) -> dict[str, Any]:
    column = "id" if isinstance(handle_or_id, int) else "handle"
    if column == "id":
        check_id("account id", handle_or_id)
    row = one_row(db, f"SELECT * FROM accounts WHERE {column} = ?", [handle_or_id])
    if row is None:
        raise NotFound(f"no account {handle_or_id!r}")
    return row


def account_for_identity(db: Database, platform: str, external_id: str, handle: str) -> int:
    """The account behind a platform identity, created on first sight."""
    with write(db):
        row = db.execute(
            "SELECT account_id FROM identities WHERE platform = ? AND external_id = ?",
            [platform, external_id],
        ).fetchone()
        if row:
            return int(row[0])
        base = re.sub(r"[^A-Za-z0-9_.:-]", "_", f"{platform}:{handle}")[:60] or platform
        candidate, n = base, 1
        while db.execute("SELECT 1 FROM accounts WHERE handle = ?", [candidate]).fetchone():
            n += 1
            candidate = f"{base}-{n}"
        account = create_account(db, candidate)
        db["identities"].insert({"platform": platform, "external_id": external_id, "account_id": account})
        return account


def grant(db: Database, account_id: int, community_id: int, role: str) -> None:
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    with write(db):
        db.execute(
            "INSERT OR IGNORE INTO roles (account_id, community_id, role) VALUES (?, ?, ?)",
            [account_id, community_id, role],
        )


def revoke(db: Database, account_id: int, community_id: int, role: str) -> bool:
    """Take a role away; False if the account did not hold it. Takes effect on the next request
    (surfaces read roles on every request, so no session or token keeps a revoked role)."""
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    with write(db):
        cursor = db.execute(
            "DELETE FROM roles WHERE account_id = ? AND community_id = ? AND role = ?",
            [account_id, community_id, role],
        )
        return cursor.rowcount > 0


def register_writer(db: Database, account_id: int) -> None:
    """Mark an account as an automatic note writer: its offers then count against the writer cap of
    each community it offers in (:func:`notebazaar.pipeline.market.writer_daily_cap`). Idempotent."""
    get_account(db, account_id)
    with write(db):
        db.execute(
            "INSERT OR IGNORE INTO writers (account_id, registered_at) VALUES (?, ?)",
            [account_id, time.time()],
        )


def is_writer(db: Database, account_id: int) -> bool:
    return bool(db.execute("SELECT 1 FROM writers WHERE account_id = ?", [account_id]).fetchone())


def has_role(db: Database, account_id: int, community_id: int, role: str) -> bool:
    """Whether the account holds the role in the community. A moderator banned from a community does
    not moderate it (nor lift the ban, nor ban back); the grant stays, for when the ban is lifted."""
    if role == "moderator" and is_banned(db, account_id, community_id):
        return False
    return _holds_role(db, account_id, community_id, role)


def require_moderator(db: Database, account_id: int | None, community_id: int) -> None:
    if account_id is None or not has_role(db, account_id, community_id, "moderator"):
        if account_id is not None and _holds_role(db, account_id, community_id, "moderator"):
            raise Forbidden("you are banned from this community, so you cannot moderate it")
        raise Forbidden("only a moderator of this community may do that")


def _holds_role(db: Database, account_id: int, community_id: int, role: str) -> bool:
    """The role as granted, whatever bans say."""
    return bool(
        db.execute(
            "SELECT 1 FROM roles WHERE account_id = ? AND community_id = ? AND role = ?",
            [account_id, community_id, role],
        ).fetchone()
    )


def is_banned(db: Database, account_id: int, community_id: int) -> bool:
    """Whether a moderator banned the account from the community (bans live in
    :mod:`notebazaar.pipeline.moderation`)."""
    return bool(
        db.execute(
            "SELECT 1 FROM bans WHERE account_id = ? AND community_id = ?",
            [account_id, community_id],
        ).fetchone()
    )


def require_not_banned(db: Database, account_id: int, community_id: int) -> None:
    """A banned account may not post, fund, offer or join in the community."""
    if is_banned(db, account_id, community_id):
        slug = get_community(db, community_id).slug
        raise Forbidden(f"you are banned from {slug}")


def audit(
    db: Database,
    actor_id: int | None,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
    community_id: int | None = None,
) -> None:
    db.execute(
        "INSERT INTO audit_log (at, actor_id, community_id, action, target, detail)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [time.time(), actor_id, community_id, action, target, json.dumps(detail or {})],
    )


def mint(
    db: Database, account_id: int, amount: int, *, key: str | None = None, limits: LimitSettings | None = None
) -> int:
    """Create credits in an account's wallet (an operator action: how credits enter the system).

    At most ``limits.max_amount`` credits at a time, like every other transfer."""
    get_account(db, account_id)
    check_amount("amount", amount, minimum=1, maximum=(limits or LimitSettings()).max_amount)
    key = key or f"mint:wallet:{account_id}:{time.time_ns()}"
    return ledger.mint(db, key, ledger.wallet(account_id), amount, memo="mint")


def fund_pool(
    db: Database,
    community_id: int,
    account_id: int,
    amount: int,
    *,
    key: str | None = None,
    limits: LimitSettings | None = None,
) -> int:
    """A reader moves credits from their wallet into the community's pool (not a banned one; at
    most ``limits.max_amount`` at a time)."""
    get_community(db, community_id)
    check_amount("amount", amount, minimum=1, maximum=(limits or LimitSettings()).max_amount)
    require_not_banned(db, account_id, community_id)
    key = key or f"fund:{community_id}:{account_id}:{time.time_ns()}"
    return ledger.transfer(
        db,
        key,
        [ledger.Move(ledger.wallet(account_id), ledger.pool(community_id), amount)],
        kind="fund_pool",
    )


def add_post(
    db: Database,
    community_id: int,
    text: str,
    *,
    platform: str = "cli",
    external_id: str | None = None,
    url: str | None = None,
    author: str | None = None,
    now: float | None = None,
) -> int:
    """Record a post (idempotent per platform and external id) and return its id."""
    # A post is someone else's text, seen on a platform: stray control characters are dropped, not
    # refused (a note, by contrast, is refused with them).
    if isinstance(text, str):
        text = strip_controls(text)
    text = check_text("post text", text, max_chars=40_000, required=True)
    get_community(db, community_id)
    with write(db):
        if external_id is not None:
            row = db.execute(
                "SELECT id FROM posts WHERE platform = ? AND external_id = ?",
                [platform, external_id],
            ).fetchone()
            if row:
                return int(row[0])
        now = time.time() if now is None else now
        cursor = db.execute(
            "INSERT INTO posts (community_id, platform, external_id, url, author, text, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [community_id, platform, external_id or f"auto:{time.time_ns()}", url, author, text, now],
        )
        post_id = int(cursor.lastrowid)  # type: ignore[arg-type]
        db.execute(
            "INSERT INTO documents (kind, ref_id, community_id, text, created_at)"
            " VALUES ('post', ?, ?, ?, ?)",
            [post_id, community_id, text, now],
        )
        return post_id


def get_post(db: Database, post_id: int) -> dict[str, Any]:
    row = one_row(db, "SELECT * FROM posts WHERE id = ?", [check_id("post id", post_id)])
    if row is None:
        raise NotFound(f"no post {post_id}")
    return row
