"""Watching subreddits: new submissions and comments become posts, check-worthy ones get markets.

The position is resumable. For each stream (submissions, comments) the bot stores the newest
``created_utc`` it has handled and the fullnames handled at that second. On a restart it first
reads the listing back to that position (up to ``catchup_limit`` items, newest first), handles what
it missed oldest first, then streams. ``skip_existing`` is used only on the very first run, when
there is no position and the backlog is not ours to judge. Posts are also unique per fullname in
the database, so an item handled twice changes nothing.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import praw
from sqlite_utils import Database

from notebazaar.bot.reddit.client import TRANSIENT
from notebazaar.bot.reddit.state import get_state, set_state
from notebazaar.pipeline.checkworthy import is_check_worthy
from notebazaar.pipeline.community import add_post
from notebazaar.pipeline.config import RedditSettings
from notebazaar.pipeline.db import write
from notebazaar.pipeline.errors import NotebazaarError
from notebazaar.pipeline.market import open_market

log = logging.getLogger(__name__)

Kind = Literal["submissions", "comments"]
MAX_POST_CHARS = 40_000
_GONE = {"[deleted]", "[removed]"}


@dataclass
class Position:
    """The newest creation time handled, and the fullnames handled at exactly that time."""

    created_utc: float
    fullnames: list[str] = field(default_factory=list)

    def is_new(self, created_utc: float, fullname: str) -> bool:
        return created_utc > self.created_utc or (
            created_utc == self.created_utc and fullname not in self.fullnames
        )

    def advance(self, created_utc: float, fullname: str) -> None:
        if created_utc > self.created_utc:
            self.created_utc, self.fullnames = created_utc, [fullname]
        elif created_utc == self.created_utc and fullname not in self.fullnames:
            self.fullnames.append(fullname)


def post_text(item: Any) -> str:
    """What a market is about: a submission's title and body (or link), or a comment's body."""
    if isinstance(item, praw.models.Submission):
        body = item.selftext if item.is_self else item.url
        text = f"{item.title}\n\n{body}" if body and body not in _GONE else item.title
    else:
        text = "" if item.body in _GONE else item.body
    clean = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    return clean.strip()[:MAX_POST_CHARS]


class Watcher:
    """One resumable stream (submissions or comments) over all mapped subreddits."""

    def __init__(
        self,
        reddit: praw.Reddit,
        db: Database,
        communities: dict[str, int],
        kind: Kind,
        *,
        settings: RedditSettings,
        bot_name: str,
        catchup_limit: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.communities = {name.lower(): cid for name, cid in communities.items()}
        self.kind = kind
        self.settings = settings
        self.bot_name = bot_name.lower()
        self.catchup_limit = catchup_limit
        self.clock = clock
        self.subreddit = reddit.subreddit("+".join(sorted(self.communities)))
        self.permalink_base = reddit.config.reddit_url
        self._stream: Iterator[Any] | None = None
        self._failures = 0
        self._position: Position | None = None

    @property
    def _key(self) -> str:
        return f"position:{self.kind}"

    def _save(self) -> None:
        assert self._position is not None
        set_state(self.db, self._key, self._position.__dict__)

    def _start(self) -> None:
        stored = get_state(self.db, self._key)
        first_run = stored is None
        self._position = Position(self.clock()) if first_run else Position(**stored)
        if first_run:
            self._save()
        else:
            self._catch_up()
        stream = self.subreddit.stream
        source = stream.submissions if self.kind == "submissions" else stream.comments
        self._stream = source(
            pause_after=-1, skip_existing=first_run, exception_handler=self._on_stream_error
        )

    def _catch_up(self) -> None:
        """Handle, oldest first, what was posted since the stored position."""
        assert self._position is not None
        listing = self.subreddit.new if self.kind == "submissions" else self.subreddit.comments
        missed = []
        for item in listing(limit=self.catchup_limit):
            if item.created_utc < self._position.created_utc:
                break
            if self._position.is_new(item.created_utc, item.fullname):
                missed.append(item)
        for item in reversed(missed):
            self._handle(item)
        if missed:
            log.info("reddit %s: caught up on %s items missed while stopped", self.kind, len(missed))

    def _on_stream_error(self, exc: Exception) -> None:
        """Ride out a brief rate limit or server error inside the stream (praw then backs off and
        retries); anything else, or a third failure in a row, ends the stream, and the next tick
        restarts it from the stored position."""
        self._failures += 1
        if isinstance(exc, TRANSIENT) and self._failures <= 2:
            log.warning("reddit %s stream: %s; retrying", self.kind, type(exc).__name__)
            retry_after = getattr(exc, "retry_after", None)
            if retry_after:
                time.sleep(min(float(retry_after), 60.0))
            return
        raise exc

    def poll(self) -> int:
        """Handle one batch of new items (one request); returns how many were new."""
        if self._stream is None:
            self._start()
        assert self._stream is not None
        handled = 0
        try:
            for item in self._stream:
                if item is None:
                    break
                handled += self._handle(item)
        except BaseException:
            self._stream = None  # a dead generator; restart from the stored position next time
            raise
        self._failures = 0
        return handled

    def _handle(self, item: Any) -> int:
        assert self._position is not None
        fullname, created = str(item.fullname), float(item.created_utc)
        if not self._position.is_new(created, fullname):
            return 0
        with write(self.db):
            self._open_market_if_worthy(item, fullname, created)
            self._position.advance(created, fullname)
            self._save()
        return 1

    def _open_market_if_worthy(self, item: Any, fullname: str, created: float) -> None:
        community_id = self.communities.get(str(item.subreddit).lower())
        author = str(item.author) if item.author is not None else None
        if community_id is None or (author or "").lower() == self.bot_name:
            return
        text = post_text(item)
        mode, min_chars = self.settings.check_worthiness, self.settings.min_chars
        if not is_check_worthy(text, mode=mode, min_chars=min_chars):
            return
        try:
            post_id = add_post(
                self.db,
                community_id,
                text,
                platform="reddit",
                external_id=fullname,
                url=self.permalink_base + item.permalink,
                author=author,
                now=created,
            )
            market_id = open_market(self.db, post_id)
        except NotebazaarError as exc:
            log.warning("reddit %s: no market for %s: %s", self.kind, fullname, exc)
            return
        log.info("reddit %s: market %s opened on %s", self.kind, market_id, fullname)
