"""Running the surfaces: the web app, the Discord bot, the Reddit bot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from notebazaar.cli.base import main, setup_console_logging, with_db
from notebazaar.pipeline.config import Settings

# --- surfaces -----------------------------------------------------------------------------------


@main.command()
@click.option("--host", default=None, help="Default from config [web].")
@click.option("--port", type=int, default=None, help="Default from config [web].")
@click.option(
    "--demo/--no-demo",
    "seed_demo",
    default=False,
    help="Seed a demo community with posts, informers and notes on first run.",
)
@with_db
def serve(
    db: Any, db_path: Path, settings: Settings, host: str | None, port: int | None, seed_demo: bool
) -> None:
    """Run the web app and the pipeline worker that closes markets on schedule."""
    from notebazaar.web.server import run_server

    db.close()
    run_server(
        db_path, settings, host=host or settings.web.host, port=port or settings.web.port, seed_demo=seed_demo
    )


@main.command("discord")
@with_db
def discord_command(db: Any, db_path: Path, settings: Settings) -> None:
    """Run the Discord bot (token from $DISCORD_TOKEN)."""
    from notebazaar.bot.discord.runner import run_discord

    db.close()
    setup_console_logging(settings.logging.level)
    run_discord(db_path, settings)


@main.command("reddit")
@with_db
def reddit_command(db: Any, db_path: Path, settings: Settings) -> None:
    """Run the Reddit bot (credentials from the environment or praw.ini)."""
    from notebazaar.bot.reddit.runner import run_reddit

    db.close()
    setup_console_logging(settings.logging.level)
    run_reddit(db_path, settings)
