"""Answers to private messages (receipts, refusals, balances), delivered at least once.

A receipt carries the offer's salt, the informer's only proof of authorship, and the salt is not
stored with the offer. So the answer is queued in ``bot_state`` (key ``reply:<message fullname>``)
in the same transaction that accepts the note, and sent from the queue: a reply that fails (Reddit
down, a rate limit, a crash) is sent again later by the same backoff as notes, with its salt. Once
Reddit accepts it the entry is deleted (``secure_delete`` overwrites it, and the WAL is folded into
the database), so the salt is not kept in plaintext after it was delivered. A reply Reddit refuses
for good (the informer blocks the bot) stays queued, marked undeliverable, rather than lose the salt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import praw
from praw.const import API_PATH
from sqlite_utils import Database

from notebazaar.bot.reddit.failures import classify
from notebazaar.bot.reddit.state import delete_state, get_state, set_state, states_with_prefix
from notebazaar.pipeline.backoff import Backoff
from notebazaar.pipeline.db import checkpoint

log = logging.getLogger(__name__)
PREFIX = "reply:"


class Replies:
    def __init__(
        self,
        reddit: praw.Reddit,
        db: Database,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.reddit = reddit
        self.db = db
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.stopping = stopping
        # Until when Reddit asked the bot to wait (a rate limit, an outage): every answer waits,
        # not only the one that met it, or each new message would spend a request on a refusal.
        self.hold_until = 0.0

    def queue(self, message_fullname: str, body: str) -> None:
        """Queue the answer to a message (joins the caller's transaction)."""
        set_state(self.db, PREFIX + message_fullname, {"body": body, "attempts": 0, "next_at": 0.0})

    def queued(self, message_fullname: str) -> bool:
        return get_state(self.db, PREFIX + message_fullname) is not None

    def send_due(self) -> int:
        """Send every queued answer that is due; returns how many Reddit accepted."""
        sent = 0
        now = self.clock()
        if now < self.hold_until:
            return 0
        for key, entry in states_with_prefix(self.db, PREFIX):
            if entry.get("undeliverable") or float(entry.get("next_at", 0.0)) > now:
                continue
            if self.stopping():
                break
            outcome = self._send(key.removeprefix(PREFIX), entry)
            if outcome is None:
                break  # Reddit is down or limits the bot: the others wait too
            sent += int(outcome)
        return sent

    def send(self, message_fullname: str) -> bool:
        """Send one queued answer now if it is due; True once Reddit accepted it."""
        entry = get_state(self.db, PREFIX + message_fullname)
        now = self.clock()
        if (
            entry is None
            or entry.get("undeliverable")
            or max(float(entry.get("next_at", 0.0)), self.hold_until) > now
        ):
            return False
        return bool(self._send(message_fullname, entry))

    def _send(self, fullname: str, entry: dict[str, Any]) -> bool | None:
        """True: delivered; False: refused for good; None: a transient failure, retry later."""
        key = PREFIX + fullname
        try:
            self.reddit.post(API_PATH["comment"], data={"text": entry["body"], "thing_id": fullname})
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            now = self.clock()
            attempts = int(entry.get("attempts", 0)) + 1
            since = float(entry.get("failing_since") or now)
            entry |= {"attempts": attempts, "failing_since": since, "error": failure.reason}
            if not failure.transient or self.backoff.gives_up(since, now):
                entry["undeliverable"] = True
                log.warning("reddit reply to %s cannot be delivered: %s; kept", fullname, failure.reason)
                set_state(self.db, key, entry)
                return False
            entry["next_at"] = now + self.backoff.delay(attempts, at_least=failure.retry_after)
            self.hold_until = max(self.hold_until, float(entry["next_at"]))
            set_state(self.db, key, entry)
            log.warning(
                "reddit reply to %s: %s; next attempt in %.0fs",
                fullname,
                failure.reason,
                entry["next_at"] - now,
            )
            return None
        delete_state(self.db, key)
        checkpoint(self.db)
        log.info("reddit reply to %s sent", fullname)
        return True
