"""What every JSON endpoint shares, so a new one gets it by using these: strict integer types with
true bounds, the body base class, the error envelope and the error responses the OpenAPI document
declares.

Why strict: pydantic's lax mode turns ``true`` into 1, ``5.0`` into 5 and ``"5"`` into 5; for money
that hides client bugs, so an integer field takes a JSON integer and nothing else. Why the bounds:
an id or amount past what the database stores (2^63 - 1) must be a 4xx, never a 500, and the API
goes further: every integer is at most :data:`JSON_MAX` (2^53 - 1), the largest that every JSON
client (a browser's, say) reads exactly. The pipeline still checks every value (a bid's reserve,
``[limits] max_amount``): the schema declares what is always true, the pipeline what depends on
the community and the settings.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

JSON_MAX = 2**53 - 1


class Body(BaseModel):
    """A request body: unknown fields are refused (``additionalProperties: false``), and so is text
    that is not Unicode one can store: JSON's ``\\ud800`` escape decodes to a lone surrogate, which
    SQLite and the password hasher cannot encode (a 422 naming the field, never a 500)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _refuse_lone_surrogates(self) -> Body:
        for name, value in self:
            for text in value if isinstance(value, list) else [value]:
                if isinstance(text, str) and not _encodable(text):
                    raise ValueError(f"{name} is not valid Unicode text (it holds a lone surrogate)")
        return self


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


Id = Annotated[int, Strict(), Field(ge=1, le=JSON_MAX, description="An id: a positive whole number.")]
Credits = Annotated[
    int,
    Strict(),
    Field(ge=0, le=JSON_MAX, description="Whole credits (also capped by `[limits] max_amount`)."),
]
Amount = Annotated[
    int,
    Strict(),
    Field(ge=1, le=JSON_MAX, description="Whole credits, at least 1 (at most `[limits] max_amount`)."),
]
Price = Annotated[
    int, Strict(), Field(ge=1, le=JSON_MAX, description="Credits paid to the informer if the note is bought.")
]
Count = Annotated[int, Strict(), Field(ge=1, le=JSON_MAX, description="How many: at least 1.")]
#: An id in the path: a positive integer that fits SQLite, else a 422 (never a 500).
PathId = Annotated[int, Path(ge=1, le=JSON_MAX)]


class ErrorBody(BaseModel):
    """Every refusal and every failure: a short code and a sentence naming the problem."""

    error: str = Field(examples=["invalid"], description="invalid, limit_exceeded, insufficient_funds, ...")
    detail: str = Field(examples=["bid must be at least 0, not -3"])


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


def integral_bounds(document: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's OpenAPI model stores bounds as floats (``"minimum": 1.0``); put integers back, so
    an integer field's bounds read as integers. Changes ``document`` in place and returns it."""
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                value = node.get(key)
                if isinstance(value, float) and value.is_integer() and node.get("type") == "integer":
                    node[key] = int(value)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return document


#: The errors any API operation can answer with, declared on the router so the document is true.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("Refused by the market's rules (the message names the rule); nothing changed."),
    401: _error("No API token, or an unknown or revoked one."),
    403: _error("Not allowed: not a moderator, not an informer, banned."),
    404: _error("No such post, market, offer, community or prompt (or not yours)."),
    409: _error("Conflict: the market is closed, or an Idempotency-Key was used for another request."),
    422: _error("The request does not fit this schema (the message names the field)."),
    429: _error("Too many login or token attempts: try again after `Retry-After` seconds."),
    500: _error("A fault of the server; nothing was changed (the log has the details)."),
    503: _error("The database cannot be used now (damaged, read-only, full, or from a newer version)."),
}
