"""The bot object: intents, the command tree, and the background close-and-deliver loop.

Intents: ``guilds`` only, unless ``[discord] watch_channels`` is non-empty; then also
``guild_messages`` and the privileged ``message_content`` (needed only to read watched messages;
slash commands, modals and message menus work without it). Rate limits and reconnects are
discord.py's job.
"""

from __future__ import annotations

import logging
from pathlib import Path

import discord
from discord.ext import commands, tasks
from sqlite_utils import Database

from notebazaar.bot.discord.closer import Closer, JudgeFactory
from notebazaar.bot.discord.delivery import Delivery
from notebazaar.bot.discord.interactions import report_error
from notebazaar.bot.discord.ratings import RateButton, take_down_hidden
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
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=intents_for(settings.discord),
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=NotebazaarTree,
        )
        self.settings = settings
        self.db = db if db is not None else open_db(db_path)
        self._owns_db = db is None
        self.delivery = Delivery(self, self.db, settings.discord.reply_mode)
        self.closer = Closer(db_path, settings, judge_factory)

    async def setup_hook(self) -> None:
        from notebazaar.bot.discord.commands import NotebazaarCog

        await self.add_cog(NotebazaarCog(self))
        self.add_dynamic_items(RateButton)  # rating buttons keep working on messages sent before a restart
        await self.sync_commands()
        self.settle_loop.change_interval(seconds=self.settings.web.close_poll_seconds)
        self.settle_loop.start()

    async def sync_commands(self) -> None:
        """Register the commands in each configured guild (instant), or globally if none is set."""
        if not self.settings.discord.guilds:
            await self.tree.sync()
            return
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

    async def close(self) -> None:
        self.settle_loop.cancel()
        await super().close()
        self.closer.shutdown()
        if self._owns_db:
            self.db.close()
