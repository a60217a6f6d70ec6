"""Slash commands, the "Request notes" message menu and the channel watcher, as one cog.

Each callback translates a Discord interaction into pipeline calls and their result back into an
ephemeral answer. Market rules live in :mod:`notebazaar.pipeline`; the only decision made here is
who counts as a moderator (see :func:`notebazaar.bot.discord.interactions.require_moderator`).

Every database and pipeline call runs off the event loop (:mod:`notebazaar.bot.discord.offloop`),
and a command that answers with a message defers first, so a slow database never stalls the
gateway or expires the interaction. The two commands that answer with a form (a modal must be the
first response, so they cannot defer) check what they can before opening it, within
:data:`FORM_CHECK_SECONDS`; if the database is too slow to answer in time, the form opens anyway
and the same checks run when it is sent.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from notebazaar.bot.discord import queries, render, watch
from notebazaar.bot.discord.delivery import take_down
from notebazaar.bot.discord.interactions import (
    account_for_user,
    community_for_guild,
    defer,
    guarded,
    log_failure,
    require_moderator,
    send,
)
from notebazaar.bot.discord.modal import NoteModal, SubNoteModal
from notebazaar.bot.discord.refs import parse_message_ref
from notebazaar.pipeline import community, ledger, moderation, prompts
from notebazaar.pipeline import market as market_core
from notebazaar.pipeline.errors import Forbidden, NotebazaarError

if TYPE_CHECKING:
    from notebazaar.bot.discord.client import NotebazaarBot

log = logging.getLogger(__name__)
FORM_CHECK_SECONDS = 2.0  # Discord wants the modal within 3 s of the command
AUTOCOMPLETE_SECONDS = 2.0


class NotebazaarCog(commands.Cog):
    note = app_commands.Group(name="note", description="Sealed notes on posts", guild_only=True)
    pool = app_commands.Group(name="pool", description="The community's reader-funded pool", guild_only=True)
    market = app_commands.Group(name="market", description="Markets on posts", guild_only=True)
    judge = app_commands.Group(name="judge", description="The judge (moderators)", guild_only=True)
    informer = app_commands.Group(name="informer", description="Informers (moderators)", guild_only=True)

    def __init__(self, bot: NotebazaarBot) -> None:
        self.bot = bot
        self.db = bot.db
        self.settings = bot.settings
        self.off_loop = bot.off_loop
        self.request_notes_menu = app_commands.ContextMenu(name="Request notes", callback=self.request_notes)
        self.request_notes_menu.guild_only = True

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.request_notes_menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.request_notes_menu.name, type=self.request_notes_menu.type)

    async def _before_form(self, check: Any, *args: Any) -> Any:
        """Run a check before opening a form; None if the database could not answer in time."""
        try:
            return await asyncio.wait_for(self.off_loop(check, *args), FORM_CHECK_SECONDS)
        except TimeoutError:
            log.warning("the database was too slow to check before a form; the form checks on submit")
            return None

    # --- informers ---------------------------------------------------------------------------

    @note.command(name="submit", description="Offer a sealed note on a post, with a bid and a price")
    @app_commands.describe(post="Message link or id (you can also paste it in the form)")
    async def note_submit(self, interaction: discord.Interaction, post: str | None = None) -> None:
        async with guarded(interaction, "note submit"):
            # Before the form: the server is linked, and the post named has a market taking notes,
            # so nobody types a note that cannot be offered.
            await self._before_form(self._check_post, interaction.guild_id, post)
            # The modal must be the first response: no defer before it.
            await interaction.response.send_modal(
                NoteModal(self.db, self.settings, post=post, off_loop=self.off_loop)
            )

    def _check_post(self, guild_id: int | None, post: str | None) -> None:
        com = community_for_guild(self.db, self.settings, guild_id)
        if post:
            found = queries.find_post(self.db, parse_message_ref(post), com.id)
            queries.open_market_for_post(self.db, int(found["id"]))

    @note.command(name="submarket", description="Offer a sealed note about an offer, into its sub-market")
    @app_commands.describe(market="The sub-market's id (/market show lists a post's open sub-markets)")
    async def note_submarket(
        self, interaction: discord.Interaction, market: app_commands.Range[int, 1]
    ) -> None:
        async with guarded(interaction, "note submarket"):
            target = await self._before_form(self._open_sub_market, interaction.guild_id, market)
            if target is None:  # the database was slow: the form needs the sub-market's teaser
                raise NotebazaarError("the server is busy; please try again in a moment")
            await interaction.response.send_modal(
                SubNoteModal(self.db, self.settings, target, off_loop=self.off_loop)
            )

    def _open_sub_market(self, guild_id: int | None, market_id: int) -> queries.SubMarket:
        com = community_for_guild(self.db, self.settings, guild_id)
        return queries.open_sub_market(self.db, market_id, com.id)  # refuse before the form

    @note_submarket.autocomplete("market")
    async def sub_market_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[int]]:
        """Open sub-markets of this server's community, by id or by their offer's teaser."""
        try:
            found = await asyncio.wait_for(
                self.off_loop(self._sub_market_choices, interaction.guild_id, current), AUTOCOMPLETE_SECONDS
            )
        except (NotebazaarError, TimeoutError):
            return []
        return [app_commands.Choice(name=render.sub_market_choice(s), value=s.id) for s in found[:25]]

    def _sub_market_choices(self, guild_id: int | None, current: str) -> list[queries.SubMarket]:
        com = community_for_guild(self.db, self.settings, guild_id)
        wanted = current.strip().lstrip("#").lower()
        return [
            s
            for s in queries.open_sub_markets(self.db, com.id)
            if not wanted or str(s.id).startswith(wanted) or wanted in s.teaser.lower()
        ]

    @note.command(name="status", description="Your offers and what became of them")
    async def note_status(self, interaction: discord.Interaction) -> None:
        async with guarded(interaction, "note status"):
            await defer(interaction)
            await send(interaction, await self.off_loop(self._status_text, interaction.user))

    def _status_text(self, user: discord.abc.User) -> str:
        return render.offers_text(queries.informer_offers(self.db, account_for_user(self.db, user)))

    @app_commands.command(name="wallet", description="Your credits")
    async def wallet(self, interaction: discord.Interaction) -> None:
        async with guarded(interaction, "wallet"):
            await defer(interaction)
            await send(interaction, await self.off_loop(self._wallet_text, interaction.user))

    def _wallet_text(self, user: discord.abc.User) -> str:
        account = account_for_user(self.db, user)
        handle = community.get_account(self.db, account)["handle"]
        balance = ledger.balance(self.db, ledger.wallet(account))
        return (
            f"Wallet of `{handle}`: **{balance}** credits, {queries.escrowed(self.db, account)} more held"
            f" in escrow for sealed bids; {queries.earned(self.db, account)} earned from notes so far.\n"
            "Credits are issued by the operator (`notebazaar credits mint <handle> <amount>`)."
        )

    @pool.command(name="fund", description="Move credits from your wallet into the community pool")
    @app_commands.describe(amount="Credits to move")
    async def pool_fund(self, interaction: discord.Interaction, amount: int) -> None:
        async with guarded(interaction, "pool fund"):
            await defer(interaction)
            await send(
                interaction, await self.off_loop(self._fund, interaction.guild_id, interaction.user, amount)
            )

    def _fund(self, guild_id: int | None, user: discord.abc.User, amount: int) -> str:
        com = community_for_guild(self.db, self.settings, guild_id)
        account = account_for_user(self.db, user)
        community.fund_pool(self.db, com.id, account, amount)
        pool_balance = ledger.balance(self.db, ledger.pool(com.id))
        return f"Moved {amount} credits into the {com.name} pool; it now holds {pool_balance}."

    @market.command(name="show", description="A market's state")
    @app_commands.describe(post="Message link or id of the post")
    async def market_show(self, interaction: discord.Interaction, post: str) -> None:
        async with guarded(interaction, "market show"):
            await defer(interaction)
            view = await self.off_loop(self._market_view, interaction.guild_id, post)
            await send(interaction, embed=render.market_embed(view))

    def _market_view(self, guild_id: int | None, post: str) -> dict[str, Any]:
        com = community_for_guild(self.db, self.settings, guild_id)
        found = queries.find_post(self.db, parse_message_ref(post), com.id)
        market_row = queries.market_for_post(self.db, int(found["id"]))
        return market_core.market_view(self.db, int(market_row["id"]))

    async def request_notes(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Message menu "Request notes": open a market on the message."""
        async with guarded(interaction, "request notes"):
            await defer(interaction)
            own_id = self.bot.user.id if self.bot.user is not None else None
            if own_id is not None and message.author.id == own_id:
                raise Forbidden("that is a notebazaar message; request notes on a member's post")
            market_id, created, closes = await self.off_loop(
                self._open_requested, interaction.guild_id, interaction.user, message
            )
            if created:
                await watch.announce(message)
            verb = "Opened" if created else "There already is"
            await send(
                interaction,
                f"{verb} market #{market_id} on that message; bidding closes <t:{closes}:R>.\n"
                f"Informers: `/note submit post:{message.jump_url}`",
            )

    def _open_requested(
        self, guild_id: int | None, user: discord.abc.User, message: discord.Message
    ) -> tuple[int, bool, int]:
        com = community_for_guild(self.db, self.settings, guild_id)
        requester = account_for_user(self.db, user)
        if community.is_banned(self.db, requester, com.id):
            raise Forbidden("you are banned from this community's market")
        market_id, created = watch.open_for_message(self.db, com, message)
        return market_id, created, int(market_core.get_market(self.db, market_id)["closes_at"])

    # --- moderators --------------------------------------------------------------------------

    @judge.command(name="prompt", description="Show the judge's prompt versions, or activate one")
    @app_commands.describe(version="Version number to activate (leave empty to show)")
    async def judge_prompt(self, interaction: discord.Interaction, version: int | None = None) -> None:
        async with guarded(interaction, "judge prompt"):
            await defer(interaction)
            await send(interaction, await self.off_loop(self._prompt_text, interaction, version))

    def _prompt_text(self, interaction: discord.Interaction, version: int | None) -> str:
        com = community_for_guild(self.db, self.settings, interaction.guild_id)
        moderator = require_moderator(self.db, interaction, com)
        if version is not None:
            prompt_id = prompts.version_id(self.db, version, community_id=com.id)
            prompts.activate(self.db, com.id, prompt_id, actor_id=moderator)
        active = prompts.active_prompt(self.db, com.id)
        return render.prompt_text(active, prompts.list_versions(self.db, community_id=com.id))

    @note.command(name="unpublish", description="Hide a revealed note everywhere (moderators)")
    @app_commands.describe(note="The note's number (#n in its footer)", reason="Why (kept in the audit log)")
    async def note_unpublish(self, interaction: discord.Interaction, note: int, reason: str) -> None:
        async with guarded(interaction, "note unpublish"):
            await defer(interaction)
            await self.off_loop(self._unpublish, interaction, note, reason)
            removed = await take_down(self.bot, self.db, note, self.off_loop)
            suffix = " and its Discord message was deleted" if removed else ""
            await send(interaction, f"Note #{note} is unpublished{suffix}.")

    def _unpublish(self, interaction: discord.Interaction, note: int, reason: str) -> None:
        com = community_for_guild(self.db, self.settings, interaction.guild_id)
        moderator = require_moderator(self.db, interaction, com)
        moderation.unpublish(self.db, moderator, note, reason)

    @informer.command(name="ban", description="Ban a member from offering notes (moderators)")
    @app_commands.describe(user="The informer", reason="Why (kept in the audit log)")
    async def informer_ban(self, interaction: discord.Interaction, user: discord.User, reason: str) -> None:
        async with guarded(interaction, "informer ban"):
            await defer(interaction)
            name = await self.off_loop(self._ban, interaction, user, reason)
            await send(interaction, f"{user.mention} can no longer offer notes in {name}.")

    def _ban(self, interaction: discord.Interaction, user: discord.User, reason: str) -> str:
        com = community_for_guild(self.db, self.settings, interaction.guild_id)
        moderator = require_moderator(self.db, interaction, com)
        moderation.ban(self.db, moderator, account_for_user(self.db, user), com.id, reason)
        return com.name

    @informer.command(name="unban", description="Lift a member's ban (moderators)")
    @app_commands.describe(user="The banned member")
    async def informer_unban(self, interaction: discord.Interaction, user: discord.User) -> None:
        async with guarded(interaction, "informer unban"):
            await defer(interaction)
            name = await self.off_loop(self._unban, interaction, user)
            await send(interaction, f"{user.mention} can offer notes in {name} again.")

    def _unban(self, interaction: discord.Interaction, user: discord.User) -> str:
        com = community_for_guild(self.db, self.settings, interaction.guild_id)
        moderator = require_moderator(self.db, interaction, com)
        moderation.unban(self.db, moderator, account_for_user(self.db, user), com.id)
        return com.name

    # --- watching ----------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Open a market on a check-worthy message in a watched channel."""
        own_id = self.bot.user.id if self.bot.user is not None else None
        cfg = self.settings.discord
        if not watch.is_watched(cfg, message, own_id) or not watch.worth_a_market(cfg, message):
            return
        try:
            market_id, created = await self.off_loop(self._open_watched, message)
        except NotebazaarError as exc:
            log.info("message %s opened no market: %s", message.id, type(exc).__name__)
            return
        except Exception as exc:
            log_failure(message.id, "watch", exc)
            return
        if created:
            log.info("watcher opened market %s on message %s", market_id, message.id)
            await watch.announce(message)

    def _open_watched(self, message: discord.Message) -> tuple[int, bool]:
        com = community_for_guild(self.db, self.settings, message.guild.id if message.guild else None)
        return watch.open_for_message(self.db, com, message)
