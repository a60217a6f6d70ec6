"""What a failed Reddit call means for the bot: try again later (and when), or never.

Transient: a rate limit (HTTP 429 with ``Retry-After``, or the API's ``RATELIMIT`` error, whose
message says how long to wait: "Take a break for 9 minutes"), a server error after prawcore's own
retries, a network failure. These concern the bot's account or Reddit as a whole, so the bot holds
its other deliveries too instead of hammering. Permanent: Reddit refused the thing itself (a
deleted or locked post, ``TOO_OLD``, a ban: ``Forbidden``), or any other 4xx answer. Anything else is
a bug and is not classified here.
"""

from __future__ import annotations

import re

import prawcore
from praw.exceptions import RedditAPIException

from notebazaar.pipeline.outbox import Failure

DEFAULT_RATELIMIT_SECONDS = 60.0
_WAIT = re.compile(r"(\d+)\s*(milliseconds?|seconds?|minutes?|hours?)", re.IGNORECASE)
_UNITS = {"millisecond": 0.001, "second": 1.0, "minute": 60.0, "hour": 3600.0}


def ratelimit_wait(message: str | None) -> float | None:
    """The wait a ``RATELIMIT`` message asks for, in seconds ("try again in 9 minutes" -> 540)."""
    match = _WAIT.search(message or "")
    if not match:
        return None
    unit = match.group(2).lower().rstrip("s")
    return int(match.group(1)) * _UNITS[unit]


def _header_seconds(exc: prawcore.exceptions.ResponseException) -> float | None:
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:  # an HTTP date; the backoff is long enough anyway
        return None


def classify(exc: BaseException) -> Failure | None:
    """The meaning of a failed Reddit call, or None for an exception that is not Reddit's."""
    if isinstance(exc, RedditAPIException):
        kinds = sorted({item.error_type for item in exc.items})
        limited = [item for item in exc.items if item.error_type == "RATELIMIT"]
        if limited:
            wait = ratelimit_wait(limited[0].message) or DEFAULT_RATELIMIT_SECONDS
            return Failure(True, "RATELIMIT", wait)
        return Failure(False, f"reddit refused it: {', '.join(kinds)}")
    if isinstance(exc, prawcore.exceptions.TooManyRequests):
        return Failure(True, "HTTP 429 Too Many Requests", _header_seconds(exc) or DEFAULT_RATELIMIT_SECONDS)
    if isinstance(exc, prawcore.exceptions.Forbidden):
        return Failure(False, "Forbidden (the bot is banned, or the subreddit is private)")
    if isinstance(exc, prawcore.exceptions.NotFound):
        return Failure(False, "NotFound (the post is gone)")
    if isinstance(exc, prawcore.exceptions.ResponseException):
        status = exc.response.status_code if exc.response is not None else 0
        name = f"HTTP {status} ({type(exc).__name__})"
        return Failure(True, name, _header_seconds(exc)) if status >= 500 else Failure(False, name)
    if isinstance(exc, prawcore.exceptions.RequestException):
        return Failure(True, f"network: {type(exc.original_exception).__name__}")
    if isinstance(exc, prawcore.exceptions.BadJSON):
        return Failure(True, "bad JSON from Reddit")
    return None
