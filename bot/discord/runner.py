"""``notebazaar discord``: check the configuration, then run the bot until interrupted.

Every problem an operator can fix (no token, a rejected token, a missing privileged intent, a guild
linked to a community that does not exist, a judge that cannot be built) is raised as a
``NotebazaarError`` with a sentence saying what to do; the CLI prints it without a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import discord

from notebazaar.bot.discord.client import NotebazaarBot
from notebazaar.bot.discord.closer import JudgeFactory
from notebazaar.pipeline import community
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.errors import NotebazaarError, NotFound, ValidationError
from notebazaar.pipeline.judge.factory import make_judge

TOKEN_ENV = "DISCORD_TOKEN"


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
    try:
        bot.run(token, log_handler=None)
    except discord.LoginFailure:
        raise ValidationError(
            f"Discord rejected the token in {TOKEN_ENV}; reset it in the developer portal"
        ) from None
    except discord.PrivilegedIntentsRequired:
        raise ValidationError(
            "[discord] watch_channels needs the Message Content intent: enable it in the developer portal"
            " (Bot > Privileged Gateway Intents), or leave watch_channels empty"
        ) from None
