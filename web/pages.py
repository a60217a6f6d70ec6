"""Pages for readers and informers: feed, post page, sealed-note form, dashboard, accounts, tokens.

Every POST carries the session's CSRF token. A refused request re-renders its page with the
pipeline's message and a 4xx status, and changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlite_utils import Database

from notebazaar.pipeline import community, ledger, market, ratings, records
from notebazaar.pipeline.errors import Forbidden, MarketClosed, NotebazaarError, RateLimited, ValidationError
from notebazaar.web import auth, queries
from notebazaar.web.confirm import ask, confirmed
from notebazaar.web.contract import PathId
from notebazaar.web.deps import (
    DB,
    MaybeUser,
    PageUser,
    SettingsDep,
    User,
    check_csrf,
    checked_log_in,
    checked_password_change,
    end_session,
    flash,
    page_user,
    redirect,
    render,
    start_session,
    status_for,
)
from notebazaar.web.forms import lines, safe_next, whole_number
from notebazaar.web.receipts import redirect_to_receipt

router = APIRouter(include_in_schema=False, dependencies=[Depends(page_user)])
CSRF = [Depends(check_csrf)]


# --- feed and posts -------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def feed_page(
    *,
    request: Request,
    community_slug: Annotated[str | None, Query(alias="community")] = None,
    user: MaybeUser,
    db: DB,
) -> Response:
    community_id = community.get_community(db, community_slug).id if community_slug else None
    return render(
        request,
        "feed.html",
        {
            "posts": queries.feed(db, community_id=community_id, reader_id=user.id if user else None),
            "communities": queries.communities(db),
            "current": community_slug,
        },
    )


@router.post("/posts", dependencies=CSRF)
def new_post(
    *,
    request: Request,
    community_slug: Annotated[str, Form(alias="community")] = "",
    text: Annotated[str, Form()] = "",
    user: PageUser,
    db: DB,
) -> Response:
    """A reader asks for notes on a post: the post is recorded and a market opens on it."""
    try:
        com = community.get_community(db, community_slug)
        if not user.has_role(com.id, "reader"):
            raise Forbidden(f"join {com.slug} before posting there")
        community.require_not_banned(db, user.id, com.id)
        post_id, _ = market.request_notes(db, com.id, text, platform="web", author=user.handle)
    except NotebazaarError as exc:
        context = {"posts": queries.feed(db), "communities": queries.communities(db), "current": None}
        context |= {"post_error": str(exc), "post_form": {"text": text, "community": community_slug}}
        return render(request, "feed.html", context, status_for(exc))
    flash(request, "Your post is up and its market is open for sealed notes.")
    return redirect(f"/posts/{post_id}")


def _post_context(db: Database, post_id: int, user: User | None) -> dict[str, Any]:
    post = queries.post_detail(db, post_id, reader_id=user.id if user else None)
    if post is None:
        raise HTTPException(404, f"no post {post_id}")
    mine: list[dict[str, Any]] = []
    if user is not None and post["market"] is not None:
        mine = [o for o in queries.informer_offers(db, user.id) if o["market_id"] == post["market"]["id"]]
    return {
        "post": post,
        "market": post["market"],
        "my_offers": mine,
        "is_informer": user is not None and user.has_role(post["community_id"], "informer"),
        "is_member": user is not None and user.has_role(post["community_id"], "reader"),
        "is_moderator": user is not None and user.has_role(post["community_id"], "moderator"),
        "pool": ledger.balance(db, ledger.pool(post["community_id"])),
        "form": {},
    }


@router.get("/posts/{post_id}", response_class=HTMLResponse)
def post_page(*, request: Request, post_id: PathId, user: MaybeUser, db: DB) -> Response:
    return render(request, "post.html", _post_context(db, post_id, user))


@router.get("/posts/{post_id}/market", response_class=HTMLResponse)
def market_fragment(*, request: Request, post_id: PathId, db: DB) -> Response:
    """The market box alone, polled by htmx so the time left stays current."""
    return render(request, "_market.html", {"market": queries.market_state(db, post_id), "post_id": post_id})


@router.post("/posts/{post_id}/fund", dependencies=CSRF)
def fund(
    *,
    request: Request,
    post_id: PathId,
    amount: Annotated[str, Form()] = "",
    user: PageUser,
    db: DB,
    settings: SettingsDep,
) -> Response:
    context = _post_context(db, post_id, user)
    try:
        credits = whole_number("amount", amount)
        community.fund_pool(db, context["post"]["community_id"], user.id, credits, limits=settings.limits)
    except NotebazaarError as exc:
        context |= {"fund_error": str(exc), "fund_amount": amount}
        return render(request, "post.html", context, status_for(exc))
    flash(request, f"You added {credits} credits to the community's pool. Thank you!")
    return redirect(f"/posts/{post_id}")


@router.post("/posts/{post_id}/offers", dependencies=CSRF)
def submit_note(
    *,
    request: Request,
    post_id: PathId,
    classification: Annotated[str, Form()] = "",
    text: Annotated[str, Form()] = "",
    sources: Annotated[str, Form()] = "",
    bid: Annotated[str, Form()] = "",
    price: Annotated[str, Form()] = "",
    market_id: Annotated[str, Form()] = "",
    user: PageUser,
    db: DB,
    settings: SettingsDep,
) -> Response:
    """Seal a note, then redirect to its receipt page, where the salt is shown once (never stored).

    With ``market_id`` the note goes into one of the post's sub-markets (a note about an offer)."""
    context = _post_context(db, post_id, user)
    try:
        if context["market"] is None:
            raise MarketClosed("this post has no market")
        if not context["is_informer"]:
            raise Forbidden(f"join {context['post']['community']} as an informer to submit notes")
        target = int(context["market"]["id"])
        if market_id:
            subs = {s["id"] for s in context["post"]["sub_markets"]}
            target = whole_number("market id", market_id)
            if target not in subs:
                raise MarketClosed(f"market {target} is not a sub-market of this post")
        receipt = market.submit_offer(
            db,
            target,
            user.id,
            classification=classification,
            text=text,
            sources=lines(sources),
            bid=whole_number("bid", bid),
            price=whole_number("price", price),
            limits=settings.limits,
        )
    except NotebazaarError as exc:
        form = {
            "classification": classification,
            "text": text,
            "sources": sources,
            "bid": bid,
            "price": price,
        }
        context |= {"offer_error": str(exc), "form": form}
        return render(request, "post.html", context, status_for(exc))
    return redirect_to_receipt(request, receipt)  # Post/Redirect/Get: a reload cannot submit it again


@router.post("/notes/{reveal_id}/ratings", dependencies=CSRF)
def rate_note(
    *,
    request: Request,
    reveal_id: PathId,
    level: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
    user: PageUser,
    db: DB,
) -> Response:
    """A reader rates a note. Without JavaScript: back to the page, with a message. With htmx
    (``HX-Request``): the note's card, showing the reader's rating (or the refusal)."""
    htmx = request.headers.get("HX-Request") == "true"
    try:
        rating = ratings.rate(db, reveal_id, user.id, level, surface="web")
    except NotebazaarError as exc:
        if not htmx:
            raise
        note = _note_card(db, reveal_id, user)
        if note is None:
            return render(
                request, "error.html", {"status": status_for(exc), "message": str(exc)}, status_for(exc)
            )
        return render(request, "_note.html", {"note": note, "rating_error": str(exc)})
    if htmx:
        return render(request, "_note.html", {"note": _note_card(db, reveal_id, user), "rating_error": None})
    flash(request, f"You rated note {rating.reveal_id} {rating.level.replace('_', ' ')}.")
    return redirect(safe_next(next))


def _note_card(db: Database, reveal_id: int, user: User) -> dict[str, Any] | None:
    row = db.execute("SELECT post_id FROM reveals WHERE id = ?", [reveal_id]).fetchone()
    if row is None:
        return None
    notes = queries.reveals_for_posts(db, [int(row[0])], reader_id=user.id)[int(row[0])]
    return next((n for n in notes if n["id"] == reveal_id), None)


@router.post("/communities/{slug}/join", dependencies=CSRF)
def join(
    *,
    slug: str,
    request: Request,
    next: Annotated[str, Form()] = "/",
    user: PageUser,
    db: DB,
) -> Response:
    com = community.get_community(db, slug)
    community.require_not_banned(db, user.id, com.id)
    community.grant(db, user.id, com.id, "reader")
    community.grant(db, user.id, com.id, "informer")
    flash(request, f"You joined {slug} as a reader and informer.")
    return redirect(safe_next(next))


# --- accounts ---------------------------------------------------------------------------------------


@router.get("/signup", response_class=HTMLResponse)
def signup_page(*, request: Request, db: DB) -> Response:
    default = request.app.state.settings.web.demo_community
    return render(
        request, "signup.html", {"communities": queries.communities(db), "form": {"community": default}}
    )


@router.post("/signup", dependencies=CSRF)
def signup(
    *,
    request: Request,
    handle: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    community_slug: Annotated[str, Form(alias="community")] = "",
    db: DB,
) -> Response:
    try:
        account_id = auth.sign_up(db, handle, password, community_slug, grant=request.app.state.signup_grant)
    except NotebazaarError as exc:
        context = {"communities": queries.communities(db), "error": str(exc)}
        context["form"] = {"handle": handle, "community": community_slug}
        return render(request, "signup.html", context, status_for(exc))
    start_session(request, db, account_id)
    grant = request.app.state.signup_grant
    flash(
        request,
        f"Welcome, {handle}!" + (f" Your wallet starts with {grant} credits to bid with." if grant else ""),
    )
    return redirect("/me")


@router.get("/login", response_class=HTMLResponse)
def login_page(*, request: Request, next: str = "/") -> Response:
    return render(request, "login.html", {"next": safe_next(next), "form": {}})


@router.post("/login", dependencies=CSRF)
def login(
    *,
    request: Request,
    handle: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
    db: DB,
) -> Response:
    try:
        account_id = checked_log_in(request, db, handle, password)
    except NotebazaarError as exc:
        context = {"error": str(exc), "next": safe_next(next), "form": {"handle": handle}}
        return _refused_with_retry(render(request, "login.html", context, 401), exc)
    start_session(request, db, account_id)
    return redirect(safe_next(next))


def _refused_with_retry(page: Response, exc: NotebazaarError) -> Response:
    """A rate-limited attempt answers 429 with Retry-After; any other refusal keeps its status."""
    if isinstance(exc, RateLimited):
        page.status_code = 429
        page.headers["Retry-After"] = str(exc.retry_after)
    return page


@router.post("/logout", dependencies=CSRF)
def logout(*, request: Request, db: DB) -> Response:
    """End the session on the server too: a copy of the cookie no longer signs anyone in."""
    end_session(request, db)
    return redirect("/")


@router.get("/me/password", response_class=HTMLResponse)
def password_page(*, request: Request, user: PageUser) -> Response:
    return render(request, "password.html", {})


@router.post("/me/password", dependencies=CSRF)
def change_password(
    *,
    request: Request,
    current: Annotated[str, Form()] = "",
    new: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
    user: PageUser,
    db: DB,
) -> Response:
    """Change your password: every session of the account ends, and this browser gets a new one."""
    try:
        if new != confirm:
            raise ValidationError("the new password and its confirmation differ")
        ended = checked_password_change(request, db, user, current, new)
    except NotebazaarError as exc:
        page = render(request, "password.html", {"error": str(exc)}, status_for(exc))
        return _refused_with_retry(page, exc)
    start_session(request, db, user.id)
    others = ended - 1
    flash(
        request,
        "Password changed."
        + (f" {others} other session{'s' if others != 1 else ''} signed out." if others > 0 else ""),
    )
    return redirect("/me")


# --- informer dashboard and tokens --------------------------------------------------------------------


@router.get("/me", response_class=HTMLResponse)
def dashboard(*, request: Request, user: PageUser, db: DB) -> Response:
    return render(
        request,
        "dashboard.html",
        {
            "offers": queries.informer_offers(db, user.id),
            "earnings": queries.earnings(db, user.id),
            "track": records.track_record(db, user.id),
            "wallet": ledger.balance(db, ledger.wallet(user.id)),
        },
    )


@router.post("/me/offers/{offer_id}/withdraw", dependencies=CSRF)
def withdraw(
    *,
    request: Request,
    offer_id: PathId,
    confirm: Annotated[str, Form()] = "",
    user: PageUser,
    db: DB,
) -> Response:
    if not confirmed(confirm):
        return ask(
            request,
            question=f"Withdraw offer {offer_id}?",
            consequences="Its bid comes back to your wallet and its note is shredded for good: nobody, you"
            " included, can read it again. Keep your own copy if you want to offer it again.",
            button="Yes, withdraw it",
            cancel="/me",
        )
    market.withdraw_offer(db, offer_id, user.id)
    flash(request, f"Offer {offer_id} withdrawn: its bid is refunded and its note shredded.")
    return redirect("/me")


@router.get("/me/tokens", response_class=HTMLResponse)
def tokens_page(*, request: Request, user: PageUser, db: DB) -> Response:
    return render(request, "tokens.html", {"tokens": auth.list_tokens(db, user.id), "new_token": None})


@router.post("/me/tokens", dependencies=CSRF)
def create_token(
    *,
    request: Request,
    label: Annotated[str, Form()] = "",
    user: PageUser,
    db: DB,
) -> Response:
    try:
        token = auth.create_token(db, user.id, label)
    except NotebazaarError as exc:
        context = {"tokens": auth.list_tokens(db, user.id), "new_token": None, "error": str(exc)}
        return render(request, "tokens.html", context, status_for(exc))
    context = {"tokens": auth.list_tokens(db, user.id), "new_token": token, "label": label}
    return render(request, "tokens.html", context, 201)


@router.post("/me/tokens/{fingerprint}/revoke", dependencies=CSRF)
def revoke_token(
    *,
    request: Request,
    fingerprint: str,
    confirm: Annotated[str, Form()] = "",
    user: PageUser,
    db: DB,
) -> Response:
    if not confirmed(confirm):
        return ask(
            request,
            question=f"Revoke the token {fingerprint}…?",
            consequences="A bot that uses it is refused from now on. It cannot be restored; you can create"
            " a new one.",
            button="Yes, revoke it",
            cancel="/me/tokens",
        )
    auth.revoke_token(db, user.id, fingerprint)
    flash(request, "Token revoked.")
    return redirect("/me/tokens")
