"""Rating notes from Discord: buttons on every reveal embed that survive a restart, an ephemeral
answer for each press (refusals included, changing nothing), and the embed edited when readers hide
the note."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import discord
import pytest
from sqlite_utils import Database

from notebazaar.bot.discord.ratings import RateButton, take_down_hidden
from notebazaar.pipeline import community, moderation, outbox, statuses
from notebazaar.pipeline.config import Settings
from tests.conftest import World
from tests.test_core_helpers import snapshot
from tests.test_discord_delivery import _market_with_reveals
from tests.test_discord_fakes import (
    FakeDiscord,
    FakeMessage,
    attach,
    make_bot,
    make_interaction,
    make_user,
    only_answer,
)
from tests.test_discord_fakes import discord_settings as _discord_settings


@pytest.fixture
def settings() -> Settings:
    return _discord_settings()


def _press(bot: object, custom_id: str, user: MagicMock) -> MagicMock:
    """A button press as discord.py dispatches it to a dynamic item: match the custom id against the
    registered template, rebuild the item from it (as after a restart), run its callback."""
    match = RateButton.__discord_ui_compiled_template__.fullmatch(custom_id)
    assert match, custom_id
    interaction = make_interaction(user)
    interaction.client = bot

    async def go() -> None:
        item = await RateButton.from_custom_id(interaction, MagicMock(), match)
        await item.callback(interaction)

    asyncio.run(go())
    return interaction


def _delivered(db: Database, db_path: Path, settings: Settings) -> tuple[Any, FakeMessage, int]:
    """A bot, the message it posted for a revealed note (with its buttons), the note's id."""
    bot, cog = make_bot(db_path, settings, db)
    fake = FakeDiscord()
    attach(bot, fake)
    channel, _, _ = _market_with_reveals(db, settings, cog, fake)
    asyncio.run(bot.delivery.run())
    sent = next(iter(m for m in channel.messages.values() if m.view is not None))
    return bot, sent, int(db.execute("SELECT id FROM reveals").fetchone()[0])


def test_buttons_rate_and_answer_ephemerally(
    db: Database, db_path: Path, settings: Settings, world: World
) -> None:
    bot, sent, reveal_id = _delivered(db, db_path, settings)
    ids = [item.custom_id for item in sent.view.children]
    assert ids == [f"nb:rate:{reveal_id}:{level}" for level in ("helpful", "somewhat_helpful", "not_helpful")]
    assert sent.view.timeout is None  # persistent

    # Registered at start-up, so presses on old messages reach the item after a restart.
    bot.sync_commands = AsyncMock()  # type: ignore[method-assign]
    bot.settle_loop.start = MagicMock()  # type: ignore[method-assign]
    asyncio.run(bot.setup_hook())
    assert RateButton in bot._connection._view_store._dynamic_items.values()

    reader = make_user("reader")
    answer = only_answer(_press(bot, ids[0], reader))
    assert answer.ephemeral and f"rated note #{reveal_id} **helpful**" in (answer.content or "")
    account = community.account_for_identity(db, "discord", str(reader.id), reader.name)
    row = db.execute("SELECT level, surface FROM ratings WHERE account_id = ?", [account]).fetchone()
    assert tuple(row) == ("helpful", "discord")
    changed = only_answer(_press(bot, ids[2], reader))
    assert "changed your rating" in (changed.content or "") and "not helpful" in (changed.content or "")

    before = snapshot(db)
    again = only_answer(_press(bot, ids[2], reader))
    assert again.ephemeral and "already rated" in (again.content or "")
    informer = db.execute(
        "SELECT a.id, i.external_id, a.handle FROM reveals r JOIN accounts a ON a.id = r.informer_id"
        " JOIN identities i ON i.account_id = a.id"
    ).fetchone()
    own = make_user("informer0", user_id=int(informer[1]))
    assert "own note" in (only_answer(_press(bot, ids[0], own)).content or "")
    moderator = community.create_account(db, "mod-x")
    com = community.get_community(db, "testers")
    community.grant(db, moderator, com.id, "moderator")
    banned = make_user("spammer")
    banned_account = community.account_for_identity(db, "discord", str(banned.id), banned.name)
    moderation.ban(db, moderator, banned_account, com.id, "brigading")
    before = snapshot(db)
    assert "banned" in (only_answer(_press(bot, ids[0], banned)).content or "")
    assert "no published note 424242" in (
        only_answer(_press(bot, "nb:rate:424242:helpful", reader)).content or ""
    )
    assert snapshot(db) == before


def test_a_hidden_note_has_its_embed_edited_once(
    db: Database, db_path: Path, settings: Settings, world: World
) -> None:
    bot, sent, reveal_id = _delivered(db, db_path, settings)
    com = community.get_community(db, "testers")
    statuses.hide(db, reveal_id, com.id, statuses.hide_reason(-0.4, 0.0, 7), now=1.0, detail={})
    assert asyncio.run(take_down_hidden(bot, db)) and asyncio.run(take_down_hidden(bot, db)) == []
    assert len(sent.edits) == 1 and sent.edits[0]["view"] is None
    embed = sent.edits[0]["embed"]
    assert embed.title == "Community note hidden" and "readers rated it not helpful" in embed.description
    assert db.execute("SELECT takedown FROM outbox").fetchone()[0] == "done"
    # A press on the old buttons now says why the note can no longer be rated.
    answer = only_answer(_press(bot, f"nb:rate:{reveal_id}:helpful", make_user("late")))
    assert "is hidden" in (answer.content or "")


def test_a_refused_edit_is_given_up_and_a_server_error_tried_again(
    db: Database, db_path: Path, settings: Settings, world: World
) -> None:
    """A 4xx Discord will never change is marked failed, so it cannot hold up the later takedowns;
    a 5xx stays pending for the next pass."""
    bot, sent, reveal_id = _delivered(db, db_path, settings)
    com = community.get_community(db, "testers")
    statuses.hide(db, reveal_id, com.id, statuses.hide_reason(-0.4, 0.0, 7), now=1.0, detail={})
    unavailable = discord.DiscordServerError(MagicMock(status=503, reason="Service Unavailable"), "x")
    sent.edit = AsyncMock(side_effect=unavailable)  # type: ignore[method-assign]
    assert asyncio.run(take_down_hidden(bot, db)) == []
    assert db.execute("SELECT takedown FROM outbox").fetchone()[0] == "pending"
    missing_access = discord.Forbidden(
        MagicMock(status=403, reason="Forbidden"), {"code": 50001, "message": "x"}
    )
    sent.edit = AsyncMock(side_effect=missing_access)  # type: ignore[method-assign]
    assert asyncio.run(take_down_hidden(bot, db)) == []
    assert db.execute("SELECT takedown FROM outbox").fetchone()[0] == "failed"
    assert outbox.pending_takedowns(db, "discord") == []
