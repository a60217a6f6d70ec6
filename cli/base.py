"""What every command shares: the root group, settings, logging, ``--db`` and JSON output."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from notebazaar.pipeline import community
from notebazaar.pipeline.config import Settings, load_settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.errors import NotebazaarError

console = Console(width=max(100, Console().width))


def _settings() -> Settings:
    ctx = click.get_current_context()
    root = ctx.find_root()
    if root.obj is None:
        root.obj = load_settings()
    return root.obj  # type: ignore[no-any-return]


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Libraries that log request and response bodies at DEBUG: a note's text, a receipt's salt, a modal's
# fields. They never log below INFO, whatever the configured level.
CHATTY_LIBRARIES = ("prawcore", "praw", "discord", "urllib3", "aiohttp", "httpx", "httpcore")


def setup_logging(db_path: Path, level: str = "INFO") -> None:
    """Log to ``notebazaar.log`` beside the database. Log lines carry ids and amounts, never notes."""
    log_file = db_path.parent / "notebazaar.log"
    root = logging.getLogger()
    root.setLevel(level)
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
    if any(getattr(h, "baseFilename", None) == str(log_file.resolve()) for h in root.handlers):
        return
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)


class OneLineFormatter(logging.Formatter):
    """For the console: an exception becomes ``(Type: message)`` on the record's own line; the
    traceback goes to the log file only. The record is copied, so the file handler's traceback is
    not replaced by this one-liner (logging caches a record's formatted exception)."""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record = logging.makeLogRecord(record.__dict__)
            record.msg, record.args = f"{record.getMessage()} ({type(exc).__name__}: {exc})", None
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return super().format(record)


def setup_console_logging(level: str = "INFO") -> None:
    """Also log to stderr (the bots), one line per record, at the configured level."""
    root = logging.getLogger()
    for existing in root.handlers:
        if getattr(existing, "notebazaar_console", False) and isinstance(existing, logging.StreamHandler):
            existing.setStream(sys.stderr)  # the stderr of now (a second command in one process)
            return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(LOG_FORMAT))
    handler.notebazaar_console = True  # type: ignore[attr-defined]
    root.addHandler(handler)


def db_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--db PATH`` (as ``db_path``, default None: ``db`` in config.toml)."""
    return click.option(
        "--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help=help
    )


def with_db(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--db PATH``, open the database, and turn refusals into clean errors."""

    @db_option("SQLite database (default: `db` in config.toml). Its folder holds all state.")
    @functools.wraps(func)
    def wrapper(db_path: Path | None, **kwargs: Any) -> Any:
        settings = _settings()
        path = db_path or Path(settings.db)
        db = open_db(path)
        setup_logging(path, settings.logging.level)
        try:
            return func(db=db, db_path=path, settings=settings, **kwargs)
        except NotebazaarError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            db.close()

    return wrapper


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, sort_keys=True))


def account_id_of(db: Any, handle: str) -> int:
    """The id of the account with this handle (a clear error if there is none)."""
    return int(community.get_account(db, handle)["id"])


@click.group()
@click.version_option(package_name="notebazaar")
def main() -> None:
    """notebazaar: community notes bought by an amnesic judge in a sealed information market."""


def at_least_one(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise click.ClickException(f"--{param.name} must be at least 1")
    return value


def claims_run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options shared by the commands that replay labelled claims (simulate, eval)."""
    for option in reversed(
        [
            click.option(
                "--claims",
                "claims_path",
                required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="Labelled claims (JSONL).",
            ),
            click.option(
                "--judge",
                "judge_kind",
                type=click.Choice(["local", "openai", "simple"]),
                default=None,
                help="Judge kind (default from config).",
            ),
            click.option("--seed", type=int, default=0, show_default=True),
            click.option(
                "--limit", type=int, default=None, callback=at_least_one, help="Use only the first N claims."
            ),
        ]
    ):
        func = option(func)
    return func
