"""Offline stand-ins for Discord objects, shared by the Discord tests (no tests in this module).

Interactions are MagicMocks, as in python-discord's bot tests, with a small fake response that
enforces Discord's rule that an interaction gets exactly one first response (a message, a defer or
a modal). Channels and messages record what the bot posted, list their history after a message
(as ``Messageable.history(after=...)`` does, oldest first) and can be told to fail the next posts
with the errors Discord raises.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import discord
from sqlite_utils import Database

from notebazaar.bot.discord.client import NotebazaarBot
from notebazaar.bot.discord.commands import NotebazaarCog
from notebazaar.bot.discord.sends import MessageSends
from notebazaar.pipeline.config import DiscordSettings, Settings
from notebazaar.pipeline.judge.simple import SimpleJudge

GUILD_ID = 111_111_111_111_111_111
WATCHED = 222_222_222_222_222_222
QUIET = 333_333_333_333_333_333
BOT_USER_ID = 444_444_444_444_444_444
CLAIM = "A new study shows that 97 percent of scientists agree the vaccine causes autism in children."
_sequence = itertools.count()
_last_id = 0


def next_id(at: float | None = None) -> int:
    """A snowflake as Discord makes them: the time in its top bits (``at``, default now), so that
    searching history from a moment works as on Discord; ids made now keep growing."""
    global _last_id
    when = datetime.fromtimestamp(time.time() if at is None else at, tz=UTC)
    snowflake = discord.utils.time_snowflake(when) + next(_sequence) % (1 << 22)
    if at is None:
        snowflake = _last_id = max(snowflake, _last_id + 1)
    return snowflake


def discord_settings(**discord: Any) -> Settings:
    cfg = {"guilds": {str(GUILD_ID): "testers"}, "watch_channels": [WATCHED]} | discord
    return Settings(discord=DiscordSettings(**cfg))


@dataclass
class Sent:
    content: str | None
    embed: discord.Embed | None
    ephemeral: bool


class FakeResponse:
    """``Interaction.response``: one first response only."""

    def __init__(self) -> None:
        self._done = False
        self.messages: list[Sent] = []
        self.modal: discord.ui.Modal | None = None
        self.deferred = False

    def is_done(self) -> bool:
        return self._done

    def _first(self) -> None:
        assert not self._done, "the interaction was answered twice"
        self._done = True

    async def send_message(
        self, content: str | None = None, *, embed: discord.Embed | None = None, ephemeral: bool = False
    ) -> None:
        self._first()
        self.messages.append(Sent(content, embed, ephemeral))

    async def defer(self, *, ephemeral: bool = False, thinking: bool = False) -> None:
        self._first()
        self.deferred = True

    async def send_modal(self, modal: discord.ui.Modal) -> None:
        self._first()
        self.modal = modal


class FakeFollowup:
    def __init__(self, response: FakeResponse) -> None:
        self.response = response
        self.messages: list[Sent] = []

    async def send(
        self, content: str | None = None, *, embed: discord.Embed | None = None, ephemeral: bool = False
    ) -> None:
        assert self.response.is_done(), "a follow-up before the first response"
        self.messages.append(Sent(content, embed, ephemeral))


def make_user(
    name: str = "alice", *, user_id: int | None = None, bot: bool = False, manage_guild: bool = False
) -> MagicMock:
    user = MagicMock(spec=discord.Member)
    user.id = user_id or next_id()
    user.name = name
    user.bot = bot
    user.mention = f"<@{user.id}>"
    user.guild_permissions = discord.Permissions(manage_guild=manage_guild)
    return user


def make_interaction(user: MagicMock, *, guild_id: int | None = GUILD_ID) -> MagicMock:
    interaction = MagicMock()
    interaction.id = next_id()
    interaction.guild_id = guild_id
    interaction.user = user
    interaction.response = FakeResponse()
    interaction.followup = FakeFollowup(interaction.response)
    interaction.command = None
    return interaction


def answers(interaction: MagicMock) -> list[Sent]:
    return interaction.response.messages + interaction.followup.messages


def only_answer(interaction: MagicMock) -> Sent:
    sent = answers(interaction)
    assert len(sent) == 1, sent
    return sent[0]


@dataclass
class FakeMessage:
    """A message in a channel; ``reply`` and ``create_thread`` post like Discord would."""

    id: int
    channel: FakeChannel
    content: str = ""
    author: Any = None
    guild: Any = None
    add_reaction: AsyncMock = field(default_factory=AsyncMock)
    deleted: bool = False
    embeds: list[discord.Embed] = field(default_factory=list)
    reference: Any = None
    view: Any = None
    edits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def jump_url(self) -> str:
        return f"https://discord.com/channels/{GUILD_ID}/{self.channel.id}/{self.id}"

    async def reply(self, *, embed: discord.Embed, **kwargs: Any) -> FakeMessage:
        assert kwargs.get("mention_author") is False
        if self.deleted:
            raise discord.NotFound(MagicMock(status=404, reason="Not Found"), {"code": 10008, "message": "x"})
        return self.channel.post(embed, reply_to=self.id, view=kwargs.get("view"))

    async def create_thread(self, *, name: str) -> FakeChannel:
        assert self.id not in self.channel.world.channels, "a thread already exists on this message"
        thread = FakeChannel(self.id, self.channel.world, name=name)
        self.channel.world.channels[self.id] = thread
        self.channel.threads_created += 1
        return thread

    async def delete(self) -> None:
        self.deleted = True

    async def edit(self, **changes: Any) -> FakeMessage:
        if self.deleted:
            raise discord.NotFound(MagicMock(status=404, reason="Not Found"), {"code": 10008, "message": "x"})
        self.edits.append(changes)
        return self


@dataclass
class FakeChannel:
    id: int
    world: FakeDiscord
    name: str = "general"
    posted: list[tuple[discord.Embed, int | None]] = field(default_factory=list)
    messages: dict[int, FakeMessage] = field(default_factory=dict)
    threads_created: int = 0

    def get_partial_message(self, message_id: int) -> FakeMessage:
        return self.messages.setdefault(message_id, FakeMessage(message_id, self))

    def post(self, embed: discord.Embed, *, reply_to: int | None = None, view: Any = None) -> FakeMessage:
        if self.world.failures:
            raise self.world.failures.pop(0)
        sent = self._save(embed, reply_to, view)
        if self.world.resends:  # Discord kept it and answered 502; discord.py sent it again
            self.world.resends -= 1
            sent = self._save(embed, reply_to, view)
        return sent

    def _save(self, embed: discord.Embed, reply_to: int | None, view: Any) -> FakeMessage:
        if self.world.sends is not None:  # what the bot's http_trace counts for each HTTP send
            self.world.sends.record(self.id)
        self.posted.append((embed, reply_to))
        reference = MagicMock(message_id=reply_to) if reply_to else None
        sent = FakeMessage(
            next_id(), self, author=self.world.user, embeds=[embed], reference=reference, view=view
        )
        self.messages[sent.id] = sent
        return sent

    def shown(self) -> list[FakeMessage]:
        """The bot's messages still there."""
        return [m for m in self.messages.values() if m.author is self.world.user and not m.deleted]

    async def history(self, *, limit: int = 100, after: Any = None) -> Any:
        """The channel's messages after ``after``, oldest first (ids grow with time)."""
        self.world.history_reads += 1
        later = sorted(
            (m for m in self.messages.values() if after is None or m.id > after.id), key=lambda m: m.id
        )
        for message in later[:limit]:
            if not message.deleted and message.author is not None:
                yield message

    async def fetch_message(self, message_id: int) -> FakeMessage:
        message = self.messages.get(message_id)
        if message is None or message.deleted:
            raise discord.NotFound(MagicMock(status=404, reason="Not Found"), {"code": 10008, "message": "x"})
        return message

    async def send(self, *, embed: discord.Embed, **kwargs: Any) -> FakeMessage:
        return self.post(embed, view=kwargs.get("view"))

    def message(
        self, content: str, author: Any, *, guild_id: int = GUILD_ID, at: float | None = None
    ) -> FakeMessage:
        msg = FakeMessage(next_id(at), self, content, author, MagicMock(id=guild_id))
        self.messages[msg.id] = msg
        return msg


class FakeDiscord:
    """The part of ``discord.Client`` delivery uses: channels by id, fetched or cached."""

    def __init__(self) -> None:
        self.channels: dict[int, FakeChannel] = {}
        self.user = MagicMock(id=BOT_USER_ID, bot=True)
        self.user.name = "notebazaar"
        self.failures: list[BaseException] = []  # raised, in order, by the next posts
        self.resends = 0  # the next posts that Discord keeps twice (a 5xx, then discord.py's resend)
        self.sends: MessageSends | None = None  # the bot's counter, as its http_trace would feed it
        self.history_reads = 0

    def channel(self, channel_id: int) -> FakeChannel:
        return self.channels.setdefault(channel_id, FakeChannel(channel_id, self))

    def get_channel(self, channel_id: int) -> FakeChannel | None:
        return self.channels.get(channel_id)

    async def fetch_channel(self, channel_id: int) -> FakeChannel:
        if channel_id not in self.channels:
            raise discord.NotFound(MagicMock(status=404, reason="Not Found"), {"code": 10003, "message": "x"})
        return self.channels[channel_id]


def attach(bot: NotebazaarBot, fake: FakeDiscord) -> None:
    """Route the bot's channel lookups to the fake Discord."""
    bot.get_channel = fake.get_channel  # type: ignore[method-assign]
    bot.fetch_channel = fake.fetch_channel  # type: ignore[method-assign]
    bot._connection.user = fake.user  # what ``bot.user`` answers: the bot's own account
    fake.sends = bot.message_sends


def make_bot(
    db_path: Path, settings: Settings, db: Database | None = None
) -> tuple[NotebazaarBot, NotebazaarCog]:
    bot = NotebazaarBot(db_path, settings, db=db, judge_factory=lambda s, d: SimpleJudge())
    return bot, NotebazaarCog(bot)


def modal_payload(
    post: str, classification: str, note: str, sources: str, terms: str
) -> list[dict[str, Any]]:
    """The ``components`` of a MODAL_SUBMIT interaction, as Discord sends them for our labels."""

    def text(custom_id: str, value: str) -> dict[str, Any]:
        return {"type": 18, "component": {"type": 4, "custom_id": custom_id, "value": value}}

    return [
        text("post", post),
        {"type": 18, "component": {"type": 3, "custom_id": "classification", "values": [classification]}},
        text("note", note),
        text("sources", sources),
        text("terms", terms),
    ]


def server_error(status: int = 503) -> discord.DiscordServerError:
    """What discord.py raises when Discord answers 5xx after its own retries."""
    return discord.DiscordServerError(MagicMock(status=status, reason="Service Unavailable"), "upstream")
