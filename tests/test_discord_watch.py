"""The channel watcher: check-worthy messages in watched channels open markets; nothing else does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlite_utils import Database

from notebazaar.bot.discord.client import intents_for
from notebazaar.bot.discord.commands import NotebazaarCog
from notebazaar.bot.discord.watch import MARKET_OPEN_REACTION
from notebazaar.pipeline.config import DiscordSettings, Settings
from tests.conftest import World
from tests.test_discord_fakes import CLAIM, QUIET, WATCHED, FakeDiscord, make_bot, make_user
from tests.test_discord_fakes import discord_settings as _discord_settings


@pytest.fixture
def settings() -> Settings:
    return _discord_settings()


@pytest.fixture
def cog(db: Database, db_path: Path, settings: Settings, world: World) -> NotebazaarCog:
    return make_bot(db_path, settings, db)[1]


def test_watcher_opens_a_market_for_a_check_worthy_message(db: Database, cog: NotebazaarCog) -> None:
    message = FakeDiscord().channel(WATCHED).message(CLAIM, make_user("poster"))
    asyncio.run(cog.on_message(message))  # type: ignore[arg-type]
    posts = list(db["posts"].rows_where("platform = 'discord'"))
    assert [p["external_id"] for p in posts] == [f"{WATCHED}:{message.id}"]
    assert db["markets"].count == 1
    message.add_reaction.assert_awaited_once_with(MARKET_OPEN_REACTION)

    asyncio.run(cog.on_message(message))  # a repeated event (e.g. after a reconnect) opens nothing new
    assert db["markets"].count == 1
    message.add_reaction.assert_awaited_once()


@pytest.mark.parametrize(
    ("channel", "text", "author"),
    [
        (WATCHED, "good morning everyone, coffee anyone? see you at lunch today", make_user("poster")),
        (WATCHED, "97% agree", make_user("poster")),  # too short
        (QUIET, CLAIM, make_user("poster")),  # not a watched channel
        (WATCHED, CLAIM, make_user("otherbot", bot=True)),  # bots are ignored
    ],
)
def test_watcher_ignores_other_messages(
    db: Database, cog: NotebazaarCog, channel: int, text: str, author: object
) -> None:
    message = FakeDiscord().channel(channel).message(text, author)
    asyncio.run(cog.on_message(message))  # type: ignore[arg-type]
    assert db["posts"].count == 0 and db["markets"].count == 0
    message.add_reaction.assert_not_awaited()


def test_watcher_ignores_unlinked_guilds_and_its_own_messages(db: Database, cog: NotebazaarCog) -> None:
    channel = FakeDiscord().channel(WATCHED)
    elsewhere = channel.message(CLAIM, make_user("poster"), guild_id=42)
    asyncio.run(cog.on_message(elsewhere))  # type: ignore[arg-type]
    me = make_user("notebazaar", bot=False)
    cog.bot._connection.user = me  # what login would set
    asyncio.run(cog.on_message(channel.message(CLAIM, me)))  # type: ignore[arg-type]
    assert db["markets"].count == 0


def test_check_worthiness_is_configurable(db: Database, db_path: Path, world: World) -> None:
    cog = make_bot(db_path, _discord_settings(check_worthiness="none"), db)[1]
    asyncio.run(cog.on_message(FakeDiscord().channel(WATCHED).message(CLAIM, make_user("p"))))  # type: ignore[arg-type]
    assert db["markets"].count == 0
    cog = make_bot(db_path, _discord_settings(check_worthiness="all", min_chars=5), db)[1]
    asyncio.run(cog.on_message(FakeDiscord().channel(WATCHED).message("hello there", make_user("p"))))  # type: ignore[arg-type]
    assert db["markets"].count == 1


def test_message_content_intent_only_when_watching() -> None:
    quiet = intents_for(DiscordSettings(guilds={"1": "x"}))
    assert quiet.guilds and not quiet.message_content and not quiet.guild_messages and not quiet.members
    watching = intents_for(DiscordSettings(guilds={"1": "x"}, watch_channels=[5]))
    assert watching.guilds and watching.guild_messages and watching.message_content
    assert not watching.members and not watching.presences and not watching.dm_messages
