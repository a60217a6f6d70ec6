"""The moderator console: community settings, markets (close now), notes (unpublish), notes a bot
failed to deliver (retry), informers (ban), the audit log, the ledger check, and the judge's prompt
versions (view, edit, diff, eval, activate). Only moderators of the community get in; everyone else
gets a 403 page.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlite_utils import Database
from starlette.concurrency import run_in_threadpool

from notebazaar.pipeline import community, credit, ledger, moderation, outbox, prompts
from notebazaar.pipeline.community import SETTING_KEYS, Community
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.errors import NotebazaarError
from notebazaar.pipeline.judge import params as judge_params
from notebazaar.web import evaluation, queries
from notebazaar.web.closing import close_now
from notebazaar.web.confirm import ask, confirmed
from notebazaar.web.contract import PathId
from notebazaar.web.deps import (
    DB,
    JudgeDep,
    PageUser,
    check_csrf,
    flash,
    page_user,
    redirect,
    render,
    status_for,
)
from notebazaar.web.forms import optional_number, whole_number

router = APIRouter(prefix="/mod", include_in_schema=False, dependencies=[Depends(page_user)])
CSRF = [Depends(check_csrf)]


def moderated(slug: str, user: PageUser, db: DB) -> Community:
    com = community.get_community(db, slug)
    if not user.has_role(com.id, "moderator"):
        raise HTTPException(403, f"only moderators of {slug} may open its console")
    return com


Moderated = Annotated[Community, Depends(moderated)]


@router.get("", response_class=HTMLResponse)
def console_index(*, request: Request, user: PageUser) -> Response:
    if not user.moderates:
        raise HTTPException(403, "the moderator console is for moderators; you moderate no community")
    if len(user.moderates) == 1:
        return redirect(f"/mod/{user.moderates[0]['slug']}")
    return render(request, "console_index.html", {"communities": user.moderates})


def _console_context(db: Database, com: Community) -> dict[str, Any]:
    report = ledger.check(db)
    audit = [dict(row, detail=json.loads(str(row["detail"]))) for row in moderation.audit_log(db, com.id)]
    return {
        "community": com,
        "settings": {k: getattr(com, k) for k in SETTING_KEYS},
        "markets": queries.community_markets(db, com.id),
        "notes": queries.community_reveals(db, com.id),
        "undelivered": outbox.rows(db, status="failed", community_id=com.id),
        "informers": queries.community_informers(db, com.id),
        "audit": audit,
        "ledger_report": report,
        "balances": ledger.balances(db),
        "pool": ledger.balance(db, ledger.pool(com.id)),
        "active_prompt": prompts.active_prompt(db, com.id),
        "judge": _judge_context(db, com),
        "errors": {},
    }


def _judge_context(db: Database, com: Community) -> dict[str, Any]:
    """What the console shows about the judge: what each judge reads, the embedded judge's
    parameters in force (and where they come from), the judge's failures here, and how much of the
    trust it gives strangers is waiting on reviews (:mod:`notebazaar.pipeline.credit`)."""
    found = judge_params.stored(db, com.id)
    return {
        "reads": judge_params.WHAT_EACH_JUDGE_READS,
        "params": judge_params.as_dict(found.params),
        "source": found.source,
        "fitted_on": found.fitted_on,
        "fitted": judge_params.FITTED,
        "failures": queries.judge_failures(db, com.id),
        "credit": {
            "outstanding": credit.outstanding(db, com.id),
            "limit": found.params.newcomer_credit,
            "review_ratings": credit.REVIEW_RATINGS,
        },
    }


@router.get("/{slug}", response_class=HTMLResponse)
def console(*, request: Request, com: Moderated, db: DB) -> Response:
    return render(request, "console.html", _console_context(db, com))


def _refused(request: Request, db: Database, com: Community, section: str, exc: NotebazaarError) -> Response:
    context = _console_context(db, com)
    context["errors"] = {section: str(exc)}
    return render(request, "console.html", context, status_for(exc))


@router.post("/{slug}/settings", dependencies=CSRF)
def update_settings(
    *,
    request: Request,
    attention_slots: Annotated[str, Form()] = "",
    reserve: Annotated[str, Form()] = "",
    window_seconds: Annotated[str, Form()] = "",
    price_of_information: Annotated[str, Form()] = "",
    budget_per_market: Annotated[str, Form()] = "",
    writer_offers_per_day: Annotated[str, Form()] = "",
    writer_offers_per_right_note: Annotated[str, Form()] = "",
    payment_hold_hours: Annotated[str, Form()] = "",
    auction: Annotated[str, Form()] = "",
    com: Moderated,
    user: PageUser,
    db: DB,
) -> Response:
    numbers = {
        "attention_slots": attention_slots,
        "reserve": reserve,
        "window_seconds": window_seconds,
        "price_of_information": price_of_information,
        "budget_per_market": budget_per_market,
        "writer_offers_per_day": writer_offers_per_day,
        "writer_offers_per_right_note": writer_offers_per_right_note,
        "payment_hold_hours": payment_hold_hours,
    }
    try:
        changes: dict[str, Any] = {k: whole_number(k, v) for k, v in numbers.items() if v.strip()}
        if auction.strip():
            changes["auction"] = auction.strip()
        community.update_settings(db, com.id, changes, actor_id=user.id)
    except NotebazaarError as exc:
        return _refused(request, db, com, "settings", exc)
    flash(request, "Community settings saved. They apply to markets opened from now on.")
    return redirect(f"/mod/{com.slug}")


@router.post("/{slug}/markets/{market_id}/close", dependencies=CSRF)
def close_market_now(
    *,
    request: Request,
    market_id: PathId,
    confirm: Annotated[str, Form()] = "",
    com: Moderated,
    user: PageUser,
    db: DB,
    judge: JudgeDep,
) -> Response:
    try:
        found = db.execute("SELECT community_id FROM markets WHERE id = ?", [market_id]).fetchone()
        if found is None or int(found[0]) != com.id:
            raise HTTPException(404, f"no market {market_id} in {com.slug}")
        if not confirmed(confirm):
            return ask(
                request,
                question=f"Close market {market_id} now?",
                consequences="Its bidding window ends at once: the auction runs, the judge reads the winning"
                " notes, buys the ones worth their price and shreds the rest. This cannot be undone.",
                button="Yes, close it now",
                cancel=f"/mod/{com.slug}#markets",
            )
        report = close_now(request, db, market_id, judge)
        community.audit(db, user.id, "market.close", f"market:{market_id}", {"force": True}, com.id)
    except NotebazaarError as exc:
        return _refused(request, db, com, "markets", exc)
    bought = sum(1 for i in report.inspections if i.bought)
    flash(
        request,
        f"Market {market_id} closed: {len(report.inspections)} notes inspected, {bought} bought,"
        f" {report.spent} credits spent.",
    )
    return redirect(f"/mod/{com.slug}")


@router.post("/{slug}/notes/{reveal_id}/unpublish", dependencies=CSRF)
def unpublish(
    *,
    request: Request,
    reveal_id: PathId,
    reason: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
    com: Moderated,
    user: PageUser,
    db: DB,
) -> Response:
    if not confirmed(confirm):
        return ask(
            request,
            question=f"Unpublish note {reveal_id}?",
            consequences="It disappears from the post, the feed and every platform it was sent to. The"
            " informer keeps the payment. It cannot be published again.",
            button="Yes, unpublish it",
            cancel=f"/mod/{com.slug}#notes",
            fields={"reason": reason},
        )
    try:
        moderation.unpublish(db, user.id, reveal_id, reason)
    except NotebazaarError as exc:
        return _refused(request, db, com, "notes", exc)
    flash(request, f"Note {reveal_id} unpublished.")
    return redirect(f"/mod/{com.slug}")


@router.post("/{slug}/deliveries/{outbox_id}/retry", dependencies=CSRF)
def retry_delivery(
    *,
    request: Request,
    outbox_id: PathId,
    com: Moderated,
    user: PageUser,
    db: DB,
) -> Response:
    """Queue a note a bot failed to deliver again (after the cause was fixed)."""
    try:
        if not any(r["outbox_id"] == outbox_id for r in outbox.rows(db, community_id=com.id, limit=None)):
            raise HTTPException(404, f"no delivery {outbox_id} in {com.slug}")
        outbox.retry(db, outbox_id, actor_id=user.id)
    except NotebazaarError as exc:
        return _refused(request, db, com, "deliveries", exc)
    flash(request, f"Delivery {outbox_id} is queued again; the bot posts it on its next pass.")
    return redirect(f"/mod/{com.slug}#deliveries")


@router.post("/{slug}/bans", dependencies=CSRF)
def ban(
    *,
    request: Request,
    account: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
    com: Moderated,
    user: PageUser,
    db: DB,
) -> Response:
    try:
        account_id = whole_number("informer", account)
        handle = community.get_account(db, account_id)["handle"]
        if not confirmed(confirm):
            return ask(
                request,
                question=f"Ban {handle} from {com.name}?",
                consequences="Their sealed offers here are shredded and the bids refunded; offers that"
                " already won a slot are never read or bought. They can no longer offer notes, post or fund"
                " the pool here. You can lift the ban later; shredded offers stay shredded.",
                button=f"Yes, ban {handle}",
                cancel=f"/mod/{com.slug}#informers",
                fields={"account": account, "reason": reason},
            )
        report = moderation.ban(db, user.id, account_id, com.id, reason)
    except NotebazaarError as exc:
        return _refused(request, db, com, "informers", exc)
    shredded = len(report.shredded)
    flash(
        request,
        f"{handle} is banned from {com.slug}: {shredded} sealed offer{'s' if shredded != 1 else ''} shredded,"
        f" {report.refunded} credits refunded.",
    )
    return redirect(f"/mod/{com.slug}")


@router.post("/{slug}/bans/{account_id}/lift", dependencies=CSRF)
def unban(*, request: Request, account_id: PathId, com: Moderated, user: PageUser, db: DB) -> Response:
    try:
        moderation.unban(db, user.id, account_id, com.id)
    except NotebazaarError as exc:
        return _refused(request, db, com, "informers", exc)
    handle = community.get_account(db, account_id)["handle"]
    flash(request, f"The ban on {handle} is lifted.")
    return redirect(f"/mod/{com.slug}#informers")


# --- prompt versions --------------------------------------------------------------------------------


def _prompts_context(db: Database, com: Community) -> dict[str, Any]:
    return {
        "community": com,
        "versions": prompts.list_versions(db, community_id=com.id),
        "active": prompts.active_prompt(db, com.id),
        "judge_kinds": evaluation.JUDGE_KINDS,
    }


@router.get("/{slug}/prompts", response_class=HTMLResponse)
def prompt_list(*, request: Request, com: Moderated, db: DB) -> Response:
    return render(request, "prompts.html", _prompts_context(db, com))


@router.get("/{slug}/prompts/diff", response_class=HTMLResponse)
def prompt_diff(
    *,
    request: Request,
    old: int,
    new: int,
    com: Moderated,
    db: DB,
) -> Response:
    context = _prompts_context(db, com)
    context |= {
        "diff": prompts.diff(db, old, new, community_id=com.id),
        "old": prompts.get_version(db, old, community_id=com.id),
        "new": prompts.get_version(db, new, community_id=com.id),
    }
    return render(request, "prompts.html", context)


def _prompt_context(db: Database, com: Community, prompt_id: int) -> dict[str, Any]:
    context = _prompts_context(db, com)
    context["prompt"] = prompts.get_version(db, prompt_id, community_id=com.id)
    context["form"] = {"text": context["prompt"]["text"], "note": ""}
    context["eval_form"] = {"judge_kind": "local", "limit": "", "path": ""}
    return context


@router.get("/{slug}/prompts/{prompt_id}", response_class=HTMLResponse)
def prompt_page(*, request: Request, prompt_id: PathId, com: Moderated, db: DB) -> Response:
    return render(request, "prompt.html", _prompt_context(db, com, prompt_id))


@router.post("/{slug}/prompts", dependencies=CSRF)
def new_version(
    *,
    request: Request,
    text: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    based_on: Annotated[int, Form()],
    com: Moderated,
    user: PageUser,
    db: DB,
) -> Response:
    try:
        prompt_id = prompts.create_version(db, text, note=note, actor_id=user.id, community_id=com.id)
    except NotebazaarError as exc:
        context = _prompt_context(db, com, based_on)
        context |= {"error": str(exc), "form": {"text": text, "note": note}}
        return render(request, "prompt.html", context, status_for(exc))
    version = prompts.get_version(db, prompt_id, community_id=com.id)["version"]
    flash(request, f"Saved as version {version}. It is not active until you activate it.")
    return redirect(f"/mod/{com.slug}/prompts/{prompt_id}")


@router.post("/{slug}/prompts/{prompt_id}/activate", dependencies=CSRF)
def activate(
    *,
    request: Request,
    prompt_id: PathId,
    confirm: Annotated[str, Form()] = "",
    com: Moderated,
    user: PageUser,
    db: DB,
) -> Response:
    version = prompts.get_version(db, prompt_id, community_id=com.id)["version"]
    if not confirmed(confirm):
        return ask(
            request,
            question=f"Make v{version} the judge prompt of {com.name}?",
            consequences="Every market of this community that closes from now on is judged with it. You can"
            " activate another version at any time.",
            button=f"Yes, activate v{version}",
            cancel=f"/mod/{com.slug}/prompts/{prompt_id}",
        )
    prompts.activate(db, com.id, prompt_id, actor_id=user.id)
    flash(request, f"Version {version} is now the active judge prompt of {com.slug}.")
    return redirect(f"/mod/{com.slug}/prompts")


@router.post("/{slug}/prompts/{prompt_id}/eval", dependencies=CSRF)
async def run_eval(
    *,
    request: Request,
    prompt_id: PathId,
    judge_kind: Annotated[str, Form()] = "local",
    limit: Annotated[str, Form()] = "",
    path: Annotated[str, Form()] = "",
    upload: UploadFile | None = None,
    com: Moderated,
) -> Response:
    """Evaluate a prompt version on labelled claims. Runs in a worker thread: it can take a while."""
    data = (
        await upload.read(evaluation.MAX_UPLOAD_BYTES + 1) if upload is not None and upload.filename else None
    )
    settings = request.app.state.settings

    def work() -> dict[str, Any]:
        db = open_db(request.app.state.db_path, migrate=False)
        try:
            context = _prompt_context(db, com, prompt_id)
            context["eval_form"] = {"judge_kind": judge_kind, "limit": limit, "path": path}
            try:
                context["eval"] = evaluation.run(
                    settings,
                    prompt=context["prompt"],
                    judge_kind=judge_kind,
                    limit=optional_number("limit", limit),
                    path=path,
                    upload=data,
                )
            except NotebazaarError as exc:
                context["eval_error"] = str(exc)
                context["eval_status"] = status_for(exc)
            return context
        finally:
            db.close()

    context = await run_in_threadpool(work)
    # htmx swaps only 2xx answers, so an htmx request gets its error message with a 200.
    failed = "eval_error" in context and not request.headers.get("HX-Request")
    return render(request, "prompt.html", context, context.get("eval_status", 400) if failed else 200)
