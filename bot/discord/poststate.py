"""What Discord says about a post before its market settles (the pipeline's post check).

A message that was deleted, in a channel that was deleted or that the bot may no longer read,
cannot show a note: its market is cancelled with bids and budget returned
(:mod:`notebazaar.pipeline.poststate`). When Discord cannot be asked (an outage), the market waits
for the next pass. Posts of other platforms are not this adapter's to judge.

Settlement runs on the closer's thread; Discord's client lives on the event loop. The check hands
the lookup to the loop and waits for it there (never on the loop itself).
"""

from __future__ import annotations

import asyncio
from typing import Any

import discord

from notebazaar.bot.discord.delivery import ChannelSource, channel_of, classify
from notebazaar.bot.discord.interactions import PLATFORM
from notebazaar.bot.discord.refs import split_external_id
from notebazaar.pipeline.poststate import PostState

CHECK_SECONDS = 30.0


async def post_state(client: ChannelSource, external_id: str) -> PostState:
    """Whether the message a post came from is still there for a note to reply to."""
    try:
        channel_id, message_id = split_external_id(external_id)
        channel = await channel_of(client, channel_id)
        await channel.fetch_message(message_id)  # type: ignore[attr-defined]
    except Exception as exc:
        failure = classify(exc)
        if failure is None:
            raise
        forbidden = "the bot may not read the channel: " if isinstance(exc, discord.Forbidden) else ""
        return PostState.after_failure(failure.transient, f"discord: {forbidden}{failure.reason}")
    return PostState.open()


class DiscordPostCheck:
    """The post check for :func:`notebazaar.pipeline.settlement.close_due`, called off the loop."""

    def __init__(self, client: ChannelSource, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop

    def __call__(self, post: dict[str, Any]) -> PostState:
        if post["platform"] != PLATFORM:
            return PostState.open()
        future = asyncio.run_coroutine_threadsafe(
            post_state(self.client, str(post["external_id"])), self.loop
        )
        try:
            return future.result(CHECK_SECONDS)
        except TimeoutError:
            future.cancel()
            return PostState.unknown("discord: no answer in time")
