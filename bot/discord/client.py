"""The bot object: intents, the command tree, and the background close-and-deliver loop.

Intents: ``guilds`` only, unless ``[discord] watch_channels`` is non-empty; then also
``guild_messages`` and the privileged ``message_content`` (needed only to read watched messages;
slash commands, modals and message menus work without it). Rate limits and reconnects are
discord.py's job.

Closing (SIGTERM, Ctrl-C) stops delivery after the note in hand, waits for that pass to finish,
then lets settlement in progress finish on its thread before the connection closes.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import discord
from discord.ext import commands, tasks
from sqlite_utils import Database

from notebazaar.bot.discord.closer import Closer, JudgeFactory
from notebazaar.bot.discord.delivery import Delivery
from notebazaar.bot.discord.interactions import report_error
from notebazaar.bot.discord.offloop import OffLoop
from notebazaar.bot.discord.poststate import DiscordPostCheck
from notebazaar.bot.discord.ratings import RateButton, take_down_hidden
from notebazaar.bot.discord.sends import MessageSends
from notebazaar.pipeline.backoff import Backoff
from notebazaar.pipeline.config import DiscordSettings, Settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.judge.factory import make_judge

log = logging.getLogger(__name__)

BOT_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    embed_links=True,
    read_message_history=True,
    add_reactions=True,
)
SCOPES = ("bot", "applications.commands")
SHUTDOWN_SECONDS = 30.0  # how long closing waits for the delivery pass in hand


def intents_for(cfg: DiscordSettings) -> discord.Intents:
    """The least the bot needs: message events and content only when it watches channels."""
    intents = discord.Intents.none()
    intents.guilds = True
    if cfg.watch_channels:
        intents.guild_messages = True
        intents.message_content = True
    return intents


def invite_url(client_id: int | str) -> str:
    return discord.utils.oauth_url(client_id, permissions=BOT_PERMISSIONS, scopes=SCOPES)


class NotebazaarTree(discord.app_commands.CommandTree):
    """Errors that escape a command (argument conversion, checks) still reach the user politely."""

    async def on_error(
        self, interaction: discord.Interaction, error: discord.app_commands.AppCommandError
    ) -> None:
        cause = error.original if isinstance(error, discord.app_commands.CommandInvokeError) else error
        name = interaction.command.qualified_name if interaction.command else "command"
        await report_error(interaction, name, cause)


class NotebazaarBot(commands.Bot):
    def __init__(
        self,
        db_path: Path,
        settings: Settings,
        *,
        db: Database | None = None,
        judge_factory: JudgeFactory = make_judge,
    ) -> None:
        sends = MessageSends()  # discord.py resends a message on 5xx: delivery keeps one copy
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=intents_for(settings.discord),
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=NotebazaarTree,
            http_trace=sends.trace_config(),
        )
        self.message_sends = sends
        self.settings = settings
        self.db = db if db is not None else open_db(db_path)
        self._owns_db = db is None
        self.off_loop = OffLoop()
        self.delivery = Delivery(
            self,
            self.db,
            settings.discord.reply_mode,
            backoff=Backoff.from_settings(settings.delivery),
            off_loop=self.off_loop,
            sends=sends,
        )
        self.closer = Closer(db_path, settings, judge_factory)
        self._stop_task: asyncio.Task[None] | None = None
        self._shutdown: asyncio.Task[None] | None = None

    async def setup_hook(self) -> None:
        """Runs inside ``login``, which may be retried: everything here can run twice."""
        from notebazaar.bot.discord.commands import NotebazaarCog

        await self.add_cog(NotebazaarCog(self), override=True)
        self.add_dynamic_items(RateButton)  # rating buttons keep working on messages sent before a restart
        await self.sync_commands()
        self.closer.post_check = DiscordPostCheck(self, asyncio.get_running_loop())
        self.settle_loop.change_interval(seconds=self.settings.web.close_poll_seconds)
        if not self.settle_loop.is_running():
            self.settle_loop.start()

    async def sync_commands(self) -> None:
        """Register the commands in each configured guild (instant). The runner refuses to start
        with no guild configured: global commands would appear everywhere and all refuse."""
        for guild_id in self.settings.discord.guilds:
            guild = discord.Object(id=int(guild_id))
            self.tree.copy_global_to(guild=guild)
            try:
                await self.tree.sync(guild=guild)
            except discord.HTTPException as exc:
                log.warning(
                    "could not register commands in guild %s (is the bot in it?): %s", guild_id, exc.status
                )

    async def on_ready(self) -> None:
        log.info("discord bot connected as %s (%s)", self.user, self.user.id if self.user else "?")

    async def settle_and_deliver(self) -> tuple[list[int], list[int]]:
        """One pass: close due markets (and rescore ratings when due), post revealed notes, edit the
        messages of notes readers hid. Failures are logged and retried."""
        closed: list[int] = []
        delivered: list[int] = []
        try:
            closed = await self.closer.close_due()
        except Exception:
            log.exception("closing due markets failed; will retry")
        try:
            delivered = await self.delivery.run()
        except Exception:
            log.exception("delivering revealed notes failed; will retry")
        try:
            await take_down_hidden(self, self.db)
        except Exception:
            log.exception("editing hidden notes' messages failed; will retry")
        return closed, delivered

    @tasks.loop(seconds=5.0)
    async def settle_loop(self) -> None:
        await self.settle_and_deliver()

    @settle_loop.before_loop
    async def _before_settle_loop(self) -> None:
        await self.wait_until_ready()

    def request_stop(self, reason: str) -> None:
        """Stop the bot cleanly (a signal handler on the event loop calls this)."""
        if self._stop_task is None:
            log.info("discord bot: %s received; finishing the delivery in hand, then stopping", reason)
            self._stop_task = asyncio.get_running_loop().create_task(self.close())

    async def close(self) -> None:
        """Shut down once; every caller (a signal, discord.py, the runner) waits for all of it."""
        if self._shutdown is None:
            self._shutdown = asyncio.get_running_loop().create_task(self._shut_down())
        await asyncio.shield(self._shutdown)

    async def _shut_down(self) -> None:
        self.delivery.stopping = True
        if not await self.delivery.wait_idle(SHUTDOWN_SECONDS):
            log.warning(
                "discord bot: the delivery pass did not finish in %.0fs; stopping anyway", SHUTDOWN_SECONDS
            )
        self.settle_loop.cancel()
        await super().close()
        await asyncio.to_thread(self.closer.shutdown)  # settlement in progress finishes first
        if self._owns_db:
            self.db.close()
        log.info("discord bot stopped")
