"""``notebazaar writer export-preferences``: the writer's log as datasets to fine-tune a model on
market feedback elsewhere, in the formats TRL's trainers read.

- **Preference pairs** (``--out``): for each post on which the writer offered two or more notes
  whose rewards differ, every pair as ``{"prompt", "chosen", "rejected"}``: TRL's *standard
  preference* type with an explicit prompt, which ``DPOTrainer`` and ``RewardTrainer`` both take.
  ``chosen`` earned more than ``rejected`` on the same post.
- **Scalar rewards** (``--rewards-out``, default ``rewards.jsonl`` beside ``--out``): one record per
  rewarded note as ``{"prompt", "completion", "label", "reward"}``: TRL's *prompt-completion* type;
  ``label`` (reward above 0) makes it TRL's *unpaired preference* type (``KTOTrainer``), and
  ``reward`` is the scalar, which TRL's online trainers pass to reward functions as a column.

The prompt is the post (:data:`PROMPT`), the completion the note as offered (:func:`completion`), so
a model trained on them learns to write what the market paid for.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from notebazaar.writer.log import LOG_FILE, StateError, WriterLog

PROMPT = (
    "Write a community note on this post: say whether it is misleading (classification: misleading or"
    " not_misleading), why, and cite a source.\n\nPost: {post}\n"
)


def prompt(post_text: str) -> str:
    return PROMPT.format(post=post_text)


def completion(note: dict[str, Any]) -> str:
    sources = json.loads(note["sources"]) if isinstance(note["sources"], str) else note["sources"]
    lines = [f"Classification: {note['classification']}", f"Note: {note['text']}"]
    if sources:
        lines.append("Sources: " + "; ".join(sources))
    return "\n".join(lines)


def preference_pairs(notes: list[dict[str, Any]]) -> list[dict[str, str]]:
    by_post: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for note in notes:
        if note["reward"] is not None:
            by_post[int(note["post_id"])].append(note)
    pairs = []
    for post_id in sorted(by_post):
        for a, b in itertools.combinations(by_post[post_id], 2):
            if a["reward"] == b["reward"]:
                continue
            chosen, rejected = (a, b) if a["reward"] > b["reward"] else (b, a)
            pairs.append(
                {
                    "prompt": prompt(chosen["post_text"]),
                    "chosen": completion(chosen),
                    "rejected": completion(rejected),
                }
            )
    return pairs


def reward_records(notes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "prompt": prompt(n["post_text"]),
            "completion": completion(n),
            "label": n["reward"] > 0,
            "reward": float(n["reward"]),
        }
        for n in notes
        if n["reward"] is not None
    ]


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def export_preferences(state: Path, out: Path, rewards_out: Path | None = None) -> tuple[int, int]:
    """Write both files from the log in ``state``; returns (pairs, reward records)."""
    if not (state / LOG_FILE).is_file():
        raise StateError(f"{state} holds no writer log ({LOG_FILE}); give the writer's --state folder")
    log = WriterLog(state)
    try:
        notes = list(log.notes())
    finally:
        log.close()
    pairs, records = preference_pairs(notes), reward_records(notes)
    _write(out, pairs)
    _write(rewards_out or out.with_name("rewards.jsonl"), records)
    return len(pairs), len(records)
