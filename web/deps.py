"""FastAPI dependencies shared by pages and API: a database per request, the signed-in account,
bearer-token auth, CSRF checks, and rendering with the common template context.

Why a connection per request: sync handlers run in a thread pool, and one SQLite connection shared
by threads would interleave their transactions. Opening a connection is cheap (no migration here;
the app migrates once at start-up).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.templating import Jinja2Templates
from sqlite_utils import Database

from notebazaar.pipeline import community, ledger
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.errors import NotebazaarError
from notebazaar.pipeline.judge import Judge
from notebazaar.web import auth, queries

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

STATUS_BY_CODE = {
    "invalid": 400,
    "limit_exceeded": 400,
    "insufficient_funds": 400,
    "not_found": 404,
    "forbidden": 403,
    "conflict": 409,
    "market_closed": 409,
    "storage": 503,  # the database is damaged, read-only, full or too new: not the client's fault
    "rate_limited": 429,
    "judge_failed": 502,  # the judge (an upstream server) failed every call
}


def status_for(exc: NotebazaarError) -> int:
    return STATUS_BY_CODE.get(exc.code, 400)


@dataclass
class User:
    id: int
    handle: str
    roles: list[dict[str, Any]] = field(default_factory=list)
    moderates: list[dict[str, Any]] = field(default_factory=list)

    def has_role(self, community_id: int, role: str) -> bool:
        return any(r["community_id"] == community_id and r["role"] == role for r in self.roles)


def get_db(request: Request) -> Iterator[Database]:
    db = open_db(request.app.state.db_path, migrate=False)
    try:
        yield db
    finally:
        db.close()


DB = Annotated[Database, Depends(get_db)]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_judge(request: Request) -> Judge:
    return request.app.state.judge  # type: ignore[no-any-return]


def _load(db: Database, account_id: int) -> User | None:
    try:
        account = community.get_account(db, account_id)
    except NotebazaarError:
        return None
    return User(
        int(account["id"]),
        account["handle"],
        queries.roles_of(db, account_id),
        queries.moderated_communities(db, account_id),
    )


SESSION_KEY = "sid"  # the server-side session id, kept in the signed cookie


def page_user(request: Request, db: DB) -> User | None:
    """The account signed in through the session cookie, if its server-side session is still live
    (also kept for the templates). An ended session's cookie is cleared."""
    session_id = request.session.get(SESSION_KEY)
    account_id = auth.session_account(db, session_id) if isinstance(session_id, str) else None
    user = _load(db, account_id) if account_id is not None else None
    if session_id is not None and user is None:
        request.session.pop(SESSION_KEY, None)
    request.state.user = user
    return user


def start_session(request: Request, db: Database, account_id: int) -> None:
    """Sign the browser in: a fresh cookie session (and CSRF token) around a new server session.
    A session the browser already had ends on the server too (signing in as someone else does
    not leave the first account's session alive behind a saved copy of the cookie)."""
    earlier = request.session.get(SESSION_KEY)
    if isinstance(earlier, str):
        auth.end_session(db, earlier)
    request.session.clear()
    days = request.app.state.settings.web.session_days
    request.session[SESSION_KEY] = auth.start_session(db, account_id, days=days)
    auth.csrf_token(request.session)


def end_session(request: Request, db: Database) -> None:
    session_id = request.session.get(SESSION_KEY)
    if isinstance(session_id, str):
        auth.end_session(db, session_id)
    request.session.clear()


def client_address(request: Request) -> str:
    """Who is asking, for the per-address login limit: the IPv4 address, or the /64 of an IPv6
    address (one subscriber commonly holds a whole /64, so counting single addresses would let one
    visitor rotate through 2^64 of them)."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an address (a test client's name, a Unix socket)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # an IPv4 visitor on a dual-stack socket
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def checked_log_in(request: Request, db: Database, handle: str, password: str) -> int:
    """:func:`auth.log_in`, counted by the app's login throttle first (``RateLimited`` past it)."""
    request.app.state.login_throttle.attempt(handle, client_address(request))
    return auth.log_in(db, handle, password)


def checked_password_change(request: Request, db: Database, user: User, current: str, new: str) -> int:
    """:func:`auth.change_password` (it proves the current password, so it is throttled like a
    login); returns how many sessions ended."""
    request.app.state.login_throttle.attempt(user.handle, client_address(request))
    return auth.change_password(db, user.id, current, new)


class LoginRequired(Exception):
    """Raised by page dependencies; the app turns it into a redirect to the login page."""


MaybeUser = Annotated[User | None, Depends(page_user)]


def require_page_user(user: MaybeUser) -> User:
    if user is None:
        raise LoginRequired()
    return user


async def check_csrf(request: Request) -> None:
    """Every form POST must carry the session's CSRF token in the hidden ``csrf_token`` field."""
    form = await request.form()
    submitted = form.get("csrf_token")
    if not auth.csrf_ok(request.session, submitted if isinstance(submitted, str) else None):
        raise HTTPException(403, "the form's security token is missing or stale; reload the page and retry")


bearer = HTTPBearer(auto_error=False, description="An API token from the 'API tokens' page.")


def api_user(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)], db: DB) -> User:
    """The account behind ``Authorization: Bearer <token>``. The API never reads the session cookie."""
    if credentials is None:
        raise HTTPException(
            401, "send an API token as 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"}
        )
    account_id = auth.account_for_token(db, credentials.credentials)
    user = _load(db, account_id) if account_id is not None else None
    if user is None:
        raise HTTPException(401, "unknown or revoked API token", {"WWW-Authenticate": "Bearer"})
    return user


PageUser = Annotated[User, Depends(require_page_user)]
ApiUser = Annotated[User, Depends(api_user)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
JudgeDep = Annotated[Judge, Depends(get_judge)]


def flash(request: Request, message: str) -> None:
    request.session.setdefault("flash", []).append(message)


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    user: User | None = getattr(request.state, "user", None)
    ctx: dict[str, Any] = {
        "user": user,
        "csrf": auth.csrf_token(request.session),
        "flashes": request.session.pop("flash", []),
        "signup_grant": request.app.state.signup_grant,
    }
    if user is not None and "wallet" not in (context or {}):
        db = open_db(request.app.state.db_path, migrate=False)
        try:
            ctx["wallet"] = ledger.balance(db, ledger.wallet(user.id))
        finally:
            db.close()
    ctx.update(context or {})
    return TEMPLATES.TemplateResponse(request, name, ctx, status_code=status_code)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)
