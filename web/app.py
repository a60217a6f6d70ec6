"""Building the FastAPI app: middleware, routers, error pages, and the worker in the lifespan."""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.errors import NotebazaarError
from notebazaar.pipeline.judge import Judge
from notebazaar.pipeline.judge.factory import make_judge
from notebazaar.web import api, console, deps, pages, receipts, security
from notebazaar.web.contract import ErrorBody, integral_bounds
from notebazaar.web.idempotency import REPLAYED_HEADER, Replayed
from notebazaar.web.throttle import LoginThrottle
from notebazaar.web.worker import CloseWorker

log = logging.getLogger(__name__)

SECRET_ENV = "NOTEBAZAAR_SECRET_KEY"


def secret_key() -> str:
    """The session-signing key: ``$NOTEBAZAAR_SECRET_KEY``, else a random one for this process."""
    key = os.environ.get(SECRET_ENV)
    if key:
        return key
    log.warning(
        "%s is not set: using a random per-process secret; sessions end when the server restarts",
        SECRET_ENV,
    )
    return secrets.token_urlsafe(48)


def create_app(
    db_path: Path,
    settings: Settings,
    *,
    judge: Judge | None = None,
    judge_kind: str | None = None,
    key: str | None = None,
    signup_grant: int | None = None,
    start_worker: bool = True,
) -> FastAPI:
    """The web app over the database at ``db_path``.

    ``judge`` (or ``judge_kind``, passed to :func:`make_judge`) picks the judge that closes markets;
    by default it is built from ``settings``. The worker that closes due markets starts with the app
    and stops with it. ``signup_grant`` is the credits each new account gets: by default
    ``[web] signup_credits`` (0; ``serve --demo`` passes ``demo_signup_credits``).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        judge_db = open_db(db_path)  # migrates once; kept open for a judge that reads the database
        worker = None
        try:
            if app.state.judge is None:
                app.state.judge = make_judge(settings, judge_db, kind=judge_kind)
            if start_worker:
                worker = CloseWorker(
                    db_path,
                    app.state.judge,
                    settings.web.close_poll_seconds,
                    app.state.close_lock,
                    settings.recursion,
                    settings.bridging,
                )
                worker.start()
            yield
        finally:
            if worker is not None:
                worker.stop()
            judge_db.close()

    app = FastAPI(
        title="notebazaar",
        summary="Community notes bought by an amnesic judge in a sealed information market.",
        description="The JSON API under /api covers everything the web pages do. Authenticate with"
        " `Authorization: Bearer <token>` (create a token on the 'API tokens' page or with"
        " `POST /api/tokens`). The API never reads cookies, so it needs no CSRF token.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served by web/security.py from a package, not from a CDN
        redoc_url=None,
    )
    app.state.db_path = Path(db_path)
    app.state.settings = settings
    app.state.judge = judge
    app.state.close_lock = threading.Lock()
    app.state.signup_grant = settings.web.signup_credits if signup_grant is None else signup_grant
    app.state.secret_key = key or secret_key()
    app.state.login_throttle = LoginThrottle(
        settings.web.login_rate_per_handle, settings.web.login_rate_per_address
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=app.state.secret_key,
        session_cookie="notebazaar_session",
        same_site="lax",
        https_only=settings.web.https_only,  # Secure: the cookie never travels over plain HTTP
        max_age=settings.web.session_days * 24 * 3600,  # the server-side session expires then too
    )
    app.add_middleware(security.SecurityHeaders)
    app.mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static")
    security.mount_docs(app)
    app.include_router(pages.router)
    app.include_router(receipts.router)
    app.include_router(console.router)
    app.include_router(api.router)
    _install_error_handlers(app)
    generate = app.openapi
    app.openapi = lambda: integral_bounds(generate())  # type: ignore[method-assign]
    return app


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(code: str, detail: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    """The API's one error envelope (:class:`notebazaar.web.contract.ErrorBody`)."""
    return JSONResponse(ErrorBody(error=code, detail=detail).model_dump(), status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotebazaarError)
    async def refused(request: Request, exc: NotebazaarError) -> Response:
        status = deps.status_for(exc)
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        if _is_api(request):
            return _error(exc.code, str(exc), status, headers=headers)
        page = deps.render(request, "error.html", {"status": status, "message": str(exc)}, status)
        page.headers.update(headers or {})
        return page

    @app.exception_handler(Replayed)
    async def replayed(request: Request, exc: Replayed) -> Response:
        return JSONResponse(exc.body, exc.status, headers={REPLAYED_HEADER: "true"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_api(request):
            return _error("http", str(exc.detail), exc.status_code, headers=exc.headers)
        return deps.render(
            request, "error.html", {"status": exc.status_code, "message": exc.detail}, exc.status_code
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors()
        )
        if _is_api(request):
            return _error("invalid", problems, 422)
        return deps.render(request, "error.html", {"status": 422, "message": problems}, 422)

    @app.exception_handler(deps.LoginRequired)
    async def login_required(request: Request, exc: deps.LoginRequired) -> Response:
        deps.flash(request, "Please log in first.")
        return deps.redirect(f"/login?next={request.url.path}")

    @app.exception_handler(Exception)
    async def fault(request: Request, exc: Exception) -> Response:
        """A bug or a broken disk: logged with its traceback (ids only, never a note), answered
        in the envelope, with the security headers (this answer bypasses the middleware)."""
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        detail = "the server failed to answer this request; nothing was changed, and the log says why"
        if _is_api(request):
            return _error("internal", detail, 500, headers=security.HEADERS)
        try:
            page = deps.render(request, "error.html", {"status": 500, "message": detail}, 500)
        except Exception:  # the page itself needs the database: fall back to plain text
            return Response(f"500: {detail}\n", 500, media_type="text/plain; charset=utf-8")
        page.headers.update(security.HEADERS)
        return page
