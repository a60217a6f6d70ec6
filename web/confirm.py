"""Asking before a destructive action (close a market, ban, activate a prompt, withdraw, unpublish).

Why a server-side step: it works without JavaScript. A destructive form posts without
``confirm=yes`` and gets a page that says what will happen, with the form's fields carried along
and a "Yes" button that posts them again with ``confirm=yes``. With JavaScript,
``static/confirm.js`` asks the same question (the form's ``data-confirm``) in the browser's own
dialog and adds ``confirm=yes`` itself, so the extra page is skipped. The JSON API never asks: a
script that calls it means it.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from notebazaar.web.deps import render

CONFIRMED = "yes"


def confirmed(value: str) -> bool:
    return value == CONFIRMED


def ask(
    request: Request,
    *,
    question: str,
    consequences: str,
    button: str,
    cancel: str,
    fields: dict[str, str] | None = None,
) -> Response:
    """The confirmation page for the POST ``request`` (same URL, same fields, plus confirm=yes)."""
    context = {
        "question": question,
        "consequences": consequences,
        "button": button,
        "cancel": cancel,
        "action": request.url.path,
        "fields": fields or {},
    }
    return render(request, "confirm.html", context)
