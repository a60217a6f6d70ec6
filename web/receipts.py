"""The sealed-note receipt, shown once to its owner after a Post/Redirect/Get.

Why: the receipt used to be the answer to the form's POST, so reloading it submitted the note again
and escrowed the bid twice. Now the POST answers with a redirect to ``/receipts/{offer id}``, and the
receipt travels to that page in a short-lived cookie, signed with the app's secret, scoped to that
one path, HttpOnly and SameSite=Strict. The page shows it to the offer's informer and deletes the
cookie; a reload shows the page without the salt (which, by design, no database or log holds, so it
cannot be shown again). Anyone else gets a 404 page. The salt never touches the server's storage:
it is only in the informer's browser, for at most :data:`MAX_AGE` seconds.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from notebazaar.pipeline.market import Receipt
from notebazaar.web.contract import PathId
from notebazaar.web.deps import DB, PageUser, page_user, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(page_user)])
COOKIE = "notebazaar_receipt"
MAX_AGE = 600  # seconds the receipt waits in the browser for its page


def _signer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app.state.secret_key, salt="notebazaar-receipt")


def _path(offer_id: int) -> str:
    return f"/receipts/{offer_id}"


def redirect_to_receipt(request: Request, receipt: Receipt) -> Response:
    """The answer to a successful sealed-note POST: 303 to the receipt page, the receipt in a cookie."""
    response = RedirectResponse(_path(receipt.offer_id), status_code=303)
    response.set_cookie(
        COOKIE,
        _signer(request).dumps(receipt.as_dict()),
        max_age=MAX_AGE,
        path=_path(receipt.offer_id),
        httponly=True,
        samesite="strict",
    )
    return response


def _from_cookie(request: Request, offer: dict[str, Any]) -> dict[str, Any] | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        receipt = _signer(request).loads(raw, max_age=MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(receipt, dict) or receipt.get("offer_id") != offer["id"]:
        return None
    if receipt.get("commitment") != offer["commitment"]:
        return None
    return receipt


@router.get("/posts/{post_id}/offers", response_class=HTMLResponse)
def offers_form(*, post_id: PathId) -> Response:
    """A GET of the sealed-note form's address (a bookmark, a reload after a refusal) is the post's
    page at its form, never a 405."""
    return RedirectResponse(f"/posts/{post_id}#submit", status_code=303)


@router.get("/receipts/{offer_id}", response_class=HTMLResponse)
def receipt_page(*, request: Request, offer_id: PathId, user: PageUser, db: DB) -> Response:
    """The receipt, once (with its salt); afterwards the same page without the salt."""
    row = db.execute(
        "SELECT o.id, o.informer_id, o.market_id, o.bid, o.price, o.commitment, o.status, m.post_id"
        " FROM offers o JOIN markets m ON m.id = o.market_id WHERE o.id = ?",
        [offer_id],
    ).fetchone()
    if row is None or int(row[1]) != user.id:
        return render(request, "error.html", {"status": 404, "message": f"no offer {offer_id} of yours"}, 404)
    offer = dict(
        zip(("id", "informer_id", "market_id", "bid", "price", "commitment", "status"), row[:7], strict=True)
    )
    fresh = _from_cookie(request, offer)
    context = {"receipt": fresh or offer, "salt": (fresh or {}).get("salt"), "post": {"id": int(row[7])}}
    response = render(request, "receipt.html", context)
    response.headers["Cache-Control"] = "no-store"
    if fresh is not None:
        response.delete_cookie(COOKIE, path=_path(offer_id), httponly=True, samesite="strict")
    return response
