"""Connecting to Reddit with praw, and turning setup mistakes into clear errors.

Credentials come from praw's own sources: the ``praw_client_id``, ``praw_client_secret``,
``praw_username`` and ``praw_password`` environment variables or a ``praw.ini`` site. Nothing secret
is read from config.toml.
"""

from __future__ import annotations

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


class RedditSetupError(NotebazaarError):
    """The bot cannot start: missing credentials, an empty mapping, an unknown community."""

    code = "reddit_setup"


_CREDENTIALS_HELP = (
    "set praw_client_id, praw_client_secret, praw_username and praw_password in the environment"
    " (or a praw.ini site); see docs/reddit.md"
)


def connect(settings: Settings, **praw_kwargs: Any) -> praw.Reddit:
    """A logged-in praw client. ``praw_kwargs`` reach praw as is (tests point it at loopback)."""
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
