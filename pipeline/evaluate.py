"""Shadow evaluation of a judge configuration on labelled claims: ``notebazaar eval``.

The claims are replayed through the simulator in a throwaway database in a temporary folder, so
nothing is published and no credit moves in the live database. The live database contributes only
what the judge would read there: the trusted reference corpus, and the prompt versions named on the
command line. Moderators use it to compare two prompts before activating one.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlite_utils import Database

from notebazaar.pipeline import prompts
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.db import open_db, write
from notebazaar.pipeline.errors import ValidationError

QUALITY_KEYS = (
    "claims",
    "logloss_prior",
    "logloss_final",
    "brier_prior",
    "brier_final",
    "coverage",
    "purchase_precision",
    "spend_per_post",
    "injection_success",
)


def resolve_prompt(db: Database, spec: str) -> tuple[str, str]:
    """``(label, text)`` for a prompt given as a version id (``12``), a version of the judge prompt
    (``v3``), or a file path."""
    spec = spec.strip()
    if spec.lower().startswith("v") and spec[1:].isdigit():
        found = prompts.version_id(db, int(spec[1:]), community_id=None)
        return spec, prompts.get_version(db, found, community_id=None)["text"]
    if spec.isdigit():
        version = prompts.get_version(db, int(spec), community_id=None)
        return f"{version['name']} v{version['version']}", version["text"]
    path = Path(spec)
    if path.is_file():
        try:
            return path.name, path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValidationError(f"prompt file {path} is not valid UTF-8") from None
    raise ValidationError(f"prompt {spec!r} is neither a prompt id, a version like v2, nor a file")


def _copy_references(source: Database | None, target: Database) -> None:
    if source is None:
        return
    rows = list(
        source.query("SELECT title, text, source, created_at FROM documents WHERE kind = 'reference'")
    )
    with write(target):
        for row in rows:
            target["documents"].insert({"kind": "reference", **row})


def evaluate(
    claims_path: Path,
    *,
    settings: Settings,
    judge_kind: str = "local",
    prompt_text: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    reference_db: Database | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Replay claims through one judge configuration; nothing is published, no credits move.

    Returns the simulator's report (the quality keys and the rest). The embedded judge has no prompt:
    for it, ``prompt_text`` changes nothing (the LLM judge uses it).
    """
    from notebazaar.pipeline.judge.factory import make_judge
    from notebazaar.pipeline.simulate import simulate

    with tempfile.TemporaryDirectory(prefix="notebazaar-eval-") as folder:
        shadow_path = Path(folder) / "shadow.db"
        shadow = open_db(shadow_path)
        try:
            _copy_references(reference_db, shadow)
        finally:
            shadow.close()
        report, _ = simulate(
            claims_path,
            shadow_path,
            settings=settings,
            judge_kind=judge_kind,
            seed=seed,
            limit=limit,
            progress=progress,
            judge_factory=lambda db: make_judge(settings, db, kind=judge_kind, prompt_text=prompt_text),
        )
    return report


def quality_table(results: Sequence[tuple[str, dict[str, Any]]], title: str = "") -> Table:
    """A side-by-side table of reports, one column per configuration."""
    table = Table(title=title or None)
    table.add_column("metric")
    for label, _ in results:
        table.add_column(label, justify="right")
    for key in QUALITY_KEYS:
        cells = []
        for _, result in results:
            value = result.get(key)
            cells.append(f"{value:.3f}" if isinstance(value, float) else str(value))
        table.add_row(key, *cells)
    kinds = sorted({k for _, r in results for k in r.get("profit_per_offer", {})})
    for kind in kinds:
        table.add_row(
            f"profit/offer {kind}",
            *[f"{r.get('profit_per_offer', {}).get(kind, float('nan')):.2f}" for _, r in results],
        )
    return table


def format_table(results: list[tuple[str, dict[str, Any]]]) -> str:
    """The side-by-side table as plain text."""
    console = Console(record=True, width=max(60, 32 + 14 * len(results)), file=io.StringIO())
    console.print(quality_table(results))
    return console.export_text()
