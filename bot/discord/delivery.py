"""Posting revealed notes under their Discord messages, exactly once.

Settlement queues a row in the outbox for each revealed note on a Discord post. Delivery posts each
pending row (a reply embed, or a message in a thread under the post) and marks it delivered with the
id of the message it sent, in the same breath. The outbox lives in the database, so a restarted bot
(a new process, the same database) finds nothing left to post; a lock keeps two delivery passes in
one process from overlapping. The one window left is a crash between Discord accepting the message
and the database recording it, which would repeat that single note once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import discord
from sqlite_utils import Database

from notebazaar.bot.discord import render
from notebazaar.bot.discord.interactions import PLATFORM
from notebazaar.bot.discord.ratings import rating_view
from notebazaar.bot.discord.refs import external_id, split_external_id
from notebazaar.pipeline import outbox

log = logging.getLogger(__name__)
THREAD_NAME = "Community notes"


class ChannelSource(Protocol):
    """What delivery needs from the client (``discord.Client`` satisfies it)."""

    def get_channel(self, id: int, /) -> object | None: ...

    async def fetch_channel(self, channel_id: int, /) -> object: ...


async def _channel(client: ChannelSource, channel_id: int) -> object:
    return client.get_channel(channel_id) or await client.fetch_channel(channel_id)


async def _thread_under(client: ChannelSource, message: discord.PartialMessage) -> discord.abc.Messageable:
    """The thread started from ``message`` (a message's thread has the message's id), made if absent."""
    thread = client.get_channel(message.id)
    if thread is None:
        try:
            thread = await client.fetch_channel(message.id)
        except discord.NotFound:
            thread = None
    if thread is None:
        thread = await message.create_thread(name=THREAD_NAME)
    return thread  # type: ignore[return-value]


async def post_reveal(client: ChannelSource, item: outbox.PendingReveal, reply_mode: str) -> discord.Message:
    channel_id, message_id = split_external_id(item.post_external_id)
    channel = await _channel(client, channel_id)
    target = channel.get_partial_message(message_id)  # type: ignore[attr-defined]
    embed = render.reveal_embed(item)
    view = rating_view(item.reveal_id)  # readers rate the note right under it
    none = discord.AllowedMentions.none()
    if reply_mode == "thread":
        thread = await _thread_under(client, target)
        return await thread.send(embed=embed, view=view, allowed_mentions=none)
    return await target.reply(embed=embed, view=view, mention_author=False, allowed_mentions=none)  # type: ignore[no-any-return]


class Delivery:
    """Delivers the Discord outbox; one pass at a time per process."""

    def __init__(self, client: ChannelSource, db: Database, reply_mode: str) -> None:
        self.client = client
        self.db = db
        self.reply_mode = reply_mode
        self._lock = asyncio.Lock()

    async def run(self) -> list[int]:
        """Post every pending reveal; returns the outbox ids delivered in this pass."""
        delivered: list[int] = []
        async with self._lock:
            for item in outbox.pending(self.db, PLATFORM):
                try:
                    sent = await post_reveal(self.client, item, self.reply_mode)
                except (discord.HTTPException, ValueError, AttributeError) as exc:
                    reason = f"{type(exc).__name__} {getattr(exc, 'status', '')} {getattr(exc, 'code', '')}"
                    outbox.mark_failed(self.db, item.outbox_id, reason.strip())
                    log.warning(
                        "reveal %s (outbox %s) not delivered: %s", item.reveal_id, item.outbox_id, reason
                    )
                    continue
                outbox.mark_delivered(self.db, item.outbox_id, external_id(sent.channel.id, sent.id))
                delivered.append(item.outbox_id)
                log.info("reveal %s delivered as message %s", item.reveal_id, sent.id)
        return delivered


async def take_down(client: ChannelSource, db: Database, reveal_id: int) -> bool:
    """Delete the bot's message for an unpublished note, if it was delivered. Best effort."""
    posted = outbox.delivered_external_id(db, reveal_id, PLATFORM)
    if not posted:
        return False
    try:
        channel_id, message_id = split_external_id(posted)
        channel = await _channel(client, channel_id)
        await channel.get_partial_message(message_id).delete()  # type: ignore[attr-defined]
    except (discord.HTTPException, ValueError, AttributeError) as exc:
        log.warning("could not delete the message of unpublished note %s: %s", reveal_id, type(exc).__name__)
        return False
    return True
