"""Rating a revealed note from its Discord message, and editing the message when readers hide it.

Every reveal embed carries three buttons (Helpful, Somewhat, Not helpful). They are *dynamic
items* (``discord.ui.DynamicItem``): the note id and the level live in the button's custom id
(``nb:rate:<note id>:<level>``), and the bot registers the item class at start-up, so buttons on
messages posted before a restart keep working. A press maps the Discord user to its account as
every command does, calls :func:`notebazaar.pipeline.ratings.rate` and answers ephemerally;
a refusal (own note, banned, the same rating again, a hidden note) is answered with its reason.

When the bridging scorer (or a moderator) hides a note, :func:`take_down_hidden` edits its message:
the note's text is replaced by the reason and the buttons are removed.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import discord
from sqlite_utils import Database

from notebazaar.bot.discord.interactions import PLATFORM, account_for_user, defer, guarded, send
from notebazaar.bot.discord.refs import split_external_id
from notebazaar.pipeline import outbox
from notebazaar.pipeline.ratings import rate

log = logging.getLogger(__name__)

LEVEL_LABELS = {"helpful": "Helpful", "somewhat_helpful": "Somewhat", "not_helpful": "Not helpful"}
LEVEL_STYLES = {
    "helpful": discord.ButtonStyle.success,
    "somewhat_helpful": discord.ButtonStyle.secondary,
    "not_helpful": discord.ButtonStyle.danger,
}


def custom_id(reveal_id: int, level: str) -> str:
    return f"nb:rate:{reveal_id}:{level}"


class RateButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"nb:rate:(?P<reveal>[0-9]{1,12}):(?P<level>helpful|somewhat_helpful|not_helpful)",
):
    """One rating button; rebuilt from its custom id after a restart."""

    def __init__(self, reveal_id: int, level: str) -> None:
        super().__init__(
            discord.ui.Button(
                label=LEVEL_LABELS[level], style=LEVEL_STYLES[level], custom_id=custom_id(reveal_id, level)
            )
        )
        self.reveal_id = reveal_id
        self.level = level

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RateButton:
        return cls(int(match["reveal"]), match["level"])

    async def callback(self, interaction: discord.Interaction) -> None:
        client: Any = interaction.client
        async with guarded(interaction, "rate note"):
            await defer(interaction)  # the database may be busy for more than Discord's 3 s
            # Off the event loop, like every database call of the bot (notebazaar.bot.discord.offloop).
            rating = await client.off_loop(_rate_as, client.db, interaction.user, self.reveal_id, self.level)
            verb = "rated" if rating.changed == "new" else "changed your rating of"
            await send(
                interaction,
                f"Thanks: you {verb} note #{rating.reveal_id} **{LEVEL_LABELS[rating.level].lower()}**."
                " Ratings from readers who usually disagree decide which notes stay shown.",
            )


def _rate_as(db: Database, user: discord.abc.User, reveal_id: int, level: str) -> Any:
    return rate(db, reveal_id, account_for_user(db, user), level, surface=PLATFORM)


def rating_view(reveal_id: int) -> discord.ui.View:
    """The buttons under a reveal embed (a persistent view: no timeout)."""
    view = discord.ui.View(timeout=None)
    for level in LEVEL_LABELS:
        view.add_item(RateButton(reveal_id, level))
    return view


def hidden_embed(reveal_id: int, reason: str) -> discord.Embed:
    return discord.Embed(
        title="Community note hidden",
        description=f"Note #{reveal_id} is hidden: {discord.utils.escape_markdown(reason)}.",
        colour=discord.Colour.dark_grey(),
    )


THREAD_ARCHIVED = 50083  # Discord's error code for a message edit in an archived thread


def _permanent(exc: discord.HTTPException) -> bool:
    """A refusal that no retry will change (a 4xx other than rate limiting)."""
    return 400 <= exc.status < 500 and exc.status != 429


async def _edit_hidden(client: Any, item: outbox.PendingTakedown) -> None:
    channel_id, message_id = split_external_id(item.external_id)
    channel = client.get_channel(channel_id) or await client.fetch_channel(channel_id)
    message = channel.get_partial_message(message_id)
    try:
        await message.edit(embed=hidden_embed(item.reveal_id, item.reason), view=None)
    except discord.HTTPException as exc:
        if exc.code != THREAD_ARCHIVED or not isinstance(channel, discord.Thread):
            raise
        await channel.edit(archived=False)  # threads archive after a day; a bot must reopen them
        await message.edit(embed=hidden_embed(item.reveal_id, item.reason), view=None)


async def take_down_hidden(client: Any, db: Database) -> list[int]:
    """Edit the message of every delivered note that was hidden since; returns the outbox ids done.
    A message that is gone counts as done; one Discord refuses for good (a 4xx, a malformed
    reference) is marked failed, so it never holds up the others; 5xx and 429 are tried again."""
    done: list[int] = []
    off_loop = client.off_loop  # every database call off the event loop
    for item in await off_loop(outbox.pending_takedowns, db, PLATFORM):
        try:
            await _edit_hidden(client, item)
        except discord.NotFound:
            await off_loop(outbox.mark_taken_down, db, item.outbox_id)  # the message is gone already
            done.append(item.outbox_id)
            continue
        except (discord.HTTPException, ValueError, AttributeError) as exc:
            failed = not isinstance(exc, discord.HTTPException) or _permanent(exc)
            log.warning(
                "could not edit the message of hidden note %s: %s%s",
                item.reveal_id,
                type(exc).__name__,
                " (given up)" if failed else " (will retry)",
            )
            if failed:
                await off_loop(outbox.mark_taken_down, db, item.outbox_id, failed=True)
            continue
        await off_loop(outbox.mark_taken_down, db, item.outbox_id)
        done.append(item.outbox_id)
        log.info("hidden note %s: its Discord message was edited", item.reveal_id)
    return done
