"""The JSON API: everything the pages do, for bots and scripts, documented at ``/openapi.json``.

Authentication is ``Authorization: Bearer <token>`` only (never the session cookie), so the API
needs no CSRF token. Bodies are pydantic models built from :mod:`notebazaar.web.contract` (strict,
bounded integers; unknown fields refused); the pipeline re-checks every value, and every refusal or
failure comes back as ``{"error": code, "detail": message}`` with the status the document declares.
Every call that changes something takes an ``Idempotency-Key`` (:mod:`notebazaar.web.idempotency`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field, Strict
from sqlite_utils import Database
from starlette.concurrency import run_in_threadpool

from notebazaar.pipeline import (
    community,
    ledger,
    market,
    moderation,
    prompts,
    ratings,
    records,
    rewards,
    statuses,
)
from notebazaar.pipeline.community import SETTING_KEYS, Community
from notebazaar.pipeline.config import (
    BUDGET_RANGE,
    PAYMENT_HOLD_RANGE,
    PRICE_OF_INFORMATION_RANGE,
    RESERVE_RANGE,
    SLOTS_RANGE,
    WINDOW_RANGE,
    WRITER_OFFERS_RANGE,
)
from notebazaar.pipeline.errors import Forbidden, MarketClosed, NotFound
from notebazaar.web import auth, evaluation, queries
from notebazaar.web.closing import close_now
from notebazaar.web.contract import ERROR_RESPONSES, Amount, Body, Count, Credits, Id, PathId, Price
from notebazaar.web.deps import (
    DB,
    ApiUser,
    JudgeDep,
    SettingsDep,
    User,
    checked_log_in,
    checked_password_change,
)
from notebazaar.web.idempotency import Idempotent

router = APIRouter(prefix="/api", responses=ERROR_RESPONSES)


def _ranged(bounds: tuple[int, int]) -> Any:
    """An optional strict integer setting within its sane range (pipeline/config.py)."""
    return Annotated[int, Strict(), Field(ge=bounds[0], le=bounds[1])] | None


class SignUp(Body):
    handle: str = Field(examples=["alice"])
    password: str = Field(min_length=auth.MIN_PASSWORD_CHARS, max_length=auth.MAX_PASSWORD_CHARS)
    community: str = Field(examples=["demo"])


class TokenRequest(Body):
    handle: str
    password: str
    label: str = Field("api", max_length=100)


class PasswordChange(Body):
    current_password: str
    new_password: str = Field(min_length=auth.MIN_PASSWORD_CHARS, max_length=auth.MAX_PASSWORD_CHARS)


class NewPost(Body):
    community: str
    text: str = Field(max_length=40_000)


class Funding(Body):
    amount: Amount


class SealedNote(Body):
    classification: Literal["misleading", "not_misleading"]
    text: str
    sources: list[str] = Field(default_factory=list)
    bid: Credits = Field(description="Credits for the judge's attention: at least the market's reserve.")
    price: Price


class SettingsChange(Body):
    attention_slots: _ranged(SLOTS_RANGE) = None  # type: ignore[valid-type]
    reserve: _ranged(RESERVE_RANGE) = None  # type: ignore[valid-type]
    window_seconds: _ranged(WINDOW_RANGE) = None  # type: ignore[valid-type]
    price_of_information: _ranged(PRICE_OF_INFORMATION_RANGE) = None  # type: ignore[valid-type]
    budget_per_market: _ranged(BUDGET_RANGE) = None  # type: ignore[valid-type]
    auction: Literal["gsp", "first_price"] | None = None
    writer_offers_per_day: _ranged(WRITER_OFFERS_RANGE) = None  # type: ignore[valid-type]
    writer_offers_per_right_note: _ranged(WRITER_OFFERS_RANGE) = None  # type: ignore[valid-type]
    payment_hold_hours: _ranged(PAYMENT_HOLD_RANGE) = None  # type: ignore[valid-type]


class PromptVersion(Body):
    text: str
    note: str = ""


class EvalRequest(Body):
    path: str = Field(description="A labelled .jsonl file on the server.")
    judge_kind: Literal["local", "openai", "simple"] = "local"
    limit: Count | None = None


class NoteRating(Body):
    level: Literal["helpful", "somewhat_helpful", "not_helpful"] = Field(examples=["helpful"])
    tags: list[str] = Field(
        [],
        max_length=8,
        description="Optional reason tags, Community Notes' own: helpful ones (e.g. good_sources,"
        " clear) with helpful, not-helpful ones (e.g. incorrect, off_topic) with not_helpful, either"
        " with somewhat_helpful.",
    )


class Reason(Body):
    reason: str


class Ban(Body):
    account_id: Id
    reason: str


def _moderated(slug: str, user: User, db: Database) -> Community:
    com = community.get_community(db, slug)
    community.require_moderator(db, user.id, com.id)
    return com


# --- accounts ---------------------------------------------------------------------------------------


@router.post("/signup", status_code=201, tags=["accounts"])
def api_signup(*, body: SignUp, request: Request, db: DB, once: Idempotent) -> dict[str, Any]:
    """Create an account (reader and informer in ``community``) with the sign-up credits
    (``[web] signup_credits``, 0 by default)."""
    grant = request.app.state.signup_grant

    def work() -> dict[str, Any]:
        account_id = auth.sign_up(db, body.handle, body.password, body.community, grant=grant)
        return {
            "account_id": account_id,
            "handle": body.handle,
            "wallet": ledger.balance(db, ledger.wallet(account_id)),
        }

    return once(work, atomic=False)  # type: ignore[no-any-return]  # argon2 must not hold the write lock


@router.post("/tokens", status_code=201, tags=["accounts"])
def api_token(*, body: TokenRequest, request: Request, db: DB, once: Idempotent) -> dict[str, Any]:
    """Trade a handle and password for a bearer token. The token is shown only in this answer.
    Attempts are rate-limited per handle and per client address (429 with ``Retry-After``)."""

    def work() -> dict[str, Any]:
        account_id = checked_log_in(request, db, body.handle, body.password)
        return {"token": auth.create_token(db, account_id, body.label), "account_id": account_id}

    return once(work, atomic=False)  # type: ignore[no-any-return]  # argon2 must not hold the write lock


@router.post("/me/password", tags=["accounts"])
def api_change_password(
    *, body: PasswordChange, request: Request, user: ApiUser, db: DB, once: Idempotent
) -> dict[str, Any]:
    """Change your password (the current one is checked, rate-limited like logins). Every web
    session of the account ends; API tokens keep working until revoked."""

    def work() -> dict[str, Any]:
        ended = checked_password_change(request, db, user, body.current_password, body.new_password)
        return {"account_id": user.id, "sessions_ended": ended}

    return once(work, atomic=False)  # type: ignore[no-any-return]  # argon2 must not hold the write lock


@router.get("/me", tags=["accounts"])
def api_me(*, user: ApiUser, db: DB) -> dict[str, Any]:
    """Your wallet, roles, earnings and track record."""
    track = records.track_record(db, user.id)
    return {
        "account_id": user.id,
        "handle": user.handle,
        "wallet": ledger.balance(db, ledger.wallet(user.id)),
        "roles": user.roles,
        "earnings": queries.earnings(db, user.id),
        "track_record": {
            "right": track.right,
            "wrong": track.wrong,
            "discredited": track.discredited,
            "reliability": track.reliability,
        },
    }


@router.get("/me/offers", tags=["informers"])
def api_my_offers(*, user: ApiUser, db: DB) -> list[dict[str, Any]]:
    """Your own offers and their status (never their content, never anyone else's offers)."""
    return queries.informer_offers(db, user.id)


@router.get("/me/rewards", tags=["informers"])
def api_my_rewards(
    *,
    user: ApiUser,
    db: DB,
    since: Annotated[
        float | None, Query(description="Only offers submitted at or after (Unix seconds).")
    ] = None,
) -> list[dict[str, Any]]:
    """Your offers' rewards, oldest first: charged, paid, outcome, the note's status and ``reward``
    (the rows of ``notebazaar export rewards``). Never a note's text; join by ``commitment`` to your own."""
    return list(rewards.offer_rewards(db, informer_id=user.id, since=since))


@router.post("/me/writer", tags=["informers"])
def api_register_writer(*, user: ApiUser, db: DB, once: Idempotent) -> dict[str, Any]:
    """Declare this account an automatic note writer (``notebazaar writer`` does, at start). A writer's
    offers count against each community's writer cap; the cap grows with its track record.
    There is no way back: a writer stays one."""

    def work() -> dict[str, Any]:
        community.register_writer(db, user.id)
        return {"account_id": user.id, "writer": True, "caps": _writer_caps(db, user)}

    return once(work)  # type: ignore[no-any-return]


def _writer_caps(db: Database, user: User) -> dict[str, int]:
    communities = {r["community_id"] for r in user.roles if r["role"] == "informer"}
    caps = {}
    for community_id in sorted(communities):
        com = community.get_community(db, int(community_id))
        caps[com.slug] = market.writer_daily_cap(db, user.id, com)
    return caps


@router.post("/offers/{offer_id}/withdraw", tags=["informers"])
def api_withdraw(*, offer_id: PathId, user: ApiUser, db: DB, once: Idempotent) -> dict[str, Any]:
    """Withdraw your sealed offer before close: the bid is refunded and the note shredded."""

    def work() -> dict[str, Any]:
        market.withdraw_offer(db, offer_id, user.id)
        return {"offer_id": offer_id, "status": "withdrawn"}

    return once(work)  # type: ignore[no-any-return]


@router.post("/offers/{offer_id}/replace", status_code=201, tags=["informers"])
def api_replace(
    *, offer_id: PathId, body: SealedNote, user: ApiUser, db: DB, settings: SettingsDep, once: Idempotent
) -> dict[str, Any]:
    """Replace your sealed offer with a new note, bid and price, atomically: the old one is
    withdrawn (bid refunded, note shredded) and the new one sealed in one transaction, so if the new
    one is refused (the market closed meanwhile, say) the old one stays as it was. The receipt is
    the new offer's."""

    def work() -> dict[str, Any]:
        receipt = market.replace_offer(db, offer_id, user.id, limits=settings.limits, **body.model_dump())
        return _receipt(receipt) | {"replaced": offer_id}

    return once(work)  # type: ignore[no-any-return]


# --- reading and posting ------------------------------------------------------------------------------


@router.get("/communities", tags=["feed"])
def api_communities(*, db: DB) -> list[dict[str, Any]]:
    return queries.communities(db)


@router.get("/posts", tags=["feed"])
def api_feed(
    *,
    community_slug: Annotated[str | None, Query(alias="community")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    db: DB,
) -> list[dict[str, Any]]:
    """Newest posts with their market state and revealed notes."""
    community_id = community.get_community(db, community_slug).id if community_slug else None
    return queries.feed(db, community_id=community_id, limit=limit)


@router.get("/posts/{post_id}", tags=["feed"])
def api_post(*, post_id: PathId, db: DB) -> dict[str, Any]:
    """A post, its market (status, seconds left, budget, offer counts) and its revealed notes."""
    post = queries.post_detail(db, post_id)
    if post is None:
        raise NotFound(f"no post {post_id}")
    return post


@router.post("/posts", status_code=201, tags=["feed"])
def api_new_post(*, body: NewPost, user: ApiUser, db: DB, once: Idempotent) -> dict[str, Any]:
    """Ask for notes on a post: it is recorded and a market opens on it, in one transaction. This
    costs nothing and holds nothing: the market takes its budget from the pool only when bidding
    closes with an offer to inspect (rule 6 in ``pipeline/rules.py``)."""
    com = community.get_community(db, body.community)
    if not user.has_role(com.id, "reader"):
        raise Forbidden(f"join {com.slug} before posting there")
    community.require_not_banned(db, user.id, com.id)

    def work() -> dict[str, Any]:
        post_id, market_id = market.request_notes(db, com.id, body.text, platform="web", author=user.handle)
        return {"post_id": post_id, "market_id": market_id}

    return once(work)  # type: ignore[no-any-return]


@router.post("/posts/{post_id}/fund", tags=["feed"])
def api_fund(
    *, post_id: PathId, body: Funding, user: ApiUser, db: DB, settings: SettingsDep, once: Idempotent
) -> dict[str, Any]:
    """Move credits from your wallet into the pool of the post's community."""
    post = community.get_post(db, post_id)
    community_id = int(post["community_id"])

    def work() -> dict[str, Any]:
        community.fund_pool(db, community_id, user.id, body.amount, limits=settings.limits)
        return {
            "pool": ledger.balance(db, ledger.pool(community_id)),
            "wallet": ledger.balance(db, ledger.wallet(user.id)),
        }

    return once(work)  # type: ignore[no-any-return]


@router.post("/posts/{post_id}/offers", status_code=201, tags=["informers"])
def api_submit(
    *,
    post_id: PathId,
    body: SealedNote,
    user: ApiUser,
    db: DB,
    settings: SettingsDep,
    once: Idempotent,
) -> dict[str, Any]:
    """Seal a note with a bid and a price. Keep the receipt's salt: it proves authorship later."""
    state = queries.market_state(db, post_id)
    if state is None:
        raise MarketClosed(f"post {post_id} has no market")
    return once(lambda: _seal(db, user, int(state["id"]), body, settings))  # type: ignore[no-any-return]


@router.post("/markets/{market_id}/offers", status_code=201, tags=["informers"])
def api_submit_to_market(
    *,
    market_id: PathId,
    body: SealedNote,
    user: ApiUser,
    db: DB,
    settings: SettingsDep,
    once: Idempotent,
) -> dict[str, Any]:
    """Seal a note into a market by id: how to offer into a sub-market (a note about an offer, listed
    in a post's ``sub_markets``); there ``misleading`` means the offer is misleading."""
    return once(lambda: _seal(db, user, market_id, body, settings))  # type: ignore[no-any-return]


def _receipt(receipt: market.Receipt) -> dict[str, Any]:
    return receipt.as_dict() | {"keep_the_salt": "Keep the salt: with it you can prove you wrote this note."}


def _seal(db: Any, user: Any, market_id: int, body: SealedNote, settings: Any) -> dict[str, Any]:
    """Seal ``body`` into a market of a community where ``user`` is an informer; the receipt."""
    target = market.get_market(db, market_id)
    if not user.has_role(int(target["community_id"]), "informer"):
        raise Forbidden("you are not an informer in this community")
    return _receipt(market.submit_offer(db, market_id, user.id, limits=settings.limits, **body.model_dump()))


# --- readers' ratings ---------------------------------------------------------------------------------


@router.post("/reveals/{reveal_id}/ratings", status_code=201, tags=["ratings"])
def api_rate(
    *, reveal_id: PathId, body: NoteRating, user: ApiUser, db: DB, response: Response, once: Idempotent
) -> dict[str, Any]:
    """Rate a revealed note (201), or change your rating of it (200). Refused: an unknown or hidden
    note, your own note, a banned account, the same rating twice. Free: no credits move."""

    def work() -> dict[str, Any]:
        rating = ratings.rate(db, reveal_id, user.id, body.level, tags=body.tags, surface="api")
        if rating.changed != "new":
            response.status_code = once.status = 200  # a replay answers as this call did
        return rating.as_dict()

    return once(work)  # type: ignore[no-any-return]


@router.get("/reveals/{reveal_id}/ratings", tags=["ratings"])
def api_ratings(*, reveal_id: PathId, user: ApiUser, db: DB) -> dict[str, Any]:
    """A note's rating counts, its bridging status and your own rating of it."""
    found = db.execute(
        "SELECT r.id FROM reveals r JOIN markets m ON m.id = r.market_id"
        " WHERE r.id = ? AND m.parent_offer_id IS NULL"
        " AND (r.unpublished_at IS NULL OR r.hidden_by = 'readers')",
        [reveal_id],
    ).fetchone()
    if found is None:
        raise NotFound(f"no published note {reveal_id}")
    return {
        "reveal_id": reveal_id,
        "counts": ratings.counts(db, [reveal_id])[reveal_id],
        "status": statuses.status_of(db, reveal_id),
        "history": statuses.history_of(db, reveal_id),
        "mine": ratings.rating_of(db, reveal_id, user.id),
    }


# --- moderators ---------------------------------------------------------------------------------------


@router.get("/communities/{slug}/settings", tags=["moderators"])
def api_get_settings(*, slug: str, user: ApiUser, db: DB) -> dict[str, Any]:
    com = _moderated(slug, user, db)
    return {k: getattr(com, k) for k in SETTING_KEYS}


@router.patch("/communities/{slug}/settings", tags=["moderators"])
def api_update_settings(
    *, slug: str, body: SettingsChange, user: ApiUser, db: DB, once: Idempotent
) -> dict[str, Any]:
    com = _moderated(slug, user, db)

    def work() -> dict[str, Any]:
        changes = body.model_dump(exclude_none=True)
        updated = community.update_settings(db, com.id, changes, actor_id=user.id)
        return {k: getattr(updated, k) for k in SETTING_KEYS}

    return once(work)  # type: ignore[no-any-return]


@router.get("/communities/{slug}/markets", tags=["moderators"])
def api_markets(*, slug: str, user: ApiUser, db: DB) -> list[dict[str, Any]]:
    return queries.community_markets(db, _moderated(slug, user, db).id)


@router.post("/markets/{market_id}/close", tags=["moderators"])
def api_close(
    *,
    market_id: PathId,
    user: ApiUser,
    db: DB,
    judge: JudgeDep,
    request: Request,
    once: Idempotent,
) -> dict[str, Any]:
    """Close a market now (before its window ends), run the auction and the judge, settle. A
    market already settled answers at once; otherwise this waits for at most the one market the
    worker may be settling."""
    found = market.get_market(db, market_id)
    community_id = int(found["community_id"])
    community.require_moderator(db, user.id, community_id)

    def work() -> dict[str, Any]:
        report = close_now(request, db, market_id, judge)
        if not report.already_settled:
            community.audit(db, user.id, "market.close", f"market:{market_id}", {"force": True}, community_id)
        return {
            "market_id": market_id,
            "already_settled": report.already_settled,
            "spent": report.spent,
            "returned": report.returned,
            "waiting_on": report.waiting_on,
            "inspections": [
                {"offer_id": i.offer_id, "bought": i.bought, "price": i.price, "reason": i.reason}
                for i in report.inspections
            ],
        }

    return once(work, atomic=False)  # type: ignore[no-any-return]  # the judge must not hold the write lock


@router.post("/reveals/{reveal_id}/unpublish", tags=["moderators"])
def api_unpublish(
    *, reveal_id: PathId, body: Reason, user: ApiUser, db: DB, once: Idempotent
) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        moderation.unpublish(db, user.id, reveal_id, body.reason)
        return {"reveal_id": reveal_id, "unpublished": True}

    return once(work)  # type: ignore[no-any-return]


@router.post("/communities/{slug}/bans", status_code=201, tags=["moderators"])
def api_ban(*, slug: str, body: Ban, user: ApiUser, db: DB, once: Idempotent) -> dict[str, Any]:
    """Ban an account from the community: its sealed offers are shredded with their bids refunded,
    offers that won a slot are never inspected, and it can no longer offer, post or fund."""
    com = community.get_community(db, slug)

    def work() -> dict[str, Any]:
        report = moderation.ban(db, user.id, body.account_id, com.id, body.reason)
        return {
            "account_id": body.account_id,
            "community": slug,
            "banned": True,
            "offers_shredded": report.shredded,
            "refunded": report.refunded,
        }

    return once(work)  # type: ignore[no-any-return]


@router.delete("/communities/{slug}/bans/{account_id}", tags=["moderators"])
def api_unban(*, slug: str, account_id: PathId, user: ApiUser, db: DB, once: Idempotent) -> dict[str, Any]:
    """Lift a ban."""
    com = community.get_community(db, slug)

    def work() -> dict[str, Any]:
        moderation.unban(db, user.id, account_id, com.id)
        return {"account_id": account_id, "community": slug, "banned": False}

    return once(work)  # type: ignore[no-any-return]


@router.get("/communities/{slug}/audit", tags=["moderators"])
def api_audit(*, slug: str, user: ApiUser, db: DB) -> list[dict[str, Any]]:
    return moderation.audit_log(db, _moderated(slug, user, db).id)


@router.get("/communities/{slug}/ledger", tags=["moderators"])
def api_ledger(*, slug: str, user: ApiUser, db: DB) -> dict[str, Any]:
    """``ledger check`` and every balance."""
    com = _moderated(slug, user, db)
    report = ledger.check(db)
    return {
        "ok": report.ok,
        "problems": report.problems(),
        "transactions": report.transactions,
        "minted": report.minted,
        "circulating": report.circulating,
        "pool": ledger.balance(db, ledger.pool(com.id)),
        "balances": ledger.balances(db),
    }


@router.get("/communities/{slug}/prompts", tags=["prompts"])
def api_prompts(*, slug: str, user: ApiUser, db: DB) -> dict[str, Any]:
    com = _moderated(slug, user, db)
    versions = prompts.list_versions(db, community_id=com.id)
    return {"active_id": prompts.active_prompt(db, com.id)["id"], "versions": versions}


@router.get("/communities/{slug}/prompts/{prompt_id}", tags=["prompts"])
def api_prompt(*, slug: str, prompt_id: PathId, user: ApiUser, db: DB) -> dict[str, Any]:
    """A version of the community's judge prompt (another community's versions are not found)."""
    com = _moderated(slug, user, db)
    return prompts.get_version(db, prompt_id, community_id=com.id)


@router.post("/communities/{slug}/prompts", status_code=201, tags=["prompts"])
def api_new_prompt(
    *, slug: str, body: PromptVersion, user: ApiUser, db: DB, once: Idempotent
) -> dict[str, Any]:
    """Save an edited prompt as a new version (not active until activated)."""
    com = community.get_community(db, slug)

    def work() -> dict[str, Any]:
        prompt_id = prompts.create_version(
            db, body.text, note=body.note, actor_id=user.id, community_id=com.id
        )
        return prompts.get_version(db, prompt_id, community_id=com.id)

    return once(work)  # type: ignore[no-any-return]


@router.get("/communities/{slug}/prompts/diff/{old_id}/{new_id}", tags=["prompts"])
def api_diff(*, slug: str, old_id: PathId, new_id: PathId, user: ApiUser, db: DB) -> dict[str, str]:
    com = _moderated(slug, user, db)
    return {"diff": prompts.diff(db, old_id, new_id, community_id=com.id)}


@router.post("/communities/{slug}/prompts/{prompt_id}/activate", tags=["prompts"])
def api_activate(*, slug: str, prompt_id: PathId, user: ApiUser, db: DB, once: Idempotent) -> dict[str, Any]:
    com = community.get_community(db, slug)

    def work() -> dict[str, Any]:
        prompts.activate(db, com.id, prompt_id, actor_id=user.id)
        return {"active_id": prompt_id}

    return once(work)  # type: ignore[no-any-return]


@router.post("/communities/{slug}/prompts/{prompt_id}/eval", tags=["prompts"])
async def api_eval(
    *,
    slug: str,
    prompt_id: PathId,
    body: EvalRequest,
    request: Request,
    user: ApiUser,
    db: DB,
) -> dict[str, Any]:
    """Evaluate a prompt version on a labelled .jsonl file on the server (runs in a worker thread)."""
    com = _moderated(slug, user, db)
    prompt = prompts.get_version(db, prompt_id, community_id=com.id)
    settings = request.app.state.settings
    return await run_in_threadpool(
        evaluation.run, settings, prompt=prompt, judge_kind=body.judge_kind, limit=body.limit, path=body.path
    )
