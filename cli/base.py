"""What every command shares: the root group, settings, logging, ``--db`` and JSON output."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from notebazaar.pipeline import community
from notebazaar.pipeline.config import Settings, load_settings
from notebazaar.pipeline.db import describe, open_db
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
    """Log to ``notebazaar.log`` beside the database. Log lines carry ids and amounts, never notes.

    Where that folder cannot be written (a database on read-only storage), the command still runs,
    without a log file."""
    log_file = db_path.parent / "notebazaar.log"
    root = logging.getLogger()
    root.setLevel(level)
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
    if any(getattr(h, "baseFilename", None) == str(log_file.resolve()) for h in root.handlers):
        return
    try:
        handler = logging.FileHandler(log_file, encoding="utf-8")
    except OSError:
        return
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


@contextlib.contextmanager
def _undone_if_refused(path: Path, enabled: bool) -> Iterator[None]:
    """If the command is refused, remove what it created in the database's folder (the database,
    its WAL, its log, its index files) and the folder itself if it made it: a refused run leaves
    nothing behind."""
    if not enabled:
        yield
        return
    folder = path.parent
    folder_existed = folder.exists()
    before = set(folder.iterdir()) if folder_existed else set()
    try:
        yield
    except (NotebazaarError, click.ClickException, sqlite3.Error):
        if folder.exists():
            for created in set(folder.iterdir()) - before:
                if created.is_file():
                    created.unlink(missing_ok=True)
            if not folder_existed and not any(folder.iterdir()):
                folder.rmdir()
        raise


def _close_log(db_path: Path) -> None:
    """Take this database's log file off the root logger (so a refused run can remove it)."""
    root = logging.getLogger()
    for handler in root.handlers[:]:
        if getattr(handler, "baseFilename", None) == str((db_path.parent / "notebazaar.log").resolve()):
            root.removeHandler(handler)
            handler.close()


def with_db(
    func: Callable[..., Any] | None = None, *, reads_only: bool = False, creates: bool = False
) -> Any:
    """Add ``--db PATH``, open the database, and turn every refusal into one clean line.

    A command that ``reads_only`` needs the database to exist (a mistyped path is an error, not a
    new empty database) and opens it read-only when its file cannot be written, so a database on
    read-only storage can still be checked, shown and exported. A command that ``creates`` its
    database (``simulate``) removes what it made if it is refused. A damaged, read-only, full or
    too-new database, and any other storage failure, gives ``Error: <what is wrong>``, never a
    traceback.
    """
    if func is None:
        return functools.partial(with_db, reads_only=reads_only, creates=creates)

    @db_option("SQLite database (default: `db` in config.toml). Its folder holds all state.")
    @functools.wraps(func)
    def wrapper(db_path: Path | None, **kwargs: Any) -> Any:
        settings = _settings()
        path = db_path or Path(settings.db)
        with _undone_if_refused(path, creates):
            try:
                read_only = reads_only and path.is_file() and not os.access(path, os.W_OK)
                db = open_db(path, must_exist=reads_only, read_only=read_only)
            except NotebazaarError as exc:
                raise click.ClickException(str(exc)) from None
            setup_logging(path, settings.logging.level)
            try:
                return func(db=db, db_path=path, settings=settings, **kwargs)
            except NotebazaarError as exc:
                raise click.ClickException(str(exc)) from None
            except sqlite3.Error as exc:
                raise click.ClickException(describe(path, exc)) from None
            except OSError as exc:  # a file beside the database: the index, the log, a report
                where = exc.filename or path.parent
                raise click.ClickException(f"cannot use {where}: {exc.strerror or exc}") from None
            finally:
                db.close()
                if creates:
                    _close_log(path)

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
