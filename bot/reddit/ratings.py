"""Rating notes on Reddit, and editing the bot's comment when readers hide a note.

Two ways to rate, both documented in docs/reddit.md:

- **Reply to the bot's note comment** with a keyword as its first words: ``helpful``,
  ``somewhat helpful`` or ``not helpful`` (optionally after ``!rate``); anything after it is
  ignored. A reply without a keyword is left alone (it is a conversation, not a rating).
- **A private message** with the subject ``rate <note number>`` and the level as the body (the
  number is in the note comment's footer): see :mod:`notebazaar.bot.reddit.messages`.

The Reddit username is mapped to its account as for every other message. Each reply is handled
once: the rating (or the refusal) and the record of the reply (``bot_state`` key
``rating:<fullname>``) are written in one transaction, and the acknowledgement is sent once, after
a restart too.

When the bridging scorer (or a moderator) hides a note, :func:`take_down_hidden` edits the bot's
comment: the note is replaced by the reason it was hidden.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from sqlite_utils import Database

from notebazaar.bot.reddit.failures import classify
from notebazaar.bot.reddit.markdown import escape_markdown
from notebazaar.bot.reddit.replies import Replies
from notebazaar.bot.reddit.state import get_state, set_state
from notebazaar.pipeline import outbox
from notebazaar.pipeline.community import account_for_identity
from notebazaar.pipeline.db import write
from notebazaar.pipeline.errors import NotebazaarError
from notebazaar.pipeline.ratings import rate

log = logging.getLogger(__name__)
SURFACE = "reddit"
# ASCII: case-insensitive matching must not fold look-alikes ("ſomewhat") into a level.
_KEYWORD = re.compile(
    r"^\s*(?:!rate\s+)?(somewhat[\s_-]+helpful|not[\s_-]+helpful|helpful)\b", re.IGNORECASE | re.ASCII
)


def parse_level(text: str) -> str | None:
    """The rating level a reply or message starts with, if any."""
    match = _KEYWORD.match(text or "")
    if not match:
        return None
    words = re.split(r"[\s_-]+", match.group(1).lower())
    return "_".join(words)


def rate_as(db: Database, author: str, reveal_id: int, level: str) -> str:
    """Rate as the Reddit user ``author``; the reply to send (a thank-you or the refusal)."""
    try:
        account = account_for_identity(db, "reddit", author.lower(), author)
        rating = rate(db, reveal_id, account, level, surface=SURFACE)
    except NotebazaarError as exc:
        return f"Your rating was not recorded; nothing was changed.\n\nProblem: {escape_markdown(str(exc))}"
    verb = "recorded" if rating.changed == "new" else "changed"
    return (
        f"Thanks: your rating of note {rating.reveal_id} is {verb} as"
        f" **{rating.level.replace('_', ' ')}**. Notes that readers who usually disagree find helpful"
        " stay shown; notes they find unhelpful are hidden."
    )


class RatingReplies:
    """Comment replies to the bot's note comments, from the inbox. The acknowledgement goes through
    the same queue as every private-message answer (:class:`~notebazaar.bot.reddit.replies.Replies`),
    so a rate limit or an outage delays it instead of losing it."""

    def __init__(self, db: Database, replies: Replies) -> None:
        self.db = db
        self.replies = replies

    def handle(self, comment: Any) -> bool:
        """Rate from one comment reply, acknowledge it once; False if it is not a rating."""
        reveal_id = outbox.reveal_for_message(self.db, SURFACE, str(comment.parent_id))
        level = parse_level(str(comment.body or ""))
        if reveal_id is None or level is None or comment.author is None:
            return False
        key = f"rating:{comment.fullname}"
        record = get_state(self.db, key)
        if record is None:
            with write(self.db):  # the rating, the record of this reply and its answer: one transaction
                reply = rate_as(self.db, str(comment.author), reveal_id, level)
                set_state(self.db, key, {"queued": True})
                self.replies.queue(comment.fullname, reply)
        elif not record.get("replied") and not record.get("queued"):
            with write(self.db):  # recorded by an older version, not answered yet
                set_state(self.db, key, {"queued": True})
                self.replies.queue(comment.fullname, str(record["reply"]))
        self.replies.send(comment.fullname)  # at once if it can; else it stays queued
        log.info("reddit rating %s on note %s handled", comment.fullname, reveal_id)
        return True


def hidden_comment(reveal_id: int, reason: str) -> str:
    return (
        f"**Community note hidden.** Note {reveal_id} is hidden: {escape_markdown(reason)}.\n\n"
        "^(A bought note stays shown unless readers' ratings or a moderator hide it.)"
    )


def take_down_hidden(reddit: Any, db: Database) -> int:
    """Edit the bot's comment for every delivered note hidden since; returns how many."""
    done = 0
    for item in outbox.pending_takedowns(db, SURFACE):
        if not item.external_id.startswith("t1_"):
            outbox.mark_taken_down(db, item.outbox_id, failed=True)
            continue
        try:
            reddit.comment(item.external_id[3:]).edit(body=hidden_comment(item.reveal_id, item.reason))
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            if failure.transient:
                log.warning("reddit: editing hidden note %s: %s; will retry", item.reveal_id, failure.reason)
                break  # Reddit is down or limits the bot: the others wait for the next pass too
            # refused for good (Forbidden, a deleted comment, an archived thread): never hold up the others
            log.warning("reddit: cannot edit hidden note %s (%s); given up", item.reveal_id, failure.reason)
            outbox.mark_taken_down(db, item.outbox_id, failed=True)
            continue
        outbox.mark_taken_down(db, item.outbox_id)
        done += 1
        log.info("reddit: the comment of hidden note %s was edited", item.reveal_id)
    return done
