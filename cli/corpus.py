"""The trusted reference corpus the judge retrieves from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from notebazaar.cli.base import echo_json, main, with_db
from notebazaar.pipeline import community
from notebazaar.pipeline.config import Settings

# --- retrieval corpus -------------------------------------------------------------------------


@main.group("corpus")
def corpus_group() -> None:
    """The trusted reference corpus the judge retrieves from."""


@corpus_group.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--community", "slug", default=None, help="Limit to one community (default: all).")
@with_db
def corpus_add(db: Any, db_path: Path, settings: Settings, file: Path, slug: str | None) -> None:
    """Load FILE (JSONL with a "text" field per line, or plain text, one passage per paragraph)."""
    from notebazaar.index.corpus import add_corpus_file

    community_id = community.get_community(db, slug).id if slug else None
    added = add_corpus_file(db, db_path, file, settings=settings, community_id=community_id)
    echo_json({"added": added})
