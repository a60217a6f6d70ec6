"""Readers' ratings and the bridging scorer: ``ratings ...``, ``bridging score``, ``bench bridging``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from notebazaar.cli.base import account_id_of, db_option, echo_json, main, with_db
from notebazaar.cli.measure import bench
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.errors import NotebazaarError


@main.group("ratings")
def ratings_group() -> None:
    """Readers' ratings of revealed notes, and their bridging statuses."""


@ratings_group.command("add")
@click.argument("note_id", type=int)
@click.argument("level", type=click.Choice(["helpful", "somewhat_helpful", "not_helpful"]))
@click.option("--rater", "handle", required=True, help="The reader's handle.")
@click.option(
    "--tag", "tags", multiple=True, help="A reason tag (e.g. good_sources, incorrect); repeat for more."
)
@with_db
def ratings_add(
    db: Any, db_path: Path, settings: Settings, note_id: int, level: str, handle: str, tags: tuple[str, ...]
) -> None:
    """Rate a revealed note as a reader (or change the rating)."""
    from notebazaar.pipeline.ratings import rate

    echo_json(rate(db, note_id, account_id_of(db, handle), level, tags=list(tags), surface="cli").as_dict())


@ratings_group.command("score")
@with_db
def ratings_score(db: Any, db_path: Path, settings: Settings) -> None:
    """Run the bridging scorer over every rating: store statuses and their history, hide notes
    readers rated not helpful and undecided ones their authors' records no longer vouch for,
    settle held payments."""
    from notebazaar.pipeline.bridging import score_db

    echo_json(score_db(db, settings.bridging).as_dict())


@ratings_group.command("import-cn")
@click.option(
    "--notes", "notes_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--ratings", "ratings_path", required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--community", default="cn", show_default=True, help="Community to import into (created if absent)."
)
@with_db
def ratings_import_cn(
    db: Any, db_path: Path, settings: Settings, notes_path: Path, ratings_path: Path, community: str
) -> None:
    """Import notes and ratings in Community Notes' TSV formats (RATINGS: a .tsv or a folder of them)."""
    from notebazaar.pipeline.cnsync import import_cn

    echo_json(import_cn(db, notes_path, ratings_path, community=community).__dict__)


@ratings_group.command("export-cn")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@with_db
def ratings_export_cn(db: Any, db_path: Path, settings: Settings, out_dir: Path) -> None:
    """Export revealed notes, their ratings and statuses in Community Notes' TSV formats."""
    from notebazaar.pipeline.cnsync import export_cn

    echo_json(export_cn(db, out_dir))


@main.group("bridging")
def bridging_group() -> None:
    """The bridging scorer on its own."""


def _log_beside(db_path: Path | None) -> None:
    """Commands that open no database still log beside it, as every other command does."""
    from notebazaar.cli.base import _settings, setup_logging

    path = db_path or Path(_settings().db)
    path.parent.mkdir(parents=True, exist_ok=True)
    setup_logging(path)


_LOG_DB = db_option("Only where the log goes (notebazaar.log beside it); no database is opened.")


@bridging_group.command("score")
@_LOG_DB
@click.option(
    "--cn-notes", "notes_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--cn-ratings", "ratings_path", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
def bridging_score(db_path: Path | None, notes_path: Path, ratings_path: Path, out_path: Path) -> None:
    """Score Community Notes data directly (no database): writes noteId, intercept, factor, status
    (helpful, not_helpful, needs_more_ratings) and ratings, one line per note."""
    import time

    from notebazaar.cli.base import _settings
    from notebazaar.pipeline.cnscore import score_files

    _log_beside(db_path)
    started = time.perf_counter()
    try:
        summary = score_files(notes_path, ratings_path, out_path, _settings().bridging)
    except NotebazaarError as exc:
        raise click.ClickException(str(exc)) from None
    summary["seconds"] = round(time.perf_counter() - started, 3)
    echo_json(summary)


@bench.command("bridging")
@_LOG_DB
@click.option("--notes", type=int, default=10_000, show_default=True)
@click.option("--ratings-per-note", type=int, default=30, show_default=True)
@click.option("--raters", type=int, default=3_000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
def bench_bridging(
    db_path: Path | None, notes: int, ratings_per_note: int, raters: int, seed: int, out_path: Path
) -> None:
    """The bridging scorer on seeded synthetic ratings with a planted quality: speed, memory, and
    Spearman between intercepts and the planted quality (no database, no files needed)."""
    from notebazaar.cli.base import _settings
    from notebazaar.pipeline.bench_bridging import run

    if notes < 1 or ratings_per_note < 1 or raters < 5:
        raise click.ClickException("--notes and --ratings-per-note must be at least 1, --raters at least 5")
    _log_beside(db_path)
    result = run(
        notes=notes, ratings_per_note=ratings_per_note, raters=raters, seed=seed, params=_settings().bridging
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    echo_json(result)
