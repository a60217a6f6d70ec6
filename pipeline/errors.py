"""Errors a user can cause. Each names the problem in words a user can act on.

Surfaces (CLI, web, bots) catch ``NotebazaarError`` and show its message; anything else is a bug.
"""

from __future__ import annotations


class NotebazaarError(Exception):
    """Base class: a refused request. Nothing was changed."""

    code = "error"


class ValidationError(NotebazaarError):
    code = "invalid"


class NotFound(NotebazaarError):
    code = "not_found"


class InsufficientFunds(NotebazaarError):
    code = "insufficient_funds"


class MarketClosed(NotebazaarError):
    code = "market_closed"


class LimitExceeded(NotebazaarError):
    code = "limit_exceeded"


class Forbidden(NotebazaarError):
    code = "forbidden"


class Conflict(NotebazaarError):
    code = "conflict"


class RateLimited(NotebazaarError):
    """Too many attempts of something guessable (logins, token requests) in a short time."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
