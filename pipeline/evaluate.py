"""Shadow evaluation of a judge configuration on labelled claims (``notebazaar eval``).

Placeholder: the real implementation lands with the simulator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.config import Settings


def evaluate(
    claims_path: Path,
    *,
    settings: Settings,
    judge_kind: str = "local",
    prompt_text: str | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Replay claims through one judge configuration; nothing is published, no credits move.

    Returns the quality keys of the simulator's report (claims, judge, logloss_prior,
    logloss_final, brier_prior, brier_final, coverage, purchase_precision, spend_per_post, ...).
    """
    raise NotImplementedError("evaluation lands with the simulator")


def format_table(results: list[tuple[str, dict[str, Any]]]) -> str:
    """A plain-text side-by-side table of evaluation results, one column per configuration."""
    raise NotImplementedError("evaluation lands with the simulator")
