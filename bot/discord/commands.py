"""Slash commands, the "Request notes" message menu and the channel watcher, as one cog.

Each callback translates a Discord interaction into one pipeline call and its result back into an
ephemeral answer. Market rules live in :mod:`notebazaar.pipeline`; the only decision made here is
who counts as a moderator (see :func:`notebazaar.bot.discord.interactions.require_moderator`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

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
        self.request_notes_menu = app_commands.ContextMenu(name="Request notes", callback=self.request_notes)
        self.request_notes_menu.guild_only = True

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.request_notes_menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.request_notes_menu.name, type=self.request_notes_menu.type)

    # --- informers ---------------------------------------------------------------------------

    @note.command(name="submit", description="Offer a sealed note on a post, with a bid and a price")
    @app_commands.describe(post="Message link or id (you can also paste it in the form)")
    async def note_submit(self, interaction: discord.Interaction, post: str | None = None) -> None:
        async with guarded(interaction, "note submit"):
            community_for_guild(self.db, self.settings, interaction.guild_id)  # fail before the form
            # The modal must be the first response: nothing slow and no defer before it.
            await interaction.response.send_modal(NoteModal(self.db, self.settings, post=post))

    @note.command(name="submarket", description="Offer a sealed note about an offer, into its sub-market")
    @app_commands.describe(market="The sub-market's id (/market show lists a post's open sub-markets)")
    async def note_submarket(
        self, interaction: discord.Interaction, market: app_commands.Range[int, 1]
    ) -> None:
        async with guarded(interaction, "note submarket"):
            com = community_for_guild(self.db, self.settings, interaction.guild_id)
            target = queries.open_sub_market(self.db, market, com.id)  # refuse before the form
            await interaction.response.send_modal(SubNoteModal(self.db, self.settings, target))

    @note_submarket.autocomplete("market")
    async def sub_market_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[int]]:
        """Open sub-markets of this server's community, by id or by their offer's teaser."""
        try:
            com = community_for_guild(self.db, self.settings, interaction.guild_id)
        except NotebazaarError:
            return []
        wanted = current.strip().lstrip("#").lower()
        found = [
            s
            for s in queries.open_sub_markets(self.db, com.id)
            if not wanted or str(s.id).startswith(wanted) or wanted in s.teaser.lower()
        ]
        return [app_commands.Choice(name=render.sub_market_choice(s), value=s.id) for s in found[:25]]

    @note.command(name="status", description="Your offers and what became of them")
    async def note_status(self, interaction: discord.Interaction) -> None:
        async with guarded(interaction, "note status"):
            account = account_for_user(self.db, interaction.user)
            await send(interaction, render.offers_text(queries.informer_offers(self.db, account)))

    @app_commands.command(name="wallet", description="Your credits")
    async def wallet(self, interaction: discord.Interaction) -> None:
        async with guarded(interaction, "wallet"):
            account = account_for_user(self.db, interaction.user)
            handle = community.get_account(self.db, account)["handle"]
            balance = ledger.balance(self.db, ledger.wallet(account))
            await send(
                interaction,
                f"Wallet of `{handle}`: **{balance}** credits, {queries.escrowed(self.db, account)} more held"
                f" in escrow for sealed bids; {queries.earned(self.db, account)} earned from notes so far.\n"
                "Credits are issued by the operator (`notebazaar credits mint <handle> <amount>`).",
            )

    @pool.command(name="fund", description="Move credits from your wallet into the community pool")
    @app_commands.describe(amount="Credits to move")
    async def pool_fund(self, interaction: discord.Interaction, amount: int) -> None:
        async with guarded(interaction, "pool fund"):
            await defer(interaction)
            com = community_for_guild(self.db, self.settings, interaction.guild_id)
            account = account_for_user(self.db, interaction.user)
            community.fund_pool(self.db, com.id, account, amount)
            pool_balance = ledger.balance(self.db, ledger.pool(com.id))
            await send(
                interaction, f"Moved {amount} credits into the {com.name} pool; it now holds {pool_balance}."
            )

    @market.command(name="show", description="A market's state")
    @app_commands.describe(post="Message link or id of the post")
    async def market_show(self, interaction: discord.Interaction, post: str) -> None:
        async with guarded(interaction, "market show"):
            com = community_for_guild(self.db, self.settings, interaction.guild_id)
            found = queries.find_post(self.db, parse_message_ref(post), com.id)
            market_row = queries.market_for_post(self.db, int(found["id"]))
            view = market_core.market_view(self.db, int(market_row["id"]))
            await send(interaction, embed=render.market_embed(view))

    async def request_notes(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Message menu "Request notes": open a market on the message."""
        async with guarded(interaction, "request notes"):
            await defer(interaction)
            com = community_for_guild(self.db, self.settings, interaction.guild_id)
            requester = account_for_user(self.db, interaction.user)
            if community.is_banned(self.db, requester, com.id):
                raise Forbidden("you are banned from this community's market")
            if self.bot.user is not None and message.author.id == self.bot.user.id:
                raise Forbidden("that is a notebazaar message; request notes on a member's post")
            market_id, created = watch.open_for_message(self.db, com, message)
            if created:
                await watch.announce(message)
            closes = int(market_core.get_market(self.db, market_id)["closes_at"])
            verb = "Opened" if created else "There already is"
            await send(
                interaction,
                f"{verb} market #{market_id} on that message; bidding closes <t:{closes}:R>.\n"
                f"Informers: `/note submit post:{message.jump_url}`",
            )

    # --- moderators --------------------------------------------------------------------------

    @judge.command(name="prompt", description="Show the judge's prompt versions, or activate one")
    @app_commands.describe(version="Version number to activate (leave empty to show)")
    async def judge_prompt(self, interaction: discord.Interaction, version: int | None = None) -> None:
        async with guarded(interaction, "judge prompt"):
            com = community_for_guild(self.db, self.settings, interaction.guild_id)
            moderator = require_moderator(self.db, interaction, com)
            if version is not None:
                prompt_id = prompts.version_id(self.db, version, community_id=com.id)
                prompts.activate(self.db, com.id, prompt_id, actor_id=moderator)
            active = prompts.active_prompt(self.db, com.id)
            await send(
                interaction, render.prompt_text(active, prompts.list_versions(self.db, community_id=com.id))
            )

    @note.command(name="unpublish", description="Hide a revealed note everywhere (moderators)")
    @app_commands.describe(note="The note's number (#n in its footer)", reason="Why (kept in the audit log)")
    async def note_unpublish(self, interaction: discord.Interaction, note: int, reason: str) -> None:
        async with guarded(interaction, "note unpublish"):
            await defer(interaction)
            com = community_for_guild(self.db, self.settings, interaction.guild_id)
            moderator = require_moderator(self.db, interaction, com)
            moderation.unpublish(self.db, moderator, note, reason)
            removed = await take_down(self.bot, self.db, note)
            suffix = " and its Discord message was deleted" if removed else ""
            await send(interaction, f"Note #{note} is unpublished{suffix}.")

    @informer.command(name="ban", description="Ban a member from offering notes (moderators)")
    @app_commands.describe(user="The informer", reason="Why (kept in the audit log)")
    async def informer_ban(self, interaction: discord.Interaction, user: discord.User, reason: str) -> None:
        async with guarded(interaction, "informer ban"):
            com = community_for_guild(self.db, self.settings, interaction.guild_id)
            moderator = require_moderator(self.db, interaction, com)
            target = account_for_user(self.db, user)
            moderation.ban(self.db, moderator, target, com.id, reason)
            await send(interaction, f"{user.mention} can no longer offer notes in {com.name}.")

    @informer.command(name="unban", description="Lift a member's ban (moderators)")
    @app_commands.describe(user="The banned member")
    async def informer_unban(self, interaction: discord.Interaction, user: discord.User) -> None:
        async with guarded(interaction, "informer unban"):
            com = community_for_guild(self.db, self.settings, interaction.guild_id)
            moderator = require_moderator(self.db, interaction, com)
            moderation.unban(self.db, moderator, account_for_user(self.db, user), com.id)
            await send(interaction, f"{user.mention} can offer notes in {com.name} again.")

    # --- watching ----------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Open a market on a check-worthy message in a watched channel."""
        own_id = self.bot.user.id if self.bot.user is not None else None
        cfg = self.settings.discord
        if not watch.is_watched(cfg, message, own_id) or not watch.worth_a_market(cfg, message):
            return
        try:
            com = community_for_guild(self.db, self.settings, message.guild.id if message.guild else None)
            market_id, created = watch.open_for_message(self.db, com, message)
        except NotebazaarError as exc:
            log.info("message %s opened no market: %s", message.id, type(exc).__name__)
            return
        except Exception as exc:
            log_failure(message.id, "watch", exc)
            return
        if created:
            log.info("watcher opened market %s on message %s", market_id, message.id)
            await watch.announce(message)
