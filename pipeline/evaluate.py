"""Shadow evaluation of a judge configuration on labelled claims: ``notebazaar eval``.

The claims are replayed through the simulator in a throwaway database in a temporary folder, so
nothing is published and no credit moves in the live database. The live database contributes only
what the judge would read there: the trusted reference corpus, and the prompt versions named on the
command line. Moderators use it to compare two prompts before activating one.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


# Every metric a report shows, with what it means to a moderator (lower/higher is better).
METRICS: tuple[tuple[str, str, str], ...] = (
    ("claims", "Claims", "labelled posts replayed"),
    (
        "logloss_prior",
        "Log loss, no notes",
        "reader's error on P(misleading) before any note (lower is better)",
    ),
    (
        "logloss_final",
        "Log loss, with notes",
        "the same after the notes bought: below the line above = notes helped",
    ),
    ("brier_prior", "Brier, no notes", "squared error of P(misleading) before any note (lower is better)"),
    ("brier_final", "Brier, with notes", "the same after the notes bought"),
    ("coverage", "Coverage", "posts that got at least one right note bought"),
    ("purchase_precision", "Purchase precision", "bought notes that were right for the truth"),
    ("spend_per_post", "Spend per post", "credits paid for notes, per post"),
    ("injection_success", "Injections bought", "prompt-injection notes bought, of those offered (must be 0)"),
    (
        "mislabeled_bought_share",
        "Mislabeled notes bought",
        "notes with real evidence but the wrong classification bought, of those offered",
    ),
)
_PERCENT = {"coverage", "purchase_precision", "injection_success", "mislabeled_bought_share"}
_CREDITS = {"spend_per_post"}


def _shown(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if key in _PERCENT:
        return f"{100 * float(value):.1f}%"
    if key in _CREDITS:
        return f"{float(value):.1f} credits"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _errors_line(result: dict[str, Any]) -> str:
    errors = result.get("judge_errors") or {}
    if not errors:
        return "none"
    failed = sum(errors.values())
    reasons = ", ".join(
        f"{reason} {count}" for reason, count in sorted(errors.items(), key=lambda kv: -kv[1])
    )
    return f"{failed} of {result.get('judge_calls', '?')} ({reasons})"


def quality_rows(results: Sequence[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The rows of the side-by-side table: ``{"key", "name", "values", "meaning"}``, one value per
    configuration, formatted for people (percentages, credits, signed profits)."""
    rows = []
    for key, name, meaning in METRICS:
        if any(key in r for _, r in results):
            rows.append(
                {
                    "key": key,
                    "name": name,
                    "values": [_shown(key, r.get(key)) for _, r in results],
                    "meaning": meaning,
                }
            )
    if any("judge_calls" in r for _, r in results):
        rows.append(
            {
                "key": "judge_errors",
                "name": "Judge failures",
                "values": [_errors_line(r) for _, r in results],
                "meaning": "judge calls that failed, by reason: the offer was not bought",
            }
        )
    kinds = sorted({k for _, r in results for k in r.get("profit_per_offer", {})})
    for kind in kinds:
        values = []
        for _, r in results:
            profit = r.get("profit_per_offer", {}).get(kind)
            values.append("–" if profit is None else f"{profit:+.2f}")
        rows.append(
            {
                "key": f"profit_per_offer.{kind}",
                "name": f"Profit per offer: {kind.replace('_', ' ')}",
                "values": values,
                "meaning": "credits earned per offer (price if bought, less the bid charged)",
            }
        )
    return rows


def reads_line(judge: str) -> str:
    """What the judge of a report reads, in one sentence (README, "The judges")."""
    from notebazaar.pipeline.judge.params import WHAT_EACH_JUDGE_READS

    return WHAT_EACH_JUDGE_READS.get(judge, "")


def format_table(results: list[tuple[str, dict[str, Any]]]) -> str:
    """The side-by-side table as plain text, never wrapped: one line per metric."""
    rows = quality_rows(results)
    header = ["metric", *(label for label, _ in results), "what it means"]
    lines = [[row["key"], *row["values"], f"{row['name']}: {row['meaning']}"] for row in rows]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header) - 1)]

    def render(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        middle = [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:], strict=True)]
        return "  ".join([first, *middle, cells[-1]]).rstrip()

    rule = "  ".join("-" * w for w in widths) + "  " + "-" * len(header[-1])
    judges = sorted({str(r.get("judge")) for _, r in results if reads_line(str(r.get("judge")))})
    reads = [f"What the {judge} judge reads: {reads_line(judge)}" for judge in judges]
    return "\n".join([render(header), rule, *(render(line) for line in lines), *reads]) + "\n"
