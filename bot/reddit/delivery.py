"""Posting bought notes: one reply comment per reveal, distinguished and stickied where the bot
moderates, exactly once whatever Reddit does.

* **Idempotent on Reddit's side.** An attempt is recorded before the reply is sent. A row that was
  attempted before (the bot may have died between Reddit accepting the comment and the database
  recording it, or Reddit may have posted despite an error) is first looked for among the bot's own
  recent comments, by the hidden marker every note comment carries, and adopted if found.
* **One comment, even when prawcore resent it.** prawcore sends a request again inside one call on
  a 5xx, a 408 or a timeout, and Reddit may have saved the first: after a reply that was sent more
  than once (:func:`~notebazaar.bot.reddit.client.comments_sent`), and whenever an earlier attempt
  is adopted, the bot's comments with the reveal's marker are listed, the oldest is kept and the
  others are deleted.
* **Transient errors** (server errors, HTTP 429, the ``RATELIMIT`` API error, network) schedule the
  row by exponential backoff with jitter, never earlier than Reddit asked, and hold the other rows
  until then: the bot's account or Reddit as a whole is the problem. The schedule is in the outbox,
  so a restart keeps it.
* **Permanent errors** (deleted or locked post, ``Forbidden`` for a banned bot) fail the row at once
  with Reddit's reason; moderators see it (console, ``notebazaar outbox list --status failed``).
* **Stopping.** Between rows the loop asks ``stopping()`` (set on SIGTERM): the row in hand is
  finished and recorded, the rest wait for the next start.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

import praw
import prawcore
from praw.exceptions import RedditAPIException
from sqlite_utils import Database

from notebazaar.bot.reddit.client import comments_sent
from notebazaar.bot.reddit.failures import classify
from notebazaar.bot.reddit.markdown import note_comment, note_marker
from notebazaar.pipeline import outbox
from notebazaar.pipeline.backoff import Backoff
from notebazaar.pipeline.outbox import Failure

log = logging.getLogger(__name__)

SURFACE = "reddit"
MODERATOR_CACHE_SECONDS = 3600.0
OWN_COMMENTS_SEARCHED = 100  # how far back the bot looks for a comment it may already have posted


class Delivery:
    def __init__(
        self,
        reddit: praw.Reddit,
        db: Database,
        *,
        bot_name: str,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.reddit = reddit
        self.db = db
        self.bot_name = bot_name
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.stopping = stopping
        self._moderates: dict[str, tuple[bool, float]] = {}

    def deliver(self) -> int:
        """Post every note that is due; returns how many reached Reddit (posted or adopted)."""
        posted = 0
        due = outbox.pending(self.db, SURFACE, now=self.clock())
        for index, row in enumerate(due):
            if self.stopping():
                log.info("reddit delivery: stopping; %s due notes left for the next start", len(due) - index)
                break
            try:
                posted += self._deliver_one(row)
            except Exception as exc:
                failure = classify(exc)
                if failure is None:  # a bug: logged, and retried on the backoff (not every tick)
                    log.error(
                        "reddit outbox %s: unexpected %s\n%s",
                        row.outbox_id,
                        type(exc).__name__,
                        "".join(traceback.format_tb(exc.__traceback__)),  # frames only: no message
                    )
                    failure = Failure(True, f"unexpected {type(exc).__name__}")
                if not failure.transient:
                    self._fail(row, failure.reason)
                    continue
                self._retry_later(row, failure)
                break
        return posted

    def _deliver_one(self, row: outbox.PendingReveal) -> int:
        if row.attempts > 0:
            found = self._posted(row)
            if found:
                self._delivered(row, self._keep_one(row, found), adopted=True)
                return 1
        outbox.begin_attempt(self.db, row.outbox_id, now=self.clock())
        body = note_comment(
            reveal_id=row.reveal_id,
            classification=row.classification,
            text=row.text,
            sources=row.sources,
            informer=row.informer,
            price=row.price,
        )
        sent_before = comments_sent()
        comment = self._target(row).reply(body)
        if comment is None:  # Reddit accepts replies to some archived items silently
            self._fail(row, "reddit accepted the reply but returned no comment (archived?)")
            return 0
        if comments_sent() - sent_before > 1:  # prawcore resent it: Reddit may hold it twice
            comment = self._keep_one(row, [comment, *self._posted(row)])
        self._delivered(row, comment, adopted=False)
        return 1

    def _target(self, row: outbox.PendingReveal) -> Any:
        fullname = row.post_external_id
        if fullname.startswith("t3_"):
            return self.reddit.submission(fullname[3:])
        return self.reddit.comment(fullname[3:])

    def _posted(self, row: outbox.PendingReveal) -> list[Any]:
        """The bot's own comments under the post that carry this reveal's marker."""
        marker = note_marker(row.reveal_id)
        return [
            comment
            for comment in self.reddit.redditor(self.bot_name).comments.new(limit=OWN_COMMENTS_SEARCHED)
            if comment.parent_id == row.post_external_id and marker in (comment.body or "")
        ]

    def _keep_one(self, row: outbox.PendingReveal, comments: list[Any]) -> Any:
        """The oldest of the note's comments; the others are deleted (best effort: a duplicate
        Reddit will not delete is logged and left)."""
        unique = {comment.fullname: comment for comment in comments}
        oldest, *others = sorted(unique.values(), key=lambda c: (c.created_utc, int(c.id, 36)))
        for duplicate in others:
            try:
                duplicate.delete()
                log.warning(
                    "reddit outbox %s: deleted %s, a second copy of note %s (kept %s)",
                    row.outbox_id,
                    duplicate.fullname,
                    row.reveal_id,
                    oldest.fullname,
                )
            except (prawcore.exceptions.PrawcoreException, RedditAPIException) as exc:
                log.warning(
                    "reddit outbox %s: cannot delete %s, a second copy of note %s (%s)",
                    row.outbox_id,
                    duplicate.fullname,
                    row.reveal_id,
                    type(exc).__name__,
                )
        return oldest

    def _delivered(self, row: outbox.PendingReveal, comment: Any, *, adopted: bool) -> None:
        outbox.mark_delivered(self.db, row.outbox_id, comment.fullname, now=self.clock())
        how = "found already posted as" if adopted else "posted as"
        log.info("reddit outbox %s: note %s %s %s", row.outbox_id, row.reveal_id, how, comment.fullname)
        self._distinguish(comment)

    def _fail(self, row: outbox.PendingReveal, reason: str) -> None:
        log.warning("reddit outbox %s (post %s) failed: %s", row.outbox_id, row.post_external_id, reason)
        outbox.mark_failed(self.db, row.outbox_id, reason, now=self.clock())

    def _retry_later(self, row: outbox.PendingReveal, failure: Failure) -> None:
        now = self.clock()
        due = outbox.retry_later(self.db, row.outbox_id, SURFACE, failure, backoff=self.backoff, now=now)
        if due is None:
            log.warning(
                "reddit outbox %s: gave up after the retry horizon (%s)", row.outbox_id, failure.reason
            )
        else:
            log.warning(
                "reddit outbox %s: %s; next attempt in %.0fs", row.outbox_id, failure.reason, due - now
            )

    def _distinguish(self, comment: Any) -> None:
        """Distinguish the note (and sticky it, when it replies to a submission) if the bot moderates."""
        name = str(comment.subreddit)
        if not self._is_moderator(name):
            return
        try:
            comment.mod.distinguish(how="yes", sticky=comment.is_root)
        except (prawcore.exceptions.PrawcoreException, RedditAPIException) as exc:
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
        except (prawcore.exceptions.PrawcoreException, RedditAPIException) as exc:
            failure = classify(exc)
            if failure is None or failure.transient:
                return False  # ask again next time
            moderates = False
        self._moderates[subreddit.lower()] = (moderates, self.clock())
        return moderates
