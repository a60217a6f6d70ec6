"""What Reddit says about a post before its market settles (the pipeline's post check).

A submission or comment that was deleted or removed, is locked or archived (Reddit takes no more
replies), sits under such a submission, or is in a subreddit that banned the bot cannot show a
note: its market is cancelled with bids and budget returned (:mod:`notebazaar.pipeline.poststate`).
When Reddit cannot be asked (an outage, a rate limit) the market waits for the next pass. Posts of
other platforms are not this adapter's to judge.
"""

from __future__ import annotations

from typing import Any

import praw

from notebazaar.bot.reddit.failures import classify
from notebazaar.pipeline.poststate import PostState

_GONE = {"[deleted]": "deleted", "[removed]": "removed"}


def _problem(item: Any) -> str | None:
    """Why Reddit takes no reply under ``item`` (read from its listing data, no extra request)."""
    data = vars(item)
    text = data.get("body") if isinstance(item, praw.models.Comment) else data.get("selftext")
    if text in _GONE:
        return f"{item.fullname} was {_GONE[text]}"
    if data.get("removed_by_category"):
        return f"{item.fullname} was removed ({data['removed_by_category']})"
    if data.get("locked"):
        return f"{item.fullname} is locked"
    if data.get("archived"):
        return f"{item.fullname} is archived"
    return None


class RedditPostCheck:
    def __init__(self, reddit: praw.Reddit) -> None:
        self.reddit = reddit

    def __call__(self, post: dict[str, Any]) -> PostState:
        if post["platform"] != "reddit":
            return PostState.open()
        try:
            return self._check(str(post["external_id"]))
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            return PostState.after_failure(failure.transient, f"reddit: {failure.reason}")

    def _check(self, fullname: str) -> PostState:
        found = list(self.reddit.info(fullnames=[fullname]))
        if not found:
            return PostState.gone(f"reddit has no {fullname} any more")
        item = found[0]
        problem = _problem(item)
        link = vars(item).get("link_id")
        if problem is None and isinstance(item, praw.models.Comment) and link:
            parents = list(self.reddit.info(fullnames=[str(link)]))
            problem = _problem(parents[0]) if parents else f"its submission {link} is gone"
        if problem is not None:
            return PostState.gone(f"reddit: {problem}")
        subreddit = item.subreddit
        if getattr(subreddit, "user_is_banned", False):
            return PostState.gone(f"reddit: the bot is banned from r/{subreddit}")
        return PostState.open()
