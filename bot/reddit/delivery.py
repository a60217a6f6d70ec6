"""Posting bought notes: one reply comment per reveal, distinguished and stickied where the bot
moderates.

Each outbox row is delivered once: the comment's fullname is recorded as soon as Reddit accepts
it, before the moderator touches, so a restart never posts it again. A post that is gone (deleted,
locked, archived) or a bot banned from the subreddit fails the row at once with Reddit's reason; a
rate limit or a server error stops this round and the row waits for the next tick.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import praw
import prawcore
from praw.exceptions import RedditAPIException
from sqlite_utils import Database

from notebazaar.bot.reddit.client import TRANSIENT
from notebazaar.bot.reddit.markdown import note_comment
from notebazaar.pipeline import outbox

log = logging.getLogger(__name__)

SURFACE = "reddit"
RETRYABLE_API_ERRORS = {"RATELIMIT"}
MODERATOR_CACHE_SECONDS = 3600.0


class RetryLater(Exception):
    """Reddit asked the bot to slow down (an API ``RATELIMIT`` error): try the row next tick."""


class Delivery:
    def __init__(
        self, reddit: praw.Reddit, db: Database, *, bot_name: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.reddit = reddit
        self.db = db
        self.bot_name = bot_name
        self.clock = clock
        self._moderates: dict[str, tuple[bool, float]] = {}

    def deliver(self) -> int:
        """Post every pending note; returns how many were posted."""
        posted = 0
        for row in outbox.pending(self.db, SURFACE):
            try:
                posted += self._deliver_one(row)
            except prawcore.exceptions.ServerError as exc:
                outbox.mark_failed(self.db, row.outbox_id, f"reddit server error: {exc}")  # counted retries
            except (*TRANSIENT, RetryLater) as exc:
                log.warning("reddit outbox %s: %s; will retry", row.outbox_id, type(exc).__name__)
                break
        return posted

    def _deliver_one(self, row: outbox.PendingReveal) -> int:
        target: Any = (
            self.reddit.submission(row.post_external_id[3:])
            if row.post_external_id.startswith("t3_")
            else self.reddit.comment(row.post_external_id[3:])
        )
        body = note_comment(
            reveal_id=row.reveal_id,
            classification=row.classification,
            text=row.text,
            sources=row.sources,
            informer=row.informer,
            price=row.price,
        )
        try:
            comment = target.reply(body)
        except RedditAPIException as exc:
            kinds = {item.error_type for item in exc.items}
            if kinds & RETRYABLE_API_ERRORS:
                raise RetryLater(", ".join(sorted(kinds))) from exc
            self._fail(row, f"reddit refused the reply: {', '.join(sorted(kinds))}")
            return 0
        except (prawcore.exceptions.Forbidden, prawcore.exceptions.NotFound) as exc:
            self._fail(row, f"reddit refused the reply: {type(exc).__name__} (banned, or the post is gone)")
            return 0
        if comment is None:  # Reddit accepts replies to some archived items silently
            self._fail(row, "reddit accepted the reply but returned no comment")
            return 0
        outbox.mark_delivered(self.db, row.outbox_id, comment.fullname)
        log.info("reddit outbox %s: note %s posted as %s", row.outbox_id, row.reveal_id, comment.fullname)
        self._distinguish(comment)
        return 1

    def _fail(self, row: outbox.PendingReveal, reason: str) -> None:
        log.warning("reddit outbox %s (post %s): %s", row.outbox_id, row.post_external_id, reason)
        outbox.mark_failed(self.db, row.outbox_id, reason, max_attempts=1)

    def _distinguish(self, comment: Any) -> None:
        """Distinguish the note (and sticky it, when it replies to a submission) if the bot moderates."""
        name = str(comment.subreddit)
        if not self._is_moderator(name):
            return
        try:
            comment.mod.distinguish(how="yes", sticky=comment.is_root)
        except (prawcore.exceptions.ResponseException, RedditAPIException) as exc:
            log.warning(
                "reddit: cannot distinguish %s in r/%s (%s)", comment.fullname, name, type(exc).__name__
            )

    def _is_moderator(self, subreddit: str) -> bool:
        known = self._moderates.get(subreddit.lower())
        if known and self.clock() - known[1] < MODERATOR_CACHE_SECONDS:
            return known[0]
        try:
            mods = self.reddit.subreddit(subreddit).moderator(redditor=self.bot_name)
            moderates = any(str(m).lower() == self.bot_name.lower() for m in mods)
        except (prawcore.exceptions.ResponseException, RedditAPIException):
            moderates = False
        self._moderates[subreddit.lower()] = (moderates, self.clock())
        return moderates
