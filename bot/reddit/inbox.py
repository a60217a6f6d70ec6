"""Sealed notes by private message: read the inbox, oldest first, submit offers, answer with receipts.

Processing is idempotent. An accepted offer, the record of the message it came from
(``bot_state`` key ``msg:<fullname>``) and the queued answer carrying the receipt and its salt
(:mod:`notebazaar.bot.reddit.replies`) are written in one transaction, so a restart never submits
the same message twice and never loses the salt: the answer is sent from the queue until Reddit
takes it. A refused message changes nothing but its record and its queued answer. The note text is
never logged.
"""

from __future__ import annotations

import logging
from typing import Any

import praw
import prawcore
from praw.exceptions import RedditAPIException
from sqlite_utils import Database

from notebazaar.bot.reddit import messages
from notebazaar.bot.reddit.client import TRANSIENT
from notebazaar.bot.reddit.ratings import RatingReplies, rate_as
from notebazaar.bot.reddit.replies import Replies
from notebazaar.bot.reddit.state import get_state, set_state
from notebazaar.bot.reddit.watcher import post_text
from notebazaar.pipeline import ledger
from notebazaar.pipeline.community import account_for_identity, add_post
from notebazaar.pipeline.config import LimitSettings
from notebazaar.pipeline.db import write
from notebazaar.pipeline.errors import NotebazaarError, NotFound
from notebazaar.pipeline.market import get_market, open_market, submit_offer, withdraw_offer

log = logging.getLogger(__name__)
MAX_UNREAD = 1000  # Reddit lists at most this many


class Inbox:
    def __init__(
        self,
        reddit: praw.Reddit,
        db: Database,
        communities: dict[str, int],
        *,
        limits: LimitSettings,
        replies: Replies | None = None,
    ) -> None:
        self.reddit = reddit
        self.db = db
        self.communities = {name.lower(): cid for name, cid in communities.items()}
        self.limits = limits
        self.replies = replies or Replies(reddit, db)
        self.ratings = RatingReplies(db, self.replies)

    def process(self, limit: int = MAX_UNREAD) -> int:
        """Send the answers still queued, then handle the unread private messages, oldest first;
        returns how many messages were handled.

        Stops early on a rate limit or server error (the rest stay unread and come back next tick).
        """
        self.replies.send_due()
        unread = sorted(
            self.reddit.inbox.unread(limit=limit),
            key=lambda item: (float(getattr(item, "created_utc", 0.0) or 0.0), item.fullname),
        )
        handled = 0
        for item in unread:
            try:
                if isinstance(item, praw.models.Comment):
                    handled += self.ratings.handle(item)  # a reply to a note comment: a rating
                    item.mark_read()
                    continue
                if (
                    not isinstance(item, praw.models.Message)
                    or isinstance(item, praw.models.SubredditMessage)
                    or item.author is None
                ):
                    item.mark_read()  # comment replies, mentions, modmail, messages from Reddit itself
                    continue
                self._process_message(item)
            except prawcore.exceptions.TooManyRequests:
                raise  # the runner honours Reddit's wait (what this message did is recorded already)
            except TRANSIENT as exc:
                log.warning("reddit inbox: %s on %s; will retry", type(exc).__name__, item.fullname)
                break
            handled += 1
        return handled

    def _process_message(self, message: Any) -> None:
        key = f"msg:{message.fullname}"
        record = get_state(self.db, key)
        if record is None:
            self._run_command(message, key)
        elif not record.get("replied") and not record.get("queued"):
            self._queue_late_answer(message.fullname, key, record)  # recorded by an older version
        message.mark_read()
        self.replies.send(message.fullname)  # at once if it can; else it stays queued

    def _run_command(self, message: Any, key: str) -> None:
        """Carry out a message's command; its record and its answer are written together."""
        author = str(message.author)
        fullname = message.fullname
        try:
            command = messages.parse_command(message.subject or "", message.body or "")
            informer = account_for_identity(self.db, "reddit", author.lower(), author)
            if isinstance(command, messages.NoteCommand):
                post = self._post_for(command.target)  # may ask Reddit: outside the transaction
                with write(self.db):  # a refused offer records no post and opens no market
                    receipt = self._submit(command, post, informer)
                    set_state(self.db, key, {"offer_id": receipt.offer_id, "queued": True})
                    self.replies.queue(fullname, messages.receipt_reply(receipt, command.target))
                log.info("reddit inbox: %s became offer %s", fullname, receipt.offer_id)
                return
            if isinstance(command, messages.WithdrawCommand):
                with write(self.db):
                    withdraw_offer(self.db, command.offer_id, informer)
                    set_state(self.db, key, {"withdrawn": command.offer_id, "queued": True})
                    self.replies.queue(fullname, messages.withdrawn_reply(command.offer_id))
                return
            if isinstance(command, messages.RateCommand):
                with write(self.db):  # the rating, the record of this message and its answer: one transaction
                    reply = rate_as(self.db, author, command.reveal_id, command.level)
                    set_state(self.db, key, {"rated": command.reveal_id, "queued": True})
                    self.replies.queue(fullname, reply)
                return
            balance = ledger.balance(self.db, ledger.wallet(informer))
            self._answer(key, fullname, {"balance": True}, f"Your wallet holds {balance} credits.")
        except NotebazaarError as exc:
            log.info("reddit inbox: %s refused (%s)", fullname, exc.code)
            self._answer(key, fullname, {"refused": exc.code}, messages.error_reply(str(exc)))
        except TRANSIENT:
            raise
        except (prawcore.exceptions.ResponseException, RedditAPIException) as exc:
            log.info("reddit inbox: %s refused (reddit %s)", fullname, type(exc).__name__)
            problem = f"Reddit would not show the bot the post you named ({type(exc).__name__})."
            self._answer(key, fullname, {"refused": "reddit_error"}, messages.error_reply(problem))

    def _answer(self, key: str, fullname: str, record: dict[str, Any], text: str) -> None:
        with write(self.db):
            set_state(self.db, key, record | {"queued": True})
            self.replies.queue(fullname, text)

    def _queue_late_answer(self, fullname: str, key: str, record: dict[str, Any]) -> None:
        """A message an older version accepted but did not answer: its salt was never stored."""
        if "withdrawn" in record:
            text = messages.withdrawn_reply(int(record["withdrawn"]))
        else:
            offer = self.db.execute(
                "SELECT commitment FROM offers WHERE id = ?", [record.get("offer_id")]
            ).fetchone()
            if offer is None:
                set_state(self.db, key, record | {"replied": True})
                return
            text = messages.late_receipt_reply(int(record["offer_id"]), offer[0])
        self._answer(key, fullname, record, text)

    def _submit(self, command: messages.NoteCommand, post: int | dict[str, Any] | None, informer: int) -> Any:
        if post is not None:
            post_id = post if isinstance(post, int) else add_post(self.db, **post)
            market_id = open_market(self.db, post_id)
        else:
            market_id = int(command.target.split(":", 1)[1])
            if int(get_market(self.db, market_id)["community_id"]) not in self.communities.values():
                raise NotFound(f"market {market_id} is not in a community this bot serves")
        return submit_offer(
            self.db,
            market_id,
            informer,
            classification=command.classification,
            text=command.text,
            sources=list(command.sources),
            bid=command.bid,
            price=command.price,
            teaser=command.teaser,
            limits=self.limits,
        )

    def _post_for(self, target: str) -> int | dict[str, Any] | None:
        """The post a note names: its id if known, else what Reddit says about it (recorded only
        with an accepted offer); None for a note into a market by id."""
        if target.startswith("market:"):
            return None
        fullname = target
        row = self.db.execute(
            "SELECT id FROM posts WHERE platform = 'reddit' AND external_id = ?", [fullname]
        ).fetchone()
        if row:
            return int(row[0])
        found = list(self.reddit.info(fullnames=[fullname]))
        if not found:
            raise NotFound(f"Reddit has no post or comment {fullname}")
        item = found[0]
        community_id = self.communities.get(str(item.subreddit).lower())
        if community_id is None:
            raise NotFound(f"{fullname} is in r/{item.subreddit}, which this bot does not serve")
        text = post_text(item)
        if not text:
            raise NotFound(f"{fullname} has been deleted")
        return {
            "community_id": community_id,
            "text": text,
            "platform": "reddit",
            "external_id": fullname,
            "url": self.reddit.config.reddit_url + item.permalink,
            "author": str(item.author) if item.author is not None else None,
            "now": float(item.created_utc),
        }
