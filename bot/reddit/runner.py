"""The Reddit bot's loop. One :meth:`RedditBot.tick` does a round of everything (poll the streams,
answer the inbox (sealed notes, and ratings of notes), reload the wiki settings, close due markets,
post bought notes, rescore ratings when due, edit the comments of notes readers hid); the loop only
repeats ticks with a pause. Tests drive ticks directly.

Each step of a tick is guarded on its own: a Reddit outage, a rate limit or a bug in one step is
logged and the others still run; all progress is in the database, so nothing is lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import praw
import prawcore
from sqlite_utils import Database

from notebazaar.bot.reddit.client import RedditSetupError, bot_username, connect
from notebazaar.bot.reddit.delivery import Delivery
from notebazaar.bot.reddit.inbox import Inbox
from notebazaar.bot.reddit.ratings import take_down_hidden
from notebazaar.bot.reddit.watcher import Watcher
from notebazaar.bot.reddit.wikisync import WikiSync
from notebazaar.pipeline.bridging import ScoringSchedule
from notebazaar.pipeline.community import account_for_identity, get_community, grant
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.errors import NotFound
from notebazaar.pipeline.judge import Judge
from notebazaar.pipeline.settlement import close_due

log = logging.getLogger(__name__)

TICK_SECONDS = 10.0


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
        communities = map_communities(db, settings)
        self.bot_name = bot_username(reddit)
        self.account_id = account_for_identity(db, "reddit", self.bot_name.lower(), self.bot_name)
        for community_id in communities.values():
            grant(db, self.account_id, community_id, "moderator")  # it applies the moderators' wiki page
        common: dict[str, Any] = {"settings": settings.reddit, "bot_name": self.bot_name, "clock": clock}
        self.watchers = [
            Watcher(reddit, db, communities, kind, **common) for kind in ("submissions", "comments")
        ]
        self.inbox = Inbox(reddit, db, communities, limits=settings.limits)
        self.wiki = WikiSync(
            reddit,
            db,
            communities,
            page=settings.reddit.wiki_page,
            actor_id=self.account_id,
            interval_seconds=wiki_interval_seconds,
            clock=clock,
        )
        self.delivery = Delivery(reddit, db, bot_name=self.bot_name, clock=clock)
        self.reddit = reddit
        self.scoring = ScoringSchedule(settings.bridging, clock=clock)

    def tick(self) -> TickReport:
        report = TickReport()
        steps: list[tuple[str, Callable[[], None]]] = [
            *((f"watch {w.kind}", lambda w=w: _add(report, "new_items", w.poll())) for w in self.watchers),
            ("inbox", lambda: _add(report, "messages", self.inbox.process())),
            ("wiki", lambda: setattr(report, "wiki_applied", self.wiki.sync())),
            (
                "close",
                lambda: setattr(
                    report, "closed", close_due(self.db, self.judge, recursion_settings=self.recursion)
                ),
            ),
            ("deliver", lambda: _add(report, "delivered", self.delivery.deliver())),
            ("score", lambda: self.scoring.run_if_due(self.db)),
            ("hide", lambda: _add(report, "hidden", take_down_hidden(self.reddit, self.db))),
        ]
        for name, step in steps:
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

    def run(self, *, tick_seconds: float = TICK_SECONDS, max_ticks: int | None = None) -> None:
        ticks = 0
        while max_ticks is None or ticks < max_ticks:
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
            time.sleep(max(tick_seconds, min(report.retry_after or 0.0, 600.0)))


def _add(report: TickReport, name: str, value: int) -> None:
    setattr(report, name, getattr(report, name) + value)


def run_reddit(db_path: Path, settings: Settings, **praw_kwargs: Any) -> None:
    """``notebazaar reddit``: connect, check the setup, then tick until interrupted."""
    from notebazaar.pipeline.judge.factory import make_judge

    # prawcore logs request bodies at DEBUG; a receipt's salt is in one, so keep it at INFO.
    logging.getLogger("prawcore").setLevel(logging.INFO)
    db = open_db(db_path)
    try:
        map_communities(db, settings)  # before any network call: a config mistake is the likelier one
        try:
            judge = make_judge(settings, db)
        except ValueError as exc:
            raise RedditSetupError(f"cannot build the judge: {exc}") from None
        bot = RedditBot(connect(settings, **praw_kwargs), db, settings, judge)
        log.info("reddit bot u/%s watching %s", bot.bot_name, ", ".join(settings.reddit.subreddits))
        try:
            bot.run()
        except KeyboardInterrupt:
            log.info("reddit bot stopped")
    finally:
        db.close()
