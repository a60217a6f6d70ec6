"""Exports as JSON lines: revealed notes, and every offer's reward."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from notebazaar.cli.base import account_id_of, echo_json, main, with_db
from notebazaar.pipeline import rewards
from notebazaar.pipeline.config import Settings

# --- export -------------------------------------------------------------------------------


@main.group("export")
def export_group() -> None:
    """Export data as JSON lines."""


@export_group.command("revealed")
@with_db(reads_only=True)
def export_revealed(db: Any, db_path: Path, settings: Settings) -> None:
    """One JSON line per revealed note: post id, text, classification, sources, informer, price."""
    for r in db.query(
        "SELECT r.post_id, r.text, r.classification, r.sources, a.handle AS informer, r.price,"
        " r.market_id, r.id FROM reveals r JOIN accounts a ON a.id = r.informer_id"
        " JOIN markets m ON m.id = r.market_id"
        " WHERE r.unpublished_at IS NULL AND m.parent_offer_id IS NULL ORDER BY r.id"
    ):
        echo_json(
            {
                "post_id": r["post_id"],
                "note": r["text"],
                "classification": r["classification"],
                "sources": json.loads(r["sources"]),
                "informer": r["informer"],
                "price_paid": r["price"],
                "market_id": r["market_id"],
                "reveal_id": r["id"],
            }
        )


def _since(value: str | None) -> float | None:
    """``--since``: Unix seconds, or an ISO 8601 date or time (UTC unless it names a zone)."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.ClickException(
            f"--since {value!r} is neither Unix seconds nor an ISO 8601 date or time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@export_group.command("rewards")
@click.option("--informer", "handle", default=None, help="Only this informer's offers.")
@click.option("--since", default=None, help="Only offers submitted at or after T (Unix seconds or ISO 8601).")
@with_db(reads_only=True)
def export_rewards(db: Any, db_path: Path, settings: Settings, handle: str | None, since: str | None) -> None:
    """One JSON line per offer: what it was charged and paid, its outcome, its note's status, and
    its reward (pipeline/rewards.py). Never a note's text: the market keeps none of unbought ones."""
    informer_id = account_id_of(db, handle) if handle is not None else None
    for row in rewards.offer_rewards(db, informer_id=informer_id, since=_since(since)):
        echo_json(row)
