"""The Reddit bot's loop. One :meth:`RedditBot.tick` does a round of everything (poll the streams,
answer the inbox (sealed notes, and ratings of notes), reload the wiki settings, close due markets,
post bought notes, rescore ratings when due, edit the comments of notes readers hid); the loop only
repeats ticks with a pause. Tests drive ticks directly.

Each step of a tick is guarded on its own: a Reddit outage, a rate limit or a bug in one step is
logged and the others still run; all progress is in the database, so nothing is lost.

SIGTERM (and Ctrl-C) ask the bot to stop: the step in hand is finished (a note being posted is
posted and recorded; the rest wait), the stop is logged, and the process exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import praw
import prawcore
from sqlite_utils import Database

from notebazaar.bot.reddit.client import RedditSetupError, bot_username, connect
from notebazaar.bot.reddit.delivery import SURFACE, Delivery
from notebazaar.bot.reddit.inbox import Inbox
from notebazaar.bot.reddit.poststate import RedditPostCheck
from notebazaar.bot.reddit.ratings import take_down_hidden
from notebazaar.bot.reddit.replies import Replies
from notebazaar.bot.reddit.watcher import Watcher
from notebazaar.bot.reddit.wikisync import WikiSync
from notebazaar.pipeline.backoff import Backoff
from notebazaar.pipeline.bridging import ScoringSchedule
from notebazaar.pipeline.community import account_for_identity, get_community, grant
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.errors import NotFound
from notebazaar.pipeline.judge import Judge
from notebazaar.pipeline.settlement import close_due

log = logging.getLogger(__name__)

MAX_RATE_LIMIT_PAUSE = 600.0
STOP_POLL_SECONDS = 0.2


@dataclass
class TickReport:
    """What one tick did, by step (counts only: no content)."""

    new_items: int = 0
    messages: int = 0
    wiki_applied: list[str] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    delivered: int = 0
    hidden: int = 0  # comments of notes readers hid, edited
    errors: list[str] = field(default_factory=list)
    retry_after: float | None = None


def map_communities(db: Database, settings: Settings) -> dict[str, int]:
    """Subreddit name (as configured) -> community id; refuses an empty or dangling mapping."""
    mapping = settings.reddit.subreddits
    if not mapping:
        raise RedditSetupError(
            "no subreddits configured: add them to config.toml, e.g. [reddit] subreddits ="
            ' { factcheck = "my-community" }'
        )
    result = {}
    for name, slug in mapping.items():
        try:
            result[name.removeprefix("r/")] = get_community(db, slug).id
        except NotFound:
            raise RedditSetupError(
                f"r/{name} maps to community {slug!r}, which does not exist;"
                f" create it with `notebazaar community create {slug}`"
            ) from None
    return result


class RedditBot:
    def __init__(
        self,
        reddit: praw.Reddit,
        db: Database,
        settings: Settings,
        judge: Judge,
        *,
        wiki_interval_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.judge = judge
        self.recursion = settings.recursion
        self.tick_seconds = settings.reddit.tick_seconds
        self._stopping = False
        self.stop_reason = ""
        communities = map_communities(db, settings)
        self.bot_name = bot_username(reddit)
        self.account_id = account_for_identity(db, "reddit", self.bot_name.lower(), self.bot_name)
        for community_id in communities.values():
            grant(db, self.account_id, community_id, "moderator")  # it applies the moderators' wiki page
        common: dict[str, Any] = {"settings": settings.reddit, "bot_name": self.bot_name, "clock": clock}
        self.watchers = [
            Watcher(reddit, db, communities, kind, **common) for kind in ("submissions", "comments")
        ]
        backoff = Backoff.from_settings(settings.delivery)
        lifecycle: dict[str, Any] = {"backoff": backoff, "clock": clock, "stopping": lambda: self._stopping}
        replies = Replies(reddit, db, **lifecycle)
        self.inbox = Inbox(reddit, db, communities, limits=settings.limits, replies=replies)
        self.wiki = WikiSync(
            reddit,
            db,
            communities,
            page=settings.reddit.wiki_page,
            actor_id=self.account_id,
            docs_url=settings.reddit.docs_url,
            interval_seconds=wiki_interval_seconds,
            clock=clock,
        )
        self.post_check = RedditPostCheck(reddit)
        self.delivery = Delivery(reddit, db, bot_name=self.bot_name, **lifecycle)
        self.reddit = reddit
        self.scoring = ScoringSchedule(settings.bridging, clock=clock)

    def stop(self, reason: str = "asked to stop") -> None:
        """Ask the loop to stop after the step in hand. Called from a signal handler, so it only sets
        a flag: no I/O, no lock (a handler that logs or takes a lock can deadlock the thread)."""
        self.stop_reason = reason
        self._stopping = True

    @property
    def stopping(self) -> bool:
        return self._stopping

    def _pause(self, seconds: float) -> None:
        """Sleep between ticks in short slices, so a stop request is noticed within a fraction of a second."""
        deadline = time.monotonic() + seconds
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(STOP_POLL_SECONDS, left))

    def tick(self) -> TickReport:
        report = TickReport()
        steps: list[tuple[str, Callable[[], None]]] = [
            *((f"watch {w.kind}", lambda w=w: _add(report, "new_items", w.poll())) for w in self.watchers),
            ("inbox", lambda: _add(report, "messages", self.inbox.process())),
            ("wiki", lambda: setattr(report, "wiki_applied", self.wiki.sync())),
            (
                "close",
                lambda: setattr(
                    report,
                    "closed",
                    close_due(  # only Reddit's markets: the post check answers for Reddit posts alone
                        self.db,
                        self.judge,
                        recursion_settings=self.recursion,
                        post_check=self.post_check,
                        platforms=(SURFACE,),
                    ),
                ),
            ),
            ("deliver", lambda: _add(report, "delivered", self.delivery.deliver())),
            ("score", lambda: self.scoring.run_if_due(self.db)),
            ("hide", lambda: _add(report, "hidden", take_down_hidden(self.reddit, self.db))),
        ]
        for name, step in steps:
            if self.stopping:
                break
            try:
                step()
            except prawcore.exceptions.TooManyRequests as exc:
                report.errors.append(f"{name}: rate limited")
                report.retry_after = max(report.retry_after or 0.0, float(exc.retry_after or 60))
                log.warning("reddit %s: rate limited; waiting %.0fs", name, report.retry_after)
            except Exception as exc:  # one step's failure must not stop the others
                report.errors.append(f"{name}: {type(exc).__name__}")
                log.exception("reddit %s failed; will retry next tick", name)
        return report

    def run(self, *, tick_seconds: float | None = None, max_ticks: int | None = None) -> None:
        """Tick until stopped (or ``max_ticks``), pausing between ticks (longer after a rate limit)."""
        pause = self.tick_seconds if tick_seconds is None else tick_seconds
        ticks = 0
        while (max_ticks is None or ticks < max_ticks) and not self.stopping:
            report = self.tick()
            ticks += 1
            if report.new_items or report.messages or report.closed or report.delivered:
                log.info(
                    "reddit tick: %s new items, %s messages, %s closed, %s delivered",
                    report.new_items,
                    report.messages,
                    len(report.closed),
                    report.delivered,
                )
            self._pause(max(pause, min(report.retry_after or 0.0, MAX_RATE_LIMIT_PAUSE)))
        if self.stopping:
            log.info("reddit bot stopped (%s): the step in hand was finished", self.stop_reason)


def _add(report: TickReport, name: str, value: int) -> None:
    setattr(report, name, getattr(report, name) + value)


def run_reddit(db_path: Path, settings: Settings, **praw_kwargs: Any) -> None:
    """``notebazaar reddit``: connect, check the setup, then tick until interrupted."""
    from notebazaar.pipeline.judge.factory import make_judge

    db = open_db(db_path)
    try:
        map_communities(db, settings)  # before any network call: a config mistake is the likelier one
        try:
            judge = make_judge(settings, db)
        except ValueError as exc:
            raise RedditSetupError(f"cannot build the judge: {exc}") from None
        bot = RedditBot(connect(settings, **praw_kwargs), db, settings, judge)
        log.info("reddit bot u/%s watching %s", bot.bot_name, ", ".join(settings.reddit.subreddits))
        with _stop_on_signals(bot):
            bot.run()
    finally:
        db.close()


@contextlib.contextmanager
def _stop_on_signals(bot: RedditBot) -> Iterator[None]:
    """SIGTERM and SIGINT stop the bot after the step in hand; the old handlers come back after."""
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, lambda num, frame: bot.stop(signal.Signals(num).name))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
