"""Exports as JSON lines: revealed notes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from notebazaar.cli.base import echo_json, main, with_db
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
