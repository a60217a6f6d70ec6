"""Posting revealed notes under their Discord messages, exactly once whatever Discord does.

Settlement queues a row in the outbox for each revealed note on a Discord post. Delivery posts each
row that is due (a reply embed, or a message in a thread under the post) and marks it delivered
with the id of the message it sent; a lock keeps two passes in one process from overlapping.

* **Idempotent on Discord's side.** An attempt is recorded before the message is sent. A row that
  was attempted before (the bot may have died between Discord accepting the message and the
  database recording it) is first looked for among the messages sent since the row was queued and
  since its last attempt (by their snowflakes' time, so a busy channel's chatter during the bidding
  window is skipped), by the bot's own author id and the reveal's marker in the embed footer, and
  adopted if found.
* **Transient errors** (Discord's 5xx, a rate limit longer than discord.py waits by itself, the
  network) schedule the row by exponential backoff with jitter (never earlier than Discord's
  ``retry_after``) and hold the other rows until then. The schedule is in the outbox.
* **Permanent errors** (the message or channel was deleted, a missing permission, a payload Discord
  refuses) fail the row at once; moderators see it and can queue it again.
* **Stopping**: between rows the pass checks :attr:`Delivery.stopping` (set when the bot closes):
  the row in hand is finished and recorded, the rest wait for the next start.

Every database call runs off the event loop (:mod:`notebazaar.bot.discord.offloop`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import aiohttp
import discord
from sqlite_utils import Database

from notebazaar.bot.discord import render
from notebazaar.bot.discord.interactions import PLATFORM
from notebazaar.bot.discord.offloop import OffLoop
from notebazaar.bot.discord.ratings import rating_view
from notebazaar.bot.discord.refs import external_id, split_external_id
from notebazaar.bot.discord.sends import MessageSends
from notebazaar.pipeline import outbox
from notebazaar.pipeline.backoff import Backoff
from notebazaar.pipeline.outbox import Failure

log = logging.getLogger(__name__)
THREAD_NAME = "Community notes"
MESSAGES_SEARCHED = 500  # at most, from each start (see posted_copies): five pages of history
CLOCK_SKEW = 300.0  # seconds by which the bot's clock may run ahead of Discord's
NETWORK_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


class ChannelSource(Protocol):
    """What delivery needs from the client (``discord.Client`` satisfies it)."""

    @property
    def user(self) -> discord.ClientUser | None: ...

    def get_channel(self, id: int, /) -> object | None: ...

    async def fetch_channel(self, channel_id: int, /) -> object: ...


def classify(exc: BaseException) -> Failure | None:
    """What a failed Discord call means; None for an exception that is not Discord's (a bug)."""
    if isinstance(exc, discord.RateLimited):
        return Failure(True, "rate limited", exc.retry_after)
    if isinstance(exc, discord.DiscordServerError):
        return Failure(True, f"Discord server error {exc.status}")
    if isinstance(exc, discord.HTTPException):
        if exc.status == 429:
            return Failure(
                True, "rate limited", float(exc.response.headers.get("Retry-After", 0) or 0) or None
            )
        what = {10003: "the channel was deleted", 10008: "the message was deleted"}.get(exc.code, "")
        reason = f"{type(exc).__name__} {exc.status} (code {exc.code}{': ' + what if what else ''})"
        return Failure(False, reason)
    if isinstance(exc, NETWORK_ERRORS):
        return Failure(True, f"network: {type(exc).__name__}")
    if isinstance(exc, ValueError | AttributeError):  # not a channel:message pair, or not a text channel
        return Failure(False, f"not a Discord message in a text channel: {type(exc).__name__}")
    return None


async def channel_of(client: ChannelSource, channel_id: int) -> object:
    return client.get_channel(channel_id) or await client.fetch_channel(channel_id)


async def _existing_thread(client: ChannelSource, message_id: int) -> object | None:
    """The thread started from a message (a message's thread has the message's id), if any."""
    thread = client.get_channel(message_id)
    if thread is None:
        try:
            thread = await client.fetch_channel(message_id)
        except discord.NotFound:
            thread = None
    return thread


async def _thread_under(client: ChannelSource, message: discord.PartialMessage) -> discord.abc.Messageable:
    thread = await _existing_thread(client, message.id)
    if thread is None:
        thread = await message.create_thread(name=THREAD_NAME)
    return thread  # type: ignore[return-value]


async def post_reveal(client: ChannelSource, item: outbox.PendingReveal, reply_mode: str) -> discord.Message:
    channel_id, message_id = split_external_id(item.post_external_id)
    channel = await channel_of(client, channel_id)
    target = channel.get_partial_message(message_id)  # type: ignore[attr-defined]
    embed = render.reveal_embed(item)
    view = rating_view(item.reveal_id)  # readers rate the note right under it
    none = discord.AllowedMentions.none()
    if reply_mode == "thread":
        thread = await _thread_under(client, target)
        return await thread.send(embed=embed, view=view, allowed_mentions=none)
    return await target.reply(embed=embed, view=view, mention_author=False, allowed_mentions=none)  # type: ignore[no-any-return]


def _snowflake(moment: float, *, high: bool = False) -> int:
    return discord.utils.time_snowflake(datetime.fromtimestamp(moment, tz=UTC), high=high)


def _search_from(item: outbox.PendingReveal, post_id: int) -> list[int]:
    """Where to start looking for a message posted for ``item``: the snowflake of the moment the
    row was queued and of its last attempt (less :data:`CLOCK_SKEW`), never before the post itself.

    Every message the bot sent for the row was sent after it was queued, and the one a crash left
    unrecorded was sent at the last attempt, so a busy channel's chatter between the post and the
    note (a whole bidding window) is not searched through."""
    starts = [
        max(post_id, _snowflake(moment - CLOCK_SKEW))
        for moment in (item.queued_at, item.last_attempt_at)
        if moment
    ]
    return sorted(set(starts)) or [post_id]


def _search_until(item: outbox.PendingReveal) -> int | None:
    """The newest snowflake a message for ``item`` can have: its last attempt, plus the skew."""
    last = max(item.queued_at or 0.0, item.last_attempt_at or 0.0)
    return _snowflake(last + CLOCK_SKEW, high=True) if last else None


async def _where_posted(
    client: ChannelSource, item: outbox.PendingReveal, reply_mode: str
) -> discord.abc.Messageable | None:
    """The channel (reply) or the post's thread (thread) a note for ``item`` goes to, if it exists."""
    channel_id, message_id = split_external_id(item.post_external_id)
    if reply_mode == "thread":
        return await _existing_thread(client, message_id)  # type: ignore[return-value]
    return await channel_of(client, channel_id)  # type: ignore[return-value]


async def _scan(
    where: discord.abc.Messageable, start: int, until: int | None, marker: str, me: int
) -> tuple[list[discord.Message], int, bool]:
    """The bot's messages carrying ``marker`` after ``start`` and up to ``until``, oldest first; the
    newest id seen; and whether the scan got to ``until`` (or to the newest message)."""
    found: list[discord.Message] = []
    seen, newest = 0, start
    async for message in where.history(limit=MESSAGES_SEARCHED, after=discord.Object(id=start)):
        if until is not None and message.id > until:
            return found, newest, True
        seen, newest = seen + 1, max(newest, message.id)
        if message.author.id == me and any(
            (embed.footer.text or "").startswith(marker) for embed in message.embeds
        ):
            found.append(message)
    return found, newest, seen < MESSAGES_SEARCHED


async def posted_copies(
    client: ChannelSource, item: outbox.PendingReveal, reply_mode: str, *, since: float | None = None
) -> list[discord.Message]:
    """Every message of the bot's own for this reveal (by the footer's marker), oldest first.

    Scanned forward from the first of :func:`_search_from`'s starts to :func:`_search_until`, up to
    :data:`MESSAGES_SEARCHED` messages; when that many did not reach the end, from the later start
    (the last attempt) again, which is where a crash leaves its unrecorded message. With ``since``
    (an attempt just made), from that moment to the newest message."""
    if client.user is None:
        return []
    where = await _where_posted(client, item, reply_mode)
    if where is None:
        return []
    _, post_id = split_external_id(item.post_external_id)
    marker, me = render.reveal_marker(item.reveal_id), client.user.id
    if since is not None:
        starts, until = [max(post_id, _snowflake(since - CLOCK_SKEW))], None
    else:
        starts, until = _search_from(item, post_id), _search_until(item)
    found, newest, finished = await _scan(where, starts[0], until, marker, me)
    if not finished and starts[-1] > starts[0]:
        more, _, _ = await _scan(where, max(starts[-1], newest), until, marker, me)
        found += more
    return found


async def keep_oldest(item: outbox.PendingReveal, copies: list[discord.Message]) -> discord.Message:
    """The oldest copy of a note; the others are deleted (best effort: a copy Discord will not
    delete now is logged and left)."""
    oldest, *others = sorted(copies, key=lambda m: m.id)
    for copy in others:
        try:
            await copy.delete()
            log.warning(
                "reveal %s (outbox %s): deleted message %s, a second copy (kept %s)",
                item.reveal_id,
                item.outbox_id,
                copy.id,
                oldest.id,
            )
        except (discord.HTTPException, *NETWORK_ERRORS) as exc:
            log.warning(
                "reveal %s (outbox %s): cannot delete message %s, a second copy (%s)",
                item.reveal_id,
                item.outbox_id,
                copy.id,
                type(exc).__name__,
            )
    return oldest


class Delivery:
    """Delivers the Discord outbox; one pass at a time per process."""

    def __init__(
        self,
        client: ChannelSource,
        db: Database,
        reply_mode: str,
        *,
        backoff: Backoff | None = None,
        off_loop: OffLoop | None = None,
        clock: Callable[[], float] = time.time,
        sends: MessageSends | None = None,
    ) -> None:
        self.client = client
        self.sends = sends  # the bot's HTTP client's message sends (discord.py resends on 5xx)
        self.db = db
        self.reply_mode = reply_mode
        self.backoff = backoff or Backoff()
        self.off_loop = off_loop or OffLoop()
        self.clock = clock
        self.stopping = False
        self._lock = asyncio.Lock()

    async def run(self) -> list[int]:
        """Post every reveal that is due; returns the outbox ids delivered in this pass."""
        delivered: list[int] = []
        async with self._lock:
            due = await self.off_loop(outbox.pending, self.db, PLATFORM, now=self.clock())
            for index, item in enumerate(due):
                if self.stopping:
                    log.info(
                        "discord delivery: stopping; %s due notes left for the next start", len(due) - index
                    )
                    break
                try:
                    await self._deliver(item)
                except Exception as exc:
                    failure = classify(exc)
                    if failure is None:  # a bug: logged, and retried on the backoff (not in a hot loop)
                        log.error(
                            "reveal %s (outbox %s): unexpected %s\n%s",
                            item.reveal_id,
                            item.outbox_id,
                            type(exc).__name__,
                            "".join(traceback.format_tb(exc.__traceback__)),  # frames only: no message
                        )
                        failure = Failure(True, f"unexpected {type(exc).__name__}")
                    if not failure.transient:
                        log.warning(
                            "reveal %s (outbox %s) failed: %s", item.reveal_id, item.outbox_id, failure.reason
                        )
                        await self.off_loop(
                            outbox.mark_failed, self.db, item.outbox_id, failure.reason, now=self.clock()
                        )
                        continue
                    await self._retry_later(item, failure)
                    break
                delivered.append(item.outbox_id)
        return delivered

    async def wait_idle(self, timeout: float) -> bool:
        """Wait for the pass in hand to finish (on shutdown); False if it did not within ``timeout``."""
        try:
            await asyncio.wait_for(self._lock.acquire(), timeout)
        except TimeoutError:
            return False
        self._lock.release()
        return True

    async def _deliver(self, item: outbox.PendingReveal) -> discord.Message:
        if item.attempts > 0:
            copies = await posted_copies(self.client, item, self.reply_mode)
            if copies:
                found = await keep_oldest(item, copies)
                await self._delivered(item, found, "found already posted as")
                return found
        attempt_at = self.clock()
        await self.off_loop(outbox.begin_attempt, self.db, item.outbox_id, now=attempt_at)
        channel_id, message_id = split_external_id(item.post_external_id)
        sent_to = message_id if self.reply_mode == "thread" else channel_id  # a thread has its message's id
        before = self.sends.count(sent_to) if self.sends is not None else 0
        sent = await post_reveal(self.client, item, self.reply_mode)
        if self.sends is not None and self.sends.count(sent_to) - before > 1:  # discord.py resent it
            copies = await posted_copies(self.client, item, self.reply_mode, since=attempt_at)
            sent = await keep_oldest(item, [sent, *(c for c in copies if c.id != sent.id)])
        await self._delivered(item, sent, "delivered as")
        return sent

    async def _delivered(self, item: outbox.PendingReveal, message: discord.Message, how: str) -> None:
        posted = external_id(message.channel.id, message.id)
        await self.off_loop(outbox.mark_delivered, self.db, item.outbox_id, posted, now=self.clock())
        log.info("reveal %s (outbox %s) %s message %s", item.reveal_id, item.outbox_id, how, message.id)

    async def _retry_later(self, item: outbox.PendingReveal, failure: Failure) -> None:
        now = self.clock()
        due = await self.off_loop(
            outbox.retry_later, self.db, item.outbox_id, PLATFORM, failure, backoff=self.backoff, now=now
        )
        if due is None:
            log.warning(
                "reveal %s (outbox %s): gave up after the retry horizon", item.reveal_id, item.outbox_id
            )
        else:
            log.warning(
                "reveal %s (outbox %s) not delivered: %s; next attempt in %.0fs",
                item.reveal_id,
                item.outbox_id,
                failure.reason,
                due - now,
            )


async def take_down(
    client: ChannelSource, db: Database, reveal_id: int, off_loop: OffLoop | None = None
) -> bool:
    """Delete the bot's message for an unpublished note, if it was delivered. Best effort."""
    posted = await (off_loop or OffLoop())(outbox.delivered_external_id, db, reveal_id, PLATFORM)
    if not posted:
        return False
    try:
        channel_id, message_id = split_external_id(posted)
        channel = await channel_of(client, channel_id)
        await channel.get_partial_message(message_id).delete()  # type: ignore[attr-defined]
    except (discord.HTTPException, ValueError, AttributeError) as exc:
        log.warning("could not delete the message of unpublished note %s: %s", reveal_id, type(exc).__name__)
        return False
    return True
