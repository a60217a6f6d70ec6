"""Starting the bot: configuration errors are clear sentences, and the invite URL is documented."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from notebazaar.bot.discord.client import BOT_PERMISSIONS, invite_url
from notebazaar.bot.discord.runner import check_setup, run_discord
from notebazaar.cli import main
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.errors import NotFound, ValidationError
from notebazaar.pipeline.judge.simple import SimpleJudge
from tests.conftest import World
from tests.test_discord_fakes import discord_settings


def test_missing_token_is_a_clear_error(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    with pytest.raises(ValidationError, match="DISCORD_TOKEN is not set"):
        run_discord(db_path, discord_settings())


def test_cli_reports_a_missing_token_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)  # no config.toml here: defaults
    result = CliRunner().invoke(main, ["discord", "--db", str(tmp_path / "nb.db")])
    assert result.exit_code == 1
    assert "DISCORD_TOKEN is not set" in result.output and "Traceback" not in result.output


def test_a_guild_linked_to_a_missing_community_is_named(db: Database, db_path: Path) -> None:
    settings = discord_settings(guilds={"123": "nowhere"})
    with pytest.raises(NotFound, match="community create nowhere"):
        check_setup(db_path, settings, lambda s, d: SimpleJudge())


def test_a_judge_that_cannot_be_built_is_named(db_path: Path, world: World, settings: Settings) -> None:
    def broken(s: Settings, d: Database) -> SimpleJudge:
        raise ValueError("unknown judge kind 'x'")

    with pytest.raises(ValidationError, match="cannot build the judge"):
        check_setup(db_path, discord_settings(), broken)
    check_setup(db_path, discord_settings(), lambda s, d: SimpleJudge())


def test_invite_url_asks_for_the_documented_permissions_and_scopes() -> None:
    assert BOT_PERMISSIONS.value == 309237730368
    assert not BOT_PERMISSIONS.administrator and not BOT_PERMISSIONS.manage_messages
    url = invite_url(123456789)
    assert "client_id=123456789" in url and "scope=bot+applications.commands" in url
    assert "permissions=309237730368" in url
    docs = (Path(__file__).resolve().parents[1] / "docs" / "discord.md").read_text(encoding="utf-8")
    assert "309237730368" in docs


def test_the_cog_registers_its_commands_in_the_tree(db: Database, db_path: Path) -> None:
    from tests.test_discord_fakes import make_bot

    bot, cog = make_bot(db_path, discord_settings(), db)

    async def register() -> None:
        await bot.add_cog(cog)

    asyncio.run(register())
    payloads = {c.name: c.to_dict(bot.tree) for c in bot.tree.get_commands()}
    assert set(payloads) == {"note", "pool", "market", "judge", "informer", "wallet", "Request notes"}
    subcommands = {o["name"] for o in payloads["note"]["options"]}
    assert subcommands == {"submit", "submarket", "status", "unpublish"}
    submarket = next(o for o in payloads["note"]["options"] if o["name"] == "submarket")
    [option] = submarket["options"]
    assert (option["name"], option["type"], option["required"], option["autocomplete"]) == (
        "market",
        4,  # an integer: the sub-market's id
        True,
        True,
    )
    assert option["min_value"] == 1
    assert payloads["Request notes"]["type"] == 3  # a message context menu
    guild_only = {name for name, p in payloads.items() if p["dm_permission"] is False}
    assert guild_only == set(payloads) - {"wallet"}
    ban = next(o for o in payloads["informer"]["options"] if o["name"] == "ban")
    assert [(o["name"], o["type"], o["required"]) for o in ban["options"]] == [
        ("user", 6, True),
        ("reason", 3, True),
    ]
