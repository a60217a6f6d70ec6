"""``notebazaar discord``: check the configuration, then run the bot until interrupted.

Every problem an operator can fix (no token, a rejected token, a missing privileged intent, no
guild configured, a guild linked to a community that does not exist, a judge that cannot be built,
Discord out of reach) is raised as a ``NotebazaarError`` with a sentence saying what to do; the CLI
prints it as one line, without a traceback. Reaching Discord at start is retried with exponential
backoff and jitter (tenacity) while the failure is transient (network, Discord's 5xx), each retry
logged as one line; once connected, discord.py reconnects by itself. SIGTERM and Ctrl-C close the
bot cleanly (:meth:`notebazaar.bot.discord.client.NotebazaarBot.close`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
from pathlib import Path

import aiohttp
import discord
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from notebazaar.bot.discord.client import NotebazaarBot
from notebazaar.bot.discord.closer import JudgeFactory
from notebazaar.pipeline import community
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.errors import NotebazaarError, NotFound, ValidationError
from notebazaar.pipeline.judge.factory import make_judge

log = logging.getLogger(__name__)
TOKEN_ENV = "DISCORD_TOKEN"
UNREACHABLE = (
    aiohttp.ClientError,
    OSError,
    asyncio.TimeoutError,
    discord.DiscordServerError,
    discord.GatewayNotFound,
)
CONNECT_WAIT = wait_exponential_jitter(multiplier=2, max=60, jitter=2)


def token_from_env() -> str:
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise ValidationError(
            f"{TOKEN_ENV} is not set: put the bot token from the Discord developer portal"
            " (Applications > your app > Bot > Reset Token) in the environment; see docs/discord.md"
        )
    return token


def check_setup(db_path: Path, settings: Settings, judge_factory: JudgeFactory) -> None:
    """Fail fast, before connecting, on configuration the bot could not work with."""
    if not settings.discord.guilds:
        raise ValidationError(
            "[discord] guilds is empty: link each server to a community in config.toml, e.g."
            ' [discord] guilds = { "123456789012345678" = "my-community" } (see docs/discord.md);'
            " with none, every command would refuse"
        )
    db = open_db(db_path)
    try:
        for guild_id, slug in settings.discord.guilds.items():
            if not guild_id.isdigit():
                raise ValidationError(f"[discord] guilds: {guild_id!r} is not a guild id (a number)")
            try:
                community.get_community(db, slug)
            except NotFound:
                raise NotFound(
                    f"[discord] guilds links guild {guild_id} to community {slug!r}, which does not exist;"
                    f" create it with `notebazaar community create {slug}`"
                ) from None
        try:
            judge_factory(settings, db)
        except NotebazaarError:
            raise
        except Exception as exc:  # an unknown kind, a missing model or key: the operator's to fix
            raise ValidationError(
                f"cannot build the judge ([judge] in config.toml): {type(exc).__name__}: {exc}"
            ) from None
    finally:
        db.close()


def run_discord(db_path: Path, settings: Settings, *, judge_factory: JudgeFactory = make_judge) -> None:
    """Run the Discord bot with the token from ``$DISCORD_TOKEN``."""
    token = token_from_env()
    check_setup(db_path, settings, judge_factory)
    bot = NotebazaarBot(db_path, settings, judge_factory=judge_factory)
    attempts = settings.discord.connect_attempts
    try:
        asyncio.run(serve(bot, token, attempts=attempts))
    except UNREACHABLE as exc:
        raise ValidationError(
            f"cannot reach Discord ({_describe(exc)}) after {attempts} attempt(s); check the network"
            " and Discord's status, then start the bot again"
        ) from None
    except discord.LoginFailure:
        raise ValidationError(
            f"Discord rejected the token in {TOKEN_ENV}; reset it in the developer portal"
        ) from None
    except discord.PrivilegedIntentsRequired:
        raise ValidationError(
            "[discord] watch_channels needs the Message Content intent: enable it in the developer portal"
            " (Bot > Privileged Gateway Intents), or leave watch_channels empty"
        ) from None


async def serve(bot: NotebazaarBot, token: str, *, attempts: int) -> None:
    """Log in (retrying while Discord is out of reach), connect, and run until closed."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, bot.request_stop, signal.Signals(signum).name)
    async with bot:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=CONNECT_WAIT,
            retry=retry_if_exception_type(UNREACHABLE),
            before_sleep=functools.partial(_before_retry, bot),
            reraise=True,
        ):
            with attempt:
                await bot.login(token)
        await bot.connect(reconnect=True)
    await bot.close()  # returns once the whole shutdown (delivery in hand, settlement) is done


async def _before_retry(bot: NotebazaarBot, state: RetryCallState) -> None:
    """Log the failure in one line and drop the half-open HTTP session before the next try."""
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.warning(
        "cannot reach Discord (%s); attempt %s failed, retrying in %.0fs",
        _describe(exc),
        state.attempt_number,
        wait,
    )
    await bot.http.close()
    bot.http.connector = discord.utils.MISSING  # a fresh connector for the fresh session


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
