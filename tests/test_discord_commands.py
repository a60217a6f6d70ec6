"""Slash commands and the "Request notes" menu, driven through their real callbacks."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from unittest.mock import patch

import pytest
from sqlite_utils import Database

from notebazaar.bot.discord import queries
from notebazaar.bot.discord.commands import NotebazaarCog
from notebazaar.bot.discord.watch import MARKET_OPEN_REACTION
from notebazaar.pipeline import community, ledger, market, prompts
from notebazaar.pipeline.config import Settings
from tests.conftest import World
from tests.test_discord_fakes import (
    CLAIM,
    GUILD_ID,
    QUIET,
    FakeDiscord,
    FakeMessage,
    make_bot,
    make_interaction,
    make_user,
    only_answer,
)
from tests.test_discord_fakes import discord_settings as _discord_settings


@pytest.fixture
def settings() -> Settings:
    return _discord_settings()


@pytest.fixture
def cog(db: Database, db_path: Path, settings: Settings, world: World) -> NotebazaarCog:
    return make_bot(db_path, settings, db)[1]


@pytest.fixture
def message() -> FakeMessage:
    return FakeDiscord().channel(QUIET).message(CLAIM, make_user("poster"))


def _request(cog: NotebazaarCog, message: FakeMessage, user: object = None) -> object:
    interaction = make_interaction(user or make_user("reader"))  # type: ignore[arg-type]
    asyncio.run(cog.request_notes(interaction, message))  # type: ignore[arg-type]
    return interaction


def test_request_notes_opens_a_market_on_the_message(
    db: Database, cog: NotebazaarCog, message: FakeMessage, world: World
) -> None:
    interaction = _request(cog, message)
    answer = only_answer(interaction)  # type: ignore[arg-type]
    assert answer.ephemeral and "Opened market #" in (answer.content or "")
    post = db.execute("SELECT * FROM posts WHERE platform = 'discord'").fetchall()
    assert len(post) == 1
    row = next(db["posts"].rows_where("platform = 'discord'"))
    assert row["external_id"] == f"{QUIET}:{message.id}"
    assert row["url"] == message.jump_url and row["text"] == CLAIM
    opened = queries.market_for_post(db, row["id"])
    assert opened["status"] == "open" and opened["budget"] == 200  # budget_per_market from the pool
    message.add_reaction.assert_awaited_once_with(MARKET_OPEN_REACTION)

    again = _request(cog, message)
    assert f"There already is market #{opened['id']}" in (only_answer(again).content or "")  # type: ignore[arg-type]
    assert db["markets"].count == 1
    message.add_reaction.assert_awaited_once()


def test_request_notes_on_an_empty_message_is_refused(db: Database, cog: NotebazaarCog) -> None:
    empty = FakeDiscord().channel(QUIET).message("   ", make_user("poster"))
    answer = only_answer(_request(cog, empty))  # type: ignore[arg-type]
    assert answer.ephemeral and "no text" in (answer.content or "")
    assert db["markets"].count == 0


def test_context_menu_is_registered_as_a_message_command(cog: NotebazaarCog) -> None:
    menu = cog.request_notes_menu
    assert menu.name == "Request notes" and menu.type.name == "message"


@pytest.mark.parametrize("command", ["judge_prompt", "note_unpublish", "informer_ban"])
def test_moderator_commands_deny_non_moderators(
    db: Database, cog: NotebazaarCog, world: World, command: str
) -> None:
    prompt_v2 = prompts.create_version(db, "a stricter judge prompt", actor_id=None)
    victim = make_user("victim")
    args = {
        "judge_prompt": {"version": 2},
        "note_unpublish": {"note": 1, "reason": "spam"},
        "informer_ban": {"user": victim, "reason": "spam"},
    }[command]
    interaction = make_interaction(make_user("member"))
    audit_before = db["audit_log"].count
    asyncio.run(getattr(cog, command).callback(cog, interaction, **args))
    answer = only_answer(interaction)
    assert answer.ephemeral and "only a moderator" in (answer.content or "")
    assert db["bans"].count == 0
    assert community.get_community(db, world.community_id).active_prompt_id != prompt_v2
    assert db["audit_log"].count == audit_before


def test_manage_server_members_become_moderators_and_can_ban(
    db: Database, cog: NotebazaarCog, world: World
) -> None:
    admin = make_user("admin", manage_guild=True)
    victim = make_user("victim")
    interaction = make_interaction(admin)
    asyncio.run(cog.informer_ban.callback(cog, interaction, user=victim, reason="sockpuppet"))
    assert "can no longer offer notes" in (only_answer(interaction).content or "")
    admin_account = community.account_for_identity(db, "discord", str(admin.id), admin.name)
    victim_account = community.account_for_identity(db, "discord", str(victim.id), victim.name)
    assert community.has_role(db, admin_account, world.community_id, "moderator")
    assert community.is_banned(db, victim_account, world.community_id)
    actions = [r["action"] for r in db["audit_log"].rows_where("actor_id = ?", [admin_account])]
    assert actions == ["role.grant", "informer.ban"]


def test_a_moderator_unbans_on_discord_but_cannot_ban_himself(
    db: Database, cog: NotebazaarCog, world: World
) -> None:
    admin = make_user("admin", manage_guild=True)
    victim = make_user("victim")
    interaction = make_interaction(admin)
    asyncio.run(cog.informer_ban.callback(cog, interaction, user=admin, reason="oops"))
    assert "cannot ban yourself" in (only_answer(interaction).content or "")
    asyncio.run(cog.informer_ban.callback(cog, make_interaction(admin), user=victim, reason="spam"))
    interaction = make_interaction(admin)
    asyncio.run(cog.informer_unban.callback(cog, interaction, user=victim))
    assert "can offer notes in" in (only_answer(interaction).content or "")
    victim_account = community.account_for_identity(db, "discord", str(victim.id), victim.name)
    assert not community.is_banned(db, victim_account, world.community_id)
    interaction = make_interaction(admin)
    asyncio.run(cog.informer_unban.callback(cog, interaction, user=victim))
    assert "is not banned" in (only_answer(interaction).content or "")


def test_moderator_shows_and_activates_judge_prompt_versions(
    db: Database, cog: NotebazaarCog, world: World
) -> None:
    mod_user = make_user("modder")
    account = community.account_for_identity(db, "discord", str(mod_user.id), mod_user.name)
    community.grant(db, account, world.community_id, "moderator")
    v2 = prompts.create_version(
        db, "Judge prompt, second edition. Data: $token, $mark.", note="stricter", actor_id=account
    )

    shown = make_interaction(mod_user)
    asyncio.run(cog.judge_prompt.callback(cog, shown))
    text = only_answer(shown).content or ""
    assert "Active judge prompt: v1" in text and "v2" in text and "stricter" in text

    activated = make_interaction(mod_user)
    asyncio.run(cog.judge_prompt.callback(cog, activated, version=2))
    assert "Active judge prompt: v2" in (only_answer(activated).content or "")
    assert community.get_community(db, world.community_id).active_prompt_id == v2

    missing = make_interaction(mod_user)
    asyncio.run(cog.judge_prompt.callback(cog, missing, version=9))
    assert "no version 9" in (only_answer(missing).content or "")
    assert community.get_community(db, world.community_id).active_prompt_id == v2


def test_wallet_pool_fund_and_note_status(
    db: Database, cog: NotebazaarCog, world: World, message: FakeMessage
) -> None:
    user = make_user("bob")
    account = community.account_for_identity(db, "discord", str(user.id), user.name)
    community.mint(db, account, 300, key="test:discord:bob")

    wallet = make_interaction(user)
    asyncio.run(cog.wallet.callback(cog, wallet))
    wallet_text = only_answer(wallet).content or ""
    assert "**300** credits" in wallet_text and "`discord:bob`" in wallet_text

    pool_before = ledger.balance(db, ledger.pool(world.community_id))
    fund = make_interaction(user)
    asyncio.run(cog.pool_fund.callback(cog, fund, amount=100))
    assert "Moved 100 credits" in (only_answer(fund).content or "")
    assert ledger.balance(db, ledger.pool(world.community_id)) == pool_before + 100
    assert ledger.balance(db, ledger.wallet(account)) == 200

    refused = make_interaction(user)
    asyncio.run(cog.pool_fund.callback(cog, refused, amount=-5))
    assert "amount must be at least 1" in (only_answer(refused).content or "")
    assert ledger.balance(db, ledger.wallet(account)) == 200

    _request(cog, message)
    post = next(db["posts"].rows_where("platform = 'discord'"))
    market_id = queries.market_for_post(db, post["id"])["id"]
    market.submit_offer(
        db, market_id, account, classification="misleading", text="secret words", bid=4, price=9
    )
    status = make_interaction(user)
    asyncio.run(cog.note_status.callback(cog, status))
    text = only_answer(status).content or ""
    assert f"market #{market_id}: **sealed**" in text and "bid 4, price 9" in text
    assert "secret words" not in text

    shown = make_interaction(user)
    asyncio.run(cog.market_show.callback(cog, shown, post=message.jump_url))
    embed = only_answer(shown).embed
    assert embed is not None and embed.title == f"Market #{market_id}: open"
    assert {f.name: f.value for f in embed.fields}["Sealed offers"] == "1"


def test_guild_commands_in_a_dm_are_refused(cog: NotebazaarCog) -> None:
    interaction = make_interaction(make_user("dm"), guild_id=None)
    asyncio.run(cog.pool_fund.callback(cog, interaction, amount=5))
    assert "linked to a notebazaar community" in (only_answer(interaction).content or "")


def test_unexpected_errors_get_a_generic_message_and_no_text_in_logs(
    cog: NotebazaarCog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    interaction = make_interaction(make_user("carol"))
    with patch.object(queries, "informer_offers", side_effect=RuntimeError("sealed note text here")):
        asyncio.run(cog.note_status.callback(cog, interaction))
    answer = only_answer(interaction)
    assert answer.ephemeral and f"logged as interaction {interaction.id}" in (answer.content or "")
    assert "sealed note text here" not in caplog.text and "Traceback" not in (answer.content or "")
    assert f"interaction {interaction.id} (note status) failed: RuntimeError" in caplog.text


def test_guild_ids_come_from_config(settings: Settings) -> None:
    assert settings.discord.guilds == {str(GUILD_ID): "testers"}


def test_errors_escaping_a_command_reach_the_user_politely(cog: NotebazaarCog) -> None:
    from discord import app_commands

    from notebazaar.pipeline.errors import Forbidden

    tree = cog.bot.tree
    refused = make_interaction(make_user("dave"))
    wrapped = app_commands.CommandInvokeError(cog.wallet, Forbidden("not you"))
    asyncio.run(tree.on_error(refused, wrapped))
    assert only_answer(refused).content == "not you" and only_answer(refused).ephemeral

    broken = make_interaction(make_user("erin"))
    broken.response._done = True  # already deferred: the message goes out as a follow-up
    asyncio.run(tree.on_error(broken, app_commands.AppCommandError("boom")))
    assert (
        broken.followup.messages[0].ephemeral
        and "logged as interaction" in broken.followup.messages[0].content
    )
