"""Scoring Community Notes' files directly, without a database (``notebazaar bridging score``).

Every note of the notes file gets a line (a note without ratings needs more ratings); a rating by
the note's own author is left out, as Community Notes does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from notebazaar.pipeline import cnformat
from notebazaar.pipeline.bridging import score
from notebazaar.pipeline.config import BridgingSettings

SCORED_COLUMNS = ("noteId", "intercept", "factor", "status", "ratings")


def score_files(
    notes_path: Path, ratings_path: Path, out_path: Path, params: BridgingSettings
) -> dict[str, Any]:
    authors = {n.note_id: n.author_id for n in cnformat.read_notes(notes_path)}
    notes, raters, values = cnformat.read_rating_columns(ratings_path)
    own = np.fromiter((authors.get(n) == r for n, r in zip(notes, raters, strict=True)), bool, len(notes))
    keep = ~own
    if own.any():  # Community Notes leaves a note's author's own ratings out
        notes = [n for n, k in zip(notes, keep, strict=True) if k]
        raters = [r for r, k in zip(raters, keep, strict=True) if k]
        values = [v for v, k in zip(values, keep, strict=True) if k]
    scored = score(notes, raters, values, params).by_note()
    rows = []
    for note_id in list(authors) + sorted(set(scored) - set(authors)):
        status, intercept, factor, count = scored.get(note_id, ("needs_more_ratings", None, None, 0))
        rows.append((note_id, intercept, factor, status, count))
    cnformat.write_tsv(out_path, SCORED_COLUMNS, rows)
    statuses = [r[3] for r in rows]
    return {
        "notes": len(rows),
        "ratings": int(keep.sum()),
        "own_ratings_left_out": int(own.sum()),
        "helpful": statuses.count("helpful"),
        "not_helpful": statuses.count("not_helpful"),
        "needs_more_ratings": statuses.count("needs_more_ratings"),
        "out": str(out_path),
    }
