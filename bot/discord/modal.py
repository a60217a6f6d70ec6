"""The sealed-note modals behind ``/note submit`` and ``/note submarket``.

A modal holds at most five top-level components. Ours: the subject, the classification (a select,
which discord.py 2.6+ supports inside a ``Label`` in modals), the note, the sources (one per line)
and the terms (bid and price, e.g. ``5 20``). The subject is the post (message link or id) for a
note on a post, or, for a sub-note, a text display naming the sub-market and the public teaser of
the offer it is about. The modal is the first response to the slash command; its submission is a
new interaction, which this module answers with an ephemeral receipt: it defers first, then seals
the offer off the event loop (:mod:`notebazaar.bot.discord.offloop`). The note's text is never
logged.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import ui

from notebazaar.bot.discord import queries, render
from notebazaar.bot.discord.interactions import (
    account_for_user,
    community_for_guild,
    defer,
    guarded,
    report_error,
    send,
)
from notebazaar.bot.discord.offloop import OffLoop
from notebazaar.bot.discord.refs import parse_message_ref
from notebazaar.pipeline import market
from notebazaar.pipeline.errors import ValidationError

if TYPE_CHECKING:
    from sqlite_utils import Database

    from notebazaar.pipeline.config import Settings

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


log = logging.getLogger(__name__)


async def deliver_receipt(interaction: discord.Interaction, offer_id: int, text: str) -> None:
    """Show a sealed offer's receipt, which carries the only copy of its salt. The offer is sealed
    already, so a failed answer must not read as "try again" (a second offer, a second bid in
    escrow): the follow-up is tried twice, then a direct message; only the offer id is logged."""
    for where in ("follow-up", "follow-up", "direct message"):
        try:
            if where == "direct message":
                await interaction.user.send(text)
            else:
                await send(interaction, text)
            return
        except discord.HTTPException as exc:
            failure = type(exc).__name__
            log.warning("offer %s is sealed; its receipt (%s) failed: %s", offer_id, where, failure)
    log.error("offer %s is sealed, but Discord refused every way to show its receipt", offer_id)


class _SealedNoteForm(ui.Modal):
    """The fields every sealed note has (classification, note, sources, terms) under a subject the
    subclass puts first, and the one pipeline call that seals it."""

    action = "note submit"
    classifications: tuple[tuple[str, str], ...] = (
        ("misleading", "Misleading"),
        ("not_misleading", "Not misleading"),
    )
    classification_help = "Is the post misleading?"
    note_help = "What readers should know"

    def __init__(
        self,
        db: Database,
        settings: Settings,
        subject: ui.Item[Any],
        *,
        title: str,
        off_loop: OffLoop | None = None,
    ) -> None:
        super().__init__(title=title, timeout=900)
        self.db = db
        self.settings = settings
        self.off_loop = off_loop or OffLoop()
        self.classification: ui.Select[_SealedNoteForm] = ui.Select(
            custom_id="classification",
            required=True,
            min_values=1,
            max_values=1,
            options=[discord.SelectOption(label=label, value=value) for value, label in self.classifications],
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
        self.add_item(subject)
        self.add_item(
            ui.Label(
                text="Classification", description=self.classification_help, component=self.classification
            )
        )
        self.add_item(ui.Label(text="Note", description=self.note_help, component=self.note))
        self.add_item(ui.Label(text="Sources", description="Optional, one per line", component=self.sources))
        self.add_item(
            ui.Label(
                text="Bid and price (credits)",
                description="Bid: paid for the judge's attention. Price: paid only if bought. E.g. 5 20",
                component=self.terms,
            )
        )

    def target_market(self, community_id: int) -> int:
        """The id of the market the note goes into (a refusal if there is none to offer into)."""
        raise NotImplementedError

    def receipt_text(self, receipt: market.Receipt) -> str:
        return render.receipt_text(receipt)

    def seal(self, interaction: discord.Interaction) -> market.Receipt:
        """Validate the form and seal the offer (the core checks amounts, limits and bans)."""
        com = community_for_guild(self.db, self.settings, interaction.guild_id)
        informer = account_for_user(self.db, interaction.user)
        market_id = self.target_market(com.id)
        bid, price = parse_terms(self.terms.value)
        values = self.classification.values
        sources = [line.strip() for line in self.sources.value.splitlines() if line.strip()]
        return market.submit_offer(
            self.db,
            market_id,
            informer,
            classification=values[0] if values else None,
            text=self.note.value,
            sources=sources,
            bid=bid,
            price=price,
            limits=self.settings.limits,
        )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        async with guarded(interaction, self.action):
            await defer(interaction)
            receipt = await self.off_loop(self.seal, interaction)
            await deliver_receipt(interaction, receipt.offer_id, self.receipt_text(receipt))

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        await report_error(interaction, "note modal", error)


class NoteModal(_SealedNoteForm):
    """``/note submit``: a sealed note on a post, named by message link or id."""

    def __init__(
        self, db: Database, settings: Settings, *, post: str | None = None, off_loop: OffLoop | None = None
    ) -> None:
        self.post = ui.TextInput(
            custom_id="post", default=post, placeholder="https://discord.com/channels/…", max_length=200
        )
        subject = ui.Label(text="Post", description="Message link or message id", component=self.post)
        super().__init__(db, settings, subject, title="Offer a sealed note", off_loop=off_loop)

    def target_market(self, community_id: int) -> int:
        post = queries.find_post(self.db, parse_message_ref(self.post.value), community_id)
        return int(queries.market_for_post(self.db, int(post["id"]))["id"])


class SubNoteModal(_SealedNoteForm):
    """``/note submarket``: a sealed sub-note into an open sub-market, which is about one offer.

    The form shows the offer's public teaser (never its sealed note) and what the classification
    means there; the sub-market is checked again on submit, since it may have closed meanwhile."""

    action = "note submarket"
    classifications = (
        ("misleading", "Misleading: the offer is unreliable"),
        ("not_misleading", "Not misleading: the offer holds up"),
    )
    classification_help = "Is the offer this sub-market is about misleading?"
    note_help = "What the judge should know about that offer"

    def __init__(
        self, db: Database, settings: Settings, target: queries.SubMarket, *, off_loop: OffLoop | None = None
    ) -> None:
        self.target = target
        subject = ui.TextDisplay(render.sub_market_subject(target))
        super().__init__(db, settings, subject, title=render.sub_note_title(target), off_loop=off_loop)

    def target_market(self, community_id: int) -> int:
        self.target = queries.open_sub_market(self.db, self.target.id, community_id)
        return self.target.id

    def receipt_text(self, receipt: market.Receipt) -> str:
        return render.sub_receipt_text(receipt, self.target)
