"""The double-entry ledger: check and balances."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from notebazaar.cli.base import console, echo_json, main, with_db
from notebazaar.pipeline import ledger
from notebazaar.pipeline.config import Settings

# --- ledger -------------------------------------------------------------------------------


@main.group("ledger")
def ledger_group() -> None:
    """Inspect the double-entry ledger."""


@ledger_group.command("check")
@with_db(reads_only=True)
def ledger_check(db: Any, db_path: Path, settings: Settings) -> None:
    """Verify every transaction balances and all balances add up to what was minted."""
    report = ledger.check(db)
    click.echo(
        f"transactions: {report.transactions}  accounts: {report.accounts}  "
        f"minted: {report.minted}  circulating: {report.circulating}"
    )
    if report.ok:
        click.echo("ok")
        return
    for problem in report.problems():
        click.echo(f"FAIL: {problem}", err=True)
    sys.exit(1)


@ledger_group.command("balances")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per account.")
@with_db(reads_only=True)
def ledger_balances(db: Any, db_path: Path, settings: Settings, as_json: bool) -> None:
    """Every ledger account and its balance."""
    rows = ledger.balances(db)
    if as_json:
        for row in rows:
            echo_json(row)
        return
    table = Table()
    for col in ("account", "kind", "balance"):
        table.add_column(col)
    for row in rows:
        table.add_row(str(row["account"]), str(row["kind"]), str(row["balance"]))
    console.print(table)
