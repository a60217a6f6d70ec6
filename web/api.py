"""The JSON API: everything the pages do, for bots and scripts, documented at ``/openapi.json``.

Authentication is ``Authorization: Bearer <token>`` only (never the session cookie), so the API
needs no CSRF token. Bodies are pydantic models; the pipeline re-checks every value, and its
refusals come back as ``{"error": code, "detail": message}`` with a 4xx status.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
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
    settlement,
    statuses,
)
from notebazaar.pipeline.community import SETTING_KEYS, Community
from notebazaar.pipeline.errors import Forbidden, MarketClosed, NotFound
from notebazaar.web import auth, evaluation, queries
from notebazaar.web.deps import (
    DB,
    ApiUser,
    JudgeDep,
    SettingsDep,
    User,
    checked_log_in,
    checked_password_change,
)

router = APIRouter(prefix="/api")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignUp(_Body):
    handle: str = Field(examples=["alice"])
    password: str = Field(min_length=auth.MIN_PASSWORD_CHARS, max_length=auth.MAX_PASSWORD_CHARS)
    community: str = Field(examples=["demo"])


class TokenRequest(_Body):
    handle: str
    password: str
    label: str = Field("api", max_length=100)


class PasswordChange(_Body):
    current_password: str
    new_password: str = Field(min_length=auth.MIN_PASSWORD_CHARS, max_length=auth.MAX_PASSWORD_CHARS)


class NewPost(_Body):
    community: str
    text: str


class Funding(_Body):
    amount: int = Field(gt=0)


class SealedNote(_Body):
    classification: Literal["misleading", "not_misleading"]
    text: str
    sources: list[str] = []
    bid: int = Field(ge=0)
    price: int = Field(ge=0)


class SettingsChange(_Body):
    attention_slots: int | None = None
    reserve: int | None = None
    window_seconds: int | None = None
    price_of_information: int | None = None
    budget_per_market: int | None = None
    auction: Literal["gsp", "first_price"] | None = None
    payment_hold_hours: int | None = None


class PromptVersion(_Body):
    text: str
    note: str = ""


class EvalRequest(_Body):
    path: str = Field(description="A labelled .jsonl file on the server.")
    judge_kind: Literal["local", "openai", "simple"] = "local"
    limit: int | None = Field(None, ge=1)


class NoteRating(_Body):
    level: Literal["helpful", "somewhat_helpful", "not_helpful"] = Field(examples=["helpful"])
    tags: list[str] = Field(
        [],
        max_length=8,
        description="Optional reason tags, Community Notes' own: helpful ones (e.g. good_sources,"
        " clear) with helpful, not-helpful ones (e.g. incorrect, off_topic) with not_helpful, either"
        " with somewhat_helpful.",
    )


class Reason(_Body):
    reason: str


class Ban(_Body):
    account_id: int
    reason: str


def _moderated(slug: str, user: User, db: Database) -> Community:
    com = community.get_community(db, slug)
    community.require_moderator(db, user.id, com.id)
    return com


# --- accounts ---------------------------------------------------------------------------------------


@router.post("/signup", status_code=201, tags=["accounts"])
def api_signup(*, body: SignUp, request: Request, db: DB) -> dict[str, Any]:
    """Create an account (reader and informer in ``community``) with the sign-up grant of credits."""
    grant = request.app.state.signup_grant
    account_id = auth.sign_up(db, body.handle, body.password, body.community, grant=grant)
    return {
        "account_id": account_id,
        "handle": body.handle,
        "wallet": ledger.balance(db, ledger.wallet(account_id)),
    }


@router.post("/tokens", status_code=201, tags=["accounts"])
def api_token(*, body: TokenRequest, request: Request, db: DB) -> dict[str, Any]:
    """Trade a handle and password for a bearer token. The token is shown only in this answer.
    Attempts are rate-limited per handle and per client address (429 with ``Retry-After``)."""
    account_id = checked_log_in(request, db, body.handle, body.password)
    return {"token": auth.create_token(db, account_id, body.label), "account_id": account_id}


@router.post("/me/password", tags=["accounts"])
def api_change_password(*, body: PasswordChange, request: Request, user: ApiUser, db: DB) -> dict[str, Any]:
    """Change your password (the current one is checked, rate-limited like logins). Every web
    session of the account ends; API tokens keep working until revoked."""
    ended = checked_password_change(request, db, user, body.current_password, body.new_password)
    return {"account_id": user.id, "sessions_ended": ended}


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


@router.post("/offers/{offer_id}/withdraw", tags=["informers"])
def api_withdraw(*, offer_id: int, user: ApiUser, db: DB) -> dict[str, Any]:
    market.withdraw_offer(db, offer_id, user.id)
    return {"offer_id": offer_id, "status": "withdrawn"}


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
def api_post(*, post_id: int, db: DB) -> dict[str, Any]:
    """A post, its market (status, seconds left, budget, offer counts) and its revealed notes."""
    post = queries.post_detail(db, post_id)
    if post is None:
        raise NotFound(f"no post {post_id}")
    return post


@router.post("/posts", status_code=201, tags=["feed"])
def api_new_post(*, body: NewPost, user: ApiUser, db: DB) -> dict[str, Any]:
    """Ask for notes on a post: it is recorded and a market opens on it."""
    com = community.get_community(db, body.community)
    if not user.has_role(com.id, "reader"):
        raise Forbidden(f"join {com.slug} before posting there")
    community.require_not_banned(db, user.id, com.id)
    post_id = community.add_post(db, com.id, body.text, platform="web", author=user.handle)
    market_id = market.open_market(db, post_id)
    return {"post_id": post_id, "market_id": market_id}


@router.post("/posts/{post_id}/fund", tags=["feed"])
def api_fund(*, post_id: int, body: Funding, user: ApiUser, db: DB) -> dict[str, Any]:
    """Move credits from your wallet into the pool of the post's community."""
    post = community.get_post(db, post_id)
    community.fund_pool(db, int(post["community_id"]), user.id, body.amount)
    return {
        "pool": ledger.balance(db, ledger.pool(int(post["community_id"]))),
        "wallet": ledger.balance(db, ledger.wallet(user.id)),
    }


@router.post("/posts/{post_id}/offers", status_code=201, tags=["informers"])
def api_submit(
    *,
    post_id: int,
    body: SealedNote,
    user: ApiUser,
    db: DB,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Seal a note with a bid and a price. Keep the receipt's salt: it proves authorship later."""
    state = queries.market_state(db, post_id)
    if state is None:
        raise MarketClosed(f"post {post_id} has no market")
    return _seal(db, user, int(state["id"]), body, settings)


@router.post("/markets/{market_id}/offers", status_code=201, tags=["informers"])
def api_submit_to_market(
    *,
    market_id: int,
    body: SealedNote,
    user: ApiUser,
    db: DB,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Seal a note into a market by id: how to offer into a sub-market (a note about an offer, listed
    in a post's ``sub_markets``); there ``misleading`` means the offer is misleading."""
    return _seal(db, user, market_id, body, settings)


def _seal(db: Any, user: Any, market_id: int, body: SealedNote, settings: Any) -> dict[str, Any]:
    """Seal ``body`` into a market of a community where ``user`` is an informer; the receipt."""
    target = market.get_market(db, market_id)
    if not user.has_role(int(target["community_id"]), "informer"):
        raise Forbidden("you are not an informer in this community")
    receipt = market.submit_offer(
        db,
        market_id,
        user.id,
        classification=body.classification,
        text=body.text,
        sources=body.sources,
        bid=body.bid,
        price=body.price,
        limits=settings.limits,
    )
    return receipt.as_dict() | {"keep_the_salt": "Keep the salt: with it you can prove you wrote this note."}


# --- readers' ratings ---------------------------------------------------------------------------------


@router.post("/reveals/{reveal_id}/ratings", status_code=201, tags=["ratings"])
def api_rate(
    *, reveal_id: int, body: NoteRating, user: ApiUser, db: DB, response: Response
) -> dict[str, Any]:
    """Rate a revealed note (201), or change your rating of it (200). Refused: an unknown or hidden
    note, your own note, a banned account, the same rating twice."""
    rating = ratings.rate(db, reveal_id, user.id, body.level, tags=body.tags, surface="api")
    if rating.changed != "new":
        response.status_code = 200
    return rating.as_dict()


@router.get("/reveals/{reveal_id}/ratings", tags=["ratings"])
def api_ratings(*, reveal_id: int, user: ApiUser, db: DB) -> dict[str, Any]:
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
def api_update_settings(*, slug: str, body: SettingsChange, user: ApiUser, db: DB) -> dict[str, Any]:
    com = _moderated(slug, user, db)
    updated = community.update_settings(db, com.id, body.model_dump(exclude_none=True), actor_id=user.id)
    return {k: getattr(updated, k) for k in SETTING_KEYS}


@router.get("/communities/{slug}/markets", tags=["moderators"])
def api_markets(*, slug: str, user: ApiUser, db: DB) -> list[dict[str, Any]]:
    return queries.community_markets(db, _moderated(slug, user, db).id)


@router.post("/markets/{market_id}/close", tags=["moderators"])
def api_close(
    *,
    market_id: int,
    user: ApiUser,
    db: DB,
    judge: JudgeDep,
    request: Request,
) -> dict[str, Any]:
    """Close a market now (before its window ends), run the auction and the judge, settle."""
    found = market.get_market(db, market_id)
    community.require_moderator(db, user.id, int(found["community_id"]))
    with request.app.state.close_lock:
        report = settlement.close_market(db, market_id, judge, force=True)
    community.audit(
        db, user.id, "market.close", f"market:{market_id}", {"force": True}, int(found["community_id"])
    )
    return {
        "market_id": market_id,
        "already_settled": report.already_settled,
        "spent": report.spent,
        "returned": report.returned,
        "inspections": [
            {"offer_id": i.offer_id, "bought": i.bought, "price": i.price, "reason": i.reason}
            for i in report.inspections
        ],
    }


@router.post("/reveals/{reveal_id}/unpublish", tags=["moderators"])
def api_unpublish(*, reveal_id: int, body: Reason, user: ApiUser, db: DB) -> dict[str, Any]:
    moderation.unpublish(db, user.id, reveal_id, body.reason)
    return {"reveal_id": reveal_id, "unpublished": True}


@router.post("/communities/{slug}/bans", status_code=201, tags=["moderators"])
def api_ban(*, slug: str, body: Ban, user: ApiUser, db: DB) -> dict[str, Any]:
    """Ban an account from the community: its sealed offers are shredded with their bids refunded,
    offers that won a slot are never inspected, and it can no longer offer, post or fund."""
    com = community.get_community(db, slug)
    report = moderation.ban(db, user.id, body.account_id, com.id, body.reason)
    return {
        "account_id": body.account_id,
        "community": slug,
        "banned": True,
        "offers_shredded": report.shredded,
        "refunded": report.refunded,
    }


@router.delete("/communities/{slug}/bans/{account_id}", tags=["moderators"])
def api_unban(*, slug: str, account_id: int, user: ApiUser, db: DB) -> dict[str, Any]:
    """Lift a ban."""
    com = community.get_community(db, slug)
    moderation.unban(db, user.id, account_id, com.id)
    return {"account_id": account_id, "community": slug, "banned": False}


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
def api_prompt(*, slug: str, prompt_id: int, user: ApiUser, db: DB) -> dict[str, Any]:
    """A version of the community's judge prompt (another community's versions are not found)."""
    com = _moderated(slug, user, db)
    return prompts.get_version(db, prompt_id, community_id=com.id)


@router.post("/communities/{slug}/prompts", status_code=201, tags=["prompts"])
def api_new_prompt(*, slug: str, body: PromptVersion, user: ApiUser, db: DB) -> dict[str, Any]:
    """Save an edited prompt as a new version (not active until activated)."""
    com = community.get_community(db, slug)
    prompt_id = prompts.create_version(db, body.text, note=body.note, actor_id=user.id, community_id=com.id)
    return prompts.get_version(db, prompt_id, community_id=com.id)


@router.get("/communities/{slug}/prompts/diff/{old_id}/{new_id}", tags=["prompts"])
def api_diff(*, slug: str, old_id: int, new_id: int, user: ApiUser, db: DB) -> dict[str, str]:
    com = _moderated(slug, user, db)
    return {"diff": prompts.diff(db, old_id, new_id, community_id=com.id)}


@router.post("/communities/{slug}/prompts/{prompt_id}/activate", tags=["prompts"])
def api_activate(*, slug: str, prompt_id: int, user: ApiUser, db: DB) -> dict[str, Any]:
    com = community.get_community(db, slug)
    prompts.activate(db, com.id, prompt_id, actor_id=user.id)
    return {"active_id": prompt_id}


@router.post("/communities/{slug}/prompts/{prompt_id}/eval", tags=["prompts"])
async def api_eval(
    *,
    slug: str,
    prompt_id: int,
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
