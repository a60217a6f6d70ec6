"""Sealed notes by private message: read the inbox, submit offers, answer with receipts.

Processing is idempotent. An accepted offer and the record of the message it came from
(``bot_state`` key ``msg:<fullname>``) are written in one transaction, so a restart can never
submit the same message twice; the reply and "mark read" are retried until done. The receipt's
salt exists only in the first reply (it is never stored), so a reply cut off by a crash is re-sent
without it. A refused message changes nothing and is simply processed again after a crash.
The note text is never logged.
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
from notebazaar.bot.reddit.state import get_state, set_state
from notebazaar.bot.reddit.watcher import post_text
from notebazaar.pipeline import ledger
from notebazaar.pipeline.community import account_for_identity, add_post
from notebazaar.pipeline.config import LimitSettings
from notebazaar.pipeline.db import write
from notebazaar.pipeline.errors import NotebazaarError, NotFound
from notebazaar.pipeline.market import get_market, open_market, submit_offer, withdraw_offer

log = logging.getLogger(__name__)


class Inbox:
    def __init__(
        self, reddit: praw.Reddit, db: Database, communities: dict[str, int], *, limits: LimitSettings
    ) -> None:
        self.reddit = reddit
        self.db = db
        self.communities = {name.lower(): cid for name, cid in communities.items()}
        self.limits = limits
        self.ratings = RatingReplies(db)

    def process(self, limit: int = 100) -> int:
        """Handle the unread private messages; returns how many were handled.

        Stops early on a rate limit or server error (they stay unread and come back next tick).
        """
        handled = 0
        for item in self.reddit.inbox.unread(limit=limit):
            if isinstance(item, praw.models.Comment):
                try:
                    handled += self.ratings.handle(item)  # a reply to a note comment: a rating
                except TRANSIENT as exc:
                    log.warning("reddit inbox: %s on %s; will retry", type(exc).__name__, item.fullname)
                    break
                item.mark_read()
                continue
            if (
                not isinstance(item, praw.models.Message)
                or isinstance(item, praw.models.SubredditMessage)
                or item.author is None
            ):
                item.mark_read()  # comment replies, mentions, modmail, messages from Reddit itself
                continue
            try:
                self._process_message(item)
            except TRANSIENT as exc:
                log.warning("reddit inbox: %s on %s; will retry", type(exc).__name__, item.fullname)
                break
            handled += 1
        return handled

    def _process_message(self, message: Any) -> None:
        key = f"msg:{message.fullname}"
        record = get_state(self.db, key)
        if record is None:
            reply, record = self._run_command(message, key)
        elif not record.get("replied") and "reply" in record:
            reply = record["reply"]
        elif not record.get("replied") and "withdrawn" in record:
            reply = f"Offer {record['withdrawn']} is withdrawn: the bid is refunded and the note shredded."
        elif not record.get("replied"):
            offer = self.db.execute(
                "SELECT commitment FROM offers WHERE id = ?", [record.get("offer_id")]
            ).fetchone()
            reply = messages.late_receipt_reply(record["offer_id"], offer[0]) if offer else None
        else:
            reply = None
        if reply is not None:
            self._reply(message, reply)
            set_state(self.db, key, record | {"replied": True})
        message.mark_read()

    def _run_command(self, message: Any, key: str) -> tuple[str, dict[str, Any]]:
        """Carry out a message's command; the reply to send and the record to keep."""
        author = str(message.author)
        try:
            command = messages.parse_command(message.subject or "", message.body or "")
            informer = account_for_identity(self.db, "reddit", author.lower(), author)
            if isinstance(command, messages.NoteCommand):
                with write(self.db):
                    receipt = self._submit(command, informer)
                    record = {"offer_id": receipt.offer_id, "replied": False}
                    set_state(self.db, key, record)
                log.info("reddit inbox: %s became offer %s", message.fullname, receipt.offer_id)
                return messages.receipt_reply(receipt, command.target), record
            if isinstance(command, messages.WithdrawCommand):
                with write(self.db):
                    withdraw_offer(self.db, command.offer_id, informer)
                    record = {"withdrawn": command.offer_id, "replied": False}
                    set_state(self.db, key, record)
                done = f"Offer {command.offer_id} is withdrawn: the bid is refunded and the note shredded."
                return done, record
            if isinstance(command, messages.RateCommand):
                with write(self.db):  # the rating and the record of this message: one transaction
                    reply = rate_as(self.db, author, command.reveal_id, command.level)
                    record = {"rated": command.reveal_id, "replied": False, "reply": reply}
                    set_state(self.db, key, record)
                return reply, record
            balance = ledger.balance(self.db, ledger.wallet(informer))
            return f"Your wallet holds {balance} credits.", {"balance": True, "replied": False}
        except NotebazaarError as exc:
            log.info("reddit inbox: %s refused (%s)", message.fullname, exc.code)
            return messages.error_reply(str(exc)), {"refused": exc.code, "replied": False}
        except TRANSIENT:
            raise
        except (prawcore.exceptions.ResponseException, RedditAPIException) as exc:
            log.info("reddit inbox: %s refused (reddit %s)", message.fullname, type(exc).__name__)
            problem = f"Reddit would not show the bot the post you named ({type(exc).__name__})."
            return messages.error_reply(problem), {"refused": "reddit_error", "replied": False}

    def _submit(self, command: messages.NoteCommand, informer: int) -> Any:
        if command.target.startswith("market:"):
            market_id = int(command.target.split(":", 1)[1])
            if int(get_market(self.db, market_id)["community_id"]) not in self.communities.values():
                raise NotFound(f"market {market_id} is not in a community this bot serves")
        else:
            market_id = open_market(self.db, self._post_for(command.target))
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

    def _post_for(self, fullname: str) -> int:
        """The post behind a fullname: known already, or fetched from Reddit and recorded."""
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
        return add_post(
            self.db,
            community_id,
            text,
            platform="reddit",
            external_id=fullname,
            url=self.reddit.config.reddit_url + item.permalink,
            author=str(item.author) if item.author is not None else None,
            now=float(item.created_utc),
        )

    def _reply(self, message: Any, text: str) -> None:
        """Answer a message. A user who blocks the bot, or a suspended account, gets no answer."""
        try:
            message.reply(text)
        except (prawcore.exceptions.Forbidden, RedditAPIException) as exc:
            log.warning("reddit inbox: cannot answer %s (%s)", message.fullname, type(exc).__name__)
