"""The sealed-note modal behind ``/note submit``.

A modal holds at most five top-level components. Ours: the post (message link or id), the
classification (a select, which discord.py 2.6+ supports inside a ``Label`` in modals), the note,
the sources (one per line) and the terms (bid and price, e.g. ``5 20``). The modal is the first
response to the slash command; its submission is a new interaction, which this module answers
with an ephemeral receipt. The note's text is never logged.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import discord
from discord import ui

from bot.discord import queries, render
from bot.discord.interactions import (
    account_for_user,
    community_for_guild,
    defer,
    guarded,
    report_error,
    send,
)
from bot.discord.refs import parse_message_ref
from pipeline import market
from pipeline.errors import ValidationError

if TYPE_CHECKING:
    from sqlite_utils import Database

    from pipeline.config import Settings

TEXT_INPUT_MAX = 4000  # Discord's limit for one text input
_TERMS_WORDS = re.compile(r"\b(bid|price)\b[:=]?", re.IGNORECASE)


def parse_terms(value: str) -> tuple[int, int]:
    """``"5 20"``, ``"5, 20"`` or ``"bid 5 price 20"`` -> (bid, price). Bounds are the core's to check."""
    tokens = [t for t in re.split(r"[\s,;/]+", _TERMS_WORDS.sub(" ", value or "")) if t]
    if len(tokens) != 2 or not all(re.fullmatch(r"[+-]?\d{1,18}", t) for t in tokens):
        raise ValidationError(
            "terms must be two whole numbers of credits, your bid then your price, e.g. '5 20'"
        )
    return int(tokens[0]), int(tokens[1])


class NoteModal(ui.Modal, title="Offer a sealed note"):
    def __init__(self, db: Database, settings: Settings, *, post: str | None = None) -> None:
        super().__init__(timeout=900)
        self.db = db
        self.settings = settings
        self.post = ui.TextInput(
            custom_id="post", default=post, placeholder="https://discord.com/channels/…", max_length=200
        )
        self.classification: ui.Select[NoteModal] = ui.Select(
            custom_id="classification",
            required=True,
            min_values=1,
            max_values=1,
            options=[
                discord.SelectOption(label="Misleading", value="misleading"),
                discord.SelectOption(label="Not misleading", value="not_misleading"),
            ],
        )
        self.note = ui.TextInput(
            custom_id="note",
            style=discord.TextStyle.paragraph,
            max_length=min(TEXT_INPUT_MAX, settings.limits.max_note_chars),
        )
        self.sources = ui.TextInput(
            custom_id="sources",
            style=discord.TextStyle.paragraph,
            required=False,
            placeholder="one link or citation per line",
            max_length=TEXT_INPUT_MAX,
        )
        self.terms = ui.TextInput(custom_id="terms", placeholder="5 20", max_length=40)
        self.add_item(ui.Label(text="Post", description="Message link or message id", component=self.post))
        self.add_item(
            ui.Label(
                text="Classification", description="Is the post misleading?", component=self.classification
            )
        )
        self.add_item(ui.Label(text="Note", description="What readers should know", component=self.note))
        self.add_item(ui.Label(text="Sources", description="Optional, one per line", component=self.sources))
        self.add_item(
            ui.Label(
                text="Bid and price (credits)",
                description="Bid: paid for the judge's attention. Price: paid only if bought. E.g. 5 20",
                component=self.terms,
            )
        )

    def seal(self, interaction: discord.Interaction) -> market.Receipt:
        """Validate the form and seal the offer (the core checks amounts, limits and bans)."""
        com = community_for_guild(self.db, self.settings, interaction.guild_id)
        informer = account_for_user(self.db, interaction.user)
        post = queries.find_post(self.db, parse_message_ref(self.post.value), com.id)
        market_row = queries.market_for_post(self.db, int(post["id"]))
        bid, price = parse_terms(self.terms.value)
        values = self.classification.values
        sources = [line.strip() for line in self.sources.value.splitlines() if line.strip()]
        return market.submit_offer(
            self.db,
            int(market_row["id"]),
            informer,
            classification=values[0] if values else None,
            text=self.note.value,
            sources=sources,
            bid=bid,
            price=price,
            limits=self.settings.limits,
        )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        async with guarded(interaction, "note submit"):
            await defer(interaction)
            receipt = self.seal(interaction)
            await send(interaction, render.receipt_text(receipt))

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        await report_error(interaction, "note modal", error)
