"""The reveal outbox: what the bots still have to post, what they posted, and what failed.

A note that failed for good (its post was deleted or locked, the bot was banned, or it kept
failing past ``[delivery] give_up_after_hours``) was bought and paid for but is not shown: these
commands let an operator see it and, once the cause is fixed, queue it again.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from notebazaar.cli.base import console, echo_json, main, with_db
from notebazaar.pipeline import outbox
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.errors import ValidationError


@main.group("outbox")
def outbox_group() -> None:
    """Deliveries of bought notes to Discord and Reddit."""


def _when(value: float | None) -> str:
    if value is None:
        return "-"
    return dt.datetime.fromtimestamp(value, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@outbox_group.command("list")
@click.option(
    "--status", type=click.Choice(outbox.STATUSES), default=None, help="Only rows with this status."
)
@click.option("--surface", default=None, help="Only rows for this surface (discord, reddit, web).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per row.")
@with_db
def outbox_list(
    db: Any, db_path: Path, settings: Settings, status: str | None, surface: str | None, as_json: bool
) -> None:
    """Outbox rows, newest first: note, post, status, attempts, next attempt, error (never a note's text)."""
    rows = outbox.rows(db, status=status, surface=surface, limit=None)
    if as_json:
        for row in rows:
            echo_json(row)
        return
    table = Table()
    for column in ("id", "note", "post", "surface", "status", "attempts", "next attempt", "message", "error"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["outbox_id"]),
            str(row["reveal_id"]),
            str(row["post_url"] or row["post_external_id"]),
            row["surface"],
            row["status"],
            str(row["attempts"]),
            _when(row["next_attempt_at"]) if row["status"] == "pending" else "-",
            row["external_id"] or "-",
            row["last_error"] or "",
        )
    console.print(table)
    if not rows:
        click.echo("no outbox rows" + (f" with status {status}" if status else ""))


@outbox_group.command("retry")
@click.argument("outbox_id", type=int, required=False)
@click.option("--all-failed", is_flag=True, help="Queue every failed row again.")
@with_db
def outbox_retry(db: Any, db_path: Path, settings: Settings, outbox_id: int | None, all_failed: bool) -> None:
    """Queue a failed note for delivery now (the bot posts it on its next pass), with a fresh horizon."""
    if (outbox_id is None) == (not all_failed):
        raise ValidationError("name one outbox row (`notebazaar outbox retry 12`) or give --all-failed")
    ids = outbox.retry_failed(db) if all_failed else [outbox_id]
    if outbox_id is not None:
        outbox.retry(db, outbox_id)
    echo_json({"queued": ids})
