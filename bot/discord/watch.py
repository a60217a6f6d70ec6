"""Turning Discord messages into posts with open markets: the channel watcher and "Request notes".

A watched message opens a market only if it passes the configured check-worthiness filter
(:func:`notebazaar.pipeline.checkworthy.is_check_worthy`); a reader's "Request notes" opens one regardless.
Either way the message gets a reaction, so readers see that notes may be offered on it.
"""

from __future__ import annotations

import logging

import discord
from sqlite_utils import Database

from notebazaar.bot.discord.interactions import PLATFORM
from notebazaar.bot.discord.refs import external_id
from notebazaar.pipeline import community
from notebazaar.pipeline import market as market_core
from notebazaar.pipeline.checkworthy import is_check_worthy
from notebazaar.pipeline.community import Community
from notebazaar.pipeline.config import DiscordSettings
from notebazaar.pipeline.errors import ValidationError

log = logging.getLogger(__name__)
MARKET_OPEN_REACTION = "\N{MEMO}"


def is_watched(cfg: DiscordSettings, message: discord.Message, own_id: int | None) -> bool:
    """A human's message in a watched guild channel (never a bot's, never our own)."""
    if message.author.bot or (own_id is not None and message.author.id == own_id):
        return False
    if message.guild is None or str(message.guild.id) not in cfg.guilds:
        return False
    return message.channel.id in cfg.watch_channels


def worth_a_market(cfg: DiscordSettings, message: discord.Message) -> bool:
    return is_check_worthy(message.content or "", mode=cfg.check_worthiness, min_chars=cfg.min_chars)


def open_for_message(db: Database, com: Community, message: discord.Message) -> tuple[int, bool]:
    """Record the message as a post and open its market; returns (market id, newly opened)."""
    if not (message.content or "").strip():
        raise ValidationError("that message has no text for notes to be about")
    key = external_id(message.channel.id, message.id)
    existed = db.execute(
        "SELECT m.id FROM markets m JOIN posts p ON p.id = m.post_id"
        " WHERE p.platform = ? AND p.external_id = ? AND m.parent_offer_id IS NULL",
        [PLATFORM, key],
    ).fetchone()
    if existed:
        return int(existed[0]), False
    post_id = community.add_post(
        db,
        com.id,
        message.content,
        platform=PLATFORM,
        external_id=key,
        url=message.jump_url,
        author=message.author.name,
    )
    return market_core.open_market(db, post_id), True


async def announce(message: discord.Message) -> None:
    """React to the message so readers know notes may be offered. Best effort."""
    try:
        await message.add_reaction(MARKET_OPEN_REACTION)
    except discord.HTTPException as exc:
        log.warning("could not react to message %s: %s", message.id, exc.status)
