"""Reloading each subreddit's settings page when its revision changes.

Only a page revised by a moderator of the subreddit is applied (wiki pages can be open to other
editors). A page that cannot be applied is reported to the subreddit's moderators by modmail and
remembered by revision, so one bad edit is reported once; the last good settings stay in force.
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

from notebazaar.bot.reddit.state import get_state, set_state
from notebazaar.bot.reddit.wiki import WikiConfigError, apply_wiki_config, parse_wiki_config

log = logging.getLogger(__name__)


class WikiSync:
    def __init__(
        self,
        reddit: praw.Reddit,
        db: Database,
        communities: dict[str, int],
        *,
        page: str,
        actor_id: int,
        docs_url: str = "",
        interval_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reddit = reddit
        self.db = db
        self.communities = communities
        self.page = page
        self.actor_id = actor_id
        self.docs_url = docs_url
        self.interval = interval_seconds
        self.clock = clock
        self._checked_at = float("-inf")

    def sync(self, *, force: bool = False) -> list[str]:
        """Check every page if the interval has passed; returns the subreddits whose page was applied."""
        if not force and self.clock() - self._checked_at < self.interval:
            return []
        self._checked_at = self.clock()
        applied = []
        for name, community_id in sorted(self.communities.items()):
            try:
                if self._sync_one(name, community_id):
                    applied.append(name)
            except (prawcore.exceptions.TooManyRequests, prawcore.exceptions.RequestException):
                raise
            except (prawcore.exceptions.ResponseException, RedditAPIException) as exc:
                # NotFound: no page yet; Forbidden: the bot may not read it. Neither is fatal.
                log.info("reddit wiki r/%s/%s: not read (%s)", name, self.page, type(exc).__name__)
        return applied

    def _sync_one(self, name: str, community_id: int) -> bool:
        subreddit = self.reddit.subreddit(name)
        page = subreddit.wiki[self.page]
        revision = str(page.revision_id)
        key = f"wiki:{name.lower()}"
        if (get_state(self.db, key) or {}).get("revision") == revision:
            return False
        editor = str(page.revision_by) if page.revision_by is not None else None
        try:
            if editor is None or not self._moderates(subreddit, editor):
                raise WikiConfigError(f"the revision by u/{editor} is not by a moderator of r/{name}")
            config = parse_wiki_config(page.content_md)
            changes = apply_wiki_config(self.db, community_id, config, actor_id=self.actor_id)
        except WikiConfigError as exc:
            log.warning("reddit wiki r/%s/%s revision %s refused: %s", name, self.page, revision, exc)
            self._report(subreddit, revision, exc.problems)
            set_state(self.db, key, {"revision": revision, "ok": False, "error": str(exc)})
            return False
        set_state(self.db, key, {"revision": revision, "ok": True})
        log.info("reddit wiki r/%s/%s revision %s applied: %s", name, self.page, revision, changes or "-")
        return True

    def _moderates(self, subreddit: Any, editor: str) -> bool:
        return any(str(m).lower() == editor.lower() for m in subreddit.moderator(redditor=editor))

    def _report(self, subreddit: Any, revision: str, problems: list[str]) -> None:
        """Tell the subreddit's moderators why the page was not applied: one line per problem."""
        listing = "\n".join(f"* {problem}" for problem in problems)
        text = (
            f"The notebazaar settings page (wiki/{self.page}, revision {revision}) was not applied;"
            f" the previous settings stay in force.\n\nWhat is wrong:\n\n{listing}\n\n"
            "Every key is optional: attention_slots, reserve, window_seconds, price_of_information,"
            ' budget_per_market (whole numbers), auction ("gsp" or "first_price") and prompt_version.'
        )
        if self.docs_url:
            text += f"\n\nThe format: {self.docs_url}"
        try:
            subreddit.message(subject="notebazaar: settings page not applied", message=text)
        except (prawcore.exceptions.ResponseException, RedditAPIException) as exc:
            log.warning("reddit wiki r/%s: cannot report to moderators (%s)", subreddit, type(exc).__name__)
