"""Starting the bot: configuration errors are clear sentences, and the invite URL is documented."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import discord
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


def test_no_guild_configured_refuses_to_start(db_path: Path, world: World) -> None:
    with pytest.raises(ValidationError, match=r"\[discord\] guilds is empty"):
        check_setup(db_path, discord_settings(guilds={}), lambda s, d: SimpleJudge())


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from tenacity import wait_none

    from notebazaar.bot.discord import runner

    monkeypatch.setattr(runner, "CONNECT_WAIT", wait_none())
    monkeypatch.setenv("DISCORD_TOKEN", "a-token")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens here once the socket is closed


def test_discord_out_of_reach_is_one_line_after_retries(
    db_path: Path,
    world: World,
    fast_retries: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{_closed_port()}/api/v10")
    settings = discord_settings(connect_attempts=3)
    with pytest.raises(ValidationError) as info:
        run_discord(db_path, settings, judge_factory=lambda s, d: SimpleJudge())
    message = str(info.value)
    assert (
        message.startswith("cannot reach Discord (ClientConnectorError") and "after 3 attempt(s)" in message
    )
    assert "\n" not in message
    retries = [r for r in caplog.records if "cannot reach Discord" in r.getMessage()]
    assert len(retries) == 2 and all(r.exc_info is None for r in retries)  # one line each, no traceback


class _FlakyDiscord(BaseHTTPRequestHandler):
    """Discord's API answering 503 once, then refusing the token (401)."""

    answers: ClassVar[list[int]] = []

    def do_GET(self) -> None:
        status = self.answers.pop(0) if self.answers else 401
        body = json.dumps({"message": "nope", "code": 0}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_transient_failure_is_retried_and_a_bad_token_is_not(
    db_path: Path,
    world: World,
    fast_retries: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _FlakyDiscord.answers = [503]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyDiscord)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        monkeypatch.setattr(
            discord.http.Route, "BASE", f"http://127.0.0.1:{server.server_address[1]}/api/v10"
        )
        with pytest.raises(ValidationError, match="Discord rejected the token"):
            run_discord(db_path, discord_settings(), judge_factory=lambda s, d: SimpleJudge())
    finally:
        server.shutdown()
        server.server_close()
    retries = [r.getMessage() for r in caplog.records if "cannot reach Discord" in r.getMessage()]
    assert len(retries) == 1 and "DiscordServerError" in retries[0]


def test_the_command_logs_one_line_to_stderr_and_the_file(
    tmp_path: Path,
    world: World,
    db_path: Path,
    fast_retries: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{_closed_port()}/api/v10")
    config = tmp_path / "nb.toml"
    config.write_text(
        '[discord]\nguilds = { "111" = "testers" }\nconnect_attempts = 2\n[judge]\nkind = "openai"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("NOTEBAZAAR_CONFIG", str(config))
    result = CliRunner().invoke(main, ["discord", "--db", str(db_path)])
    assert result.exit_code == 1
    assert "Error: cannot reach Discord (ClientConnectorError" in result.output
    assert "Traceback" not in result.output
    retry_lines = [line for line in result.stderr.splitlines() if "retrying in" in line]
    assert len(retry_lines) == 1 and "WARNING notebazaar.bot.discord.runner" in retry_lines[0]
    log_file = (db_path.parent / "notebazaar.log").read_text(encoding="utf-8")
    assert "retrying in" in log_file


def test_sigterm_stops_the_bot_cleanly_and_is_logged(
    db: Database, db_path: Path, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    from notebazaar.bot.discord.runner import serve
    from tests.test_discord_fakes import make_bot

    caplog.set_level(logging.INFO)
    bot, _ = make_bot(db_path, discord_settings(), db)

    async def login(token: str) -> None:
        pass

    async def connect(*, reconnect: bool) -> None:  # "connected": then the operator stops the bot
        os.kill(os.getpid(), signal.SIGTERM)
        while not bot.is_closed():
            await asyncio.sleep(0.01)

    bot.login = login  # type: ignore[method-assign]
    bot.connect = connect  # type: ignore[method-assign]
    asyncio.run(serve(bot, "a-token", attempts=1))
    assert bot.is_closed()
    assert "SIGTERM received; finishing the delivery in hand" in caplog.text
    assert "discord bot stopped" in caplog.text
