"""Connecting to Reddit with praw, and turning setup mistakes into clear errors.

Credentials come from praw's own sources: the ``praw_client_id``, ``praw_client_secret``,
``praw_username`` and ``praw_password`` environment variables or a ``praw.ini`` site. Nothing secret
is read from config.toml.
"""

from __future__ import annotations

import threading
from typing import Any

import praw
import prawcore
from praw.exceptions import ClientException

from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.errors import NotebazaarError

# Worth retrying later: a rate limit, a server error after praw's own retries, a network failure.
TRANSIENT = (
    prawcore.exceptions.TooManyRequests,
    prawcore.exceptions.ServerError,
    prawcore.exceptions.RequestException,
)


_sent = threading.local()


class CountingRequestor(prawcore.Requestor):
    """prawcore's requestor, counting in each thread the comments it sends (``POST /api/comment``).

    prawcore sends a request again, inside one call, when Reddit answers 5xx or 408 or the network
    times out; Reddit may have saved the comment the first time, so one ``reply()`` can leave two.
    Delivery reads :func:`comments_sent` around a reply and looks for a duplicate only when the
    comment was sent more than once. Plugged in through praw's documented ``requestor_class``.
    """

    def request(self, *args: Any, **kwargs: Any) -> Any:
        method = str(kwargs.get("method", args[0] if args else ""))
        url = str(kwargs.get("url", args[1] if len(args) > 1 else ""))
        if method.upper() == "POST" and url.rstrip("/").endswith("/api/comment"):
            _sent.comments = comments_sent() + 1
        return super().request(*args, **kwargs)


def comments_sent() -> int:
    """How many comments this thread has sent through :class:`CountingRequestor` so far."""
    return int(getattr(_sent, "comments", 0))


class RedditSetupError(NotebazaarError):
    """The bot cannot start: missing credentials, an empty mapping, an unknown community."""

    code = "reddit_setup"


_CREDENTIALS_HELP = (
    "set praw_client_id, praw_client_secret, praw_username and praw_password in the environment"
    " (or a praw.ini site); see docs/reddit.md"
)


def connect(settings: Settings, **praw_kwargs: Any) -> praw.Reddit:
    """A logged-in praw client. ``praw_kwargs`` reach praw as is (tests point it at loopback)."""
    praw_kwargs.setdefault("requestor_class", CountingRequestor)
    try:
        reddit = praw.Reddit(user_agent=settings.reddit.user_agent, check_for_updates=False, **praw_kwargs)
    except ClientException as exc:  # MissingRequiredAttributeException and friends
        raise RedditSetupError(f"Reddit credentials are incomplete ({exc}); {_CREDENTIALS_HELP}") from None
    if reddit.read_only:
        raise RedditSetupError(
            f"the bot needs a Reddit account to read its inbox and reply: {_CREDENTIALS_HELP}"
        )
    return reddit


def bot_username(reddit: praw.Reddit) -> str:
    """Who the bot is logged in as; the first call, so bad credentials show up here."""
    try:
        me = reddit.user.me()
    except prawcore.exceptions.OAuthException as exc:
        raise RedditSetupError(f"Reddit refused the credentials ({exc}); {_CREDENTIALS_HELP}") from None
    except prawcore.exceptions.ResponseException as exc:
        raise RedditSetupError(f"Reddit answered the login with an error ({exc})") from None
    except prawcore.exceptions.RequestException as exc:
        raise RedditSetupError(f"cannot reach Reddit ({exc.original_exception})") from None
    if me is None:
        raise RedditSetupError(f"the bot is not logged in; {_CREDENTIALS_HELP}")
    return str(me.name)
