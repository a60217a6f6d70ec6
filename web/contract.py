"""What every JSON endpoint shares, so a new one gets it by using these: strict integer types with
true bounds, the body base class, the error envelope and the error responses the OpenAPI document
declares.

Why strict: pydantic's lax mode turns ``true`` into 1, ``5.0`` into 5 and ``"5"`` into 5; for money
that hides client bugs, so an integer field takes a JSON integer and nothing else. Why the bounds:
SQLite stores signed 64-bit integers, and an id or amount past that must be a 4xx, never a 500. The
pipeline still checks every value (a bid's reserve, ``[limits] max_amount``): the schema declares
what is always true, the pipeline what depends on the community and the settings.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, Strict

from notebazaar.pipeline.validation import SQL_MAX


class Body(BaseModel):
    """A request body: unknown fields are refused (``additionalProperties: false``)."""

    model_config = ConfigDict(extra="forbid")


Id = Annotated[int, Strict(), Field(ge=1, le=SQL_MAX, description="An id: a positive whole number.")]
Credits = Annotated[
    int,
    Strict(),
    Field(ge=0, le=SQL_MAX, description="Whole credits (also capped by `[limits] max_amount`)."),
]
Amount = Annotated[
    int,
    Strict(),
    Field(ge=1, le=SQL_MAX, description="Whole credits, at least 1 (at most `[limits] max_amount`)."),
]
Price = Annotated[
    int, Strict(), Field(ge=1, le=SQL_MAX, description="Credits paid to the informer if the note is bought.")
]
Count = Annotated[int, Strict(), Field(ge=1, le=SQL_MAX, description="How many: at least 1.")]
#: An id in the path: a positive integer that fits SQLite, else a 422 (never a 500).
PathId = Annotated[int, Path(ge=1, le=SQL_MAX)]


class ErrorBody(BaseModel):
    """Every refusal and every failure: a short code and a sentence naming the problem."""

    error: str = Field(examples=["invalid"], description="invalid, limit_exceeded, insufficient_funds, ...")
    detail: str = Field(examples=["bid must be at least 0, not -3"])


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


#: The errors any API operation can answer with, declared on the router so the document is true.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("Refused by the market's rules (the message names the rule); nothing changed."),
    401: _error("No API token, or an unknown or revoked one."),
    403: _error("Not allowed: not a moderator, not an informer, banned."),
    404: _error("No such post, market, offer, community or prompt (or not yours)."),
    409: _error("Conflict: the market is closed, or an Idempotency-Key was used for another request."),
    422: _error("The request does not fit this schema (the message names the field)."),
    500: _error("A fault of the server; nothing was changed (the log has the details)."),
}
