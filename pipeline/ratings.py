"""Readers' ratings of revealed notes: what a rating is, who may give one, and storing it.

Levels and reason tags are Community Notes' own: ``helpful``, ``somewhat_helpful`` and
``not_helpful``, with optional tags from its helpful and not-helpful sets (a ``somewhat_helpful``
rating may carry tags from both, as there). One rating per reader per note; a reader may change it,
and giving the same rating twice is refused. Every surface (web, API, Discord, Reddit, the CLI)
calls :func:`rate`, so every one refuses the same things with the same message, changing nothing:
an unknown or unpublished note (a note hidden by a moderator or by readers, a sub-note, a note
never bought), an informer rating its own note, a banned account, an unknown level or tag.

Ratings only ever refer to revealed notes: an unbought note has no id a reader could name, so a
rating can never tell anything about one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from notebazaar.pipeline import records
from notebazaar.pipeline.community import get_account, is_banned
from notebazaar.pipeline.db import write
from notebazaar.pipeline.errors import Conflict, Forbidden, NotFound, ValidationError
from notebazaar.pipeline.validation import check_id

LEVELS = ("helpful", "somewhat_helpful", "not_helpful")
# What a level counts as in the bridging scorer's matrix factorisation.
LEVEL_VALUES: Mapping[str, float] = {"helpful": 1.0, "somewhat_helpful": 0.5, "not_helpful": 0.0}
# Community Notes' rating tags: our name -> the column of its public ratings TSV.
HELPFUL_TAGS: Mapping[str, str] = {
    "other": "helpfulOther",
    "informative": "helpfulInformative",
    "clear": "helpfulClear",
    "empathetic": "helpfulEmpathetic",
    "good_sources": "helpfulGoodSources",
    "unique_context": "helpfulUniqueContext",
    "addresses_claim": "helpfulAddressesClaim",
    "important_context": "helpfulImportantContext",
    "unbiased_language": "helpfulUnbiasedLanguage",
}
NOT_HELPFUL_TAGS: Mapping[str, str] = {
    "other": "notHelpfulOther",
    "incorrect": "notHelpfulIncorrect",
    "sources_missing_or_unreliable": "notHelpfulSourcesMissingOrUnreliable",
    "opinion_speculation_or_bias": "notHelpfulOpinionSpeculationOrBias",
    "missing_key_points": "notHelpfulMissingKeyPoints",
    "outdated": "notHelpfulOutdated",
    "hard_to_understand": "notHelpfulHardToUnderstand",
    "argumentative_or_biased": "notHelpfulArgumentativeOrBiased",
    "off_topic": "notHelpfulOffTopic",
    "spam_harassment_or_abuse": "notHelpfulSpamHarassmentOrAbuse",
    "irrelevant_sources": "notHelpfulIrrelevantSources",
    "opinion_speculation": "notHelpfulOpinionSpeculation",
    "note_not_needed": "notHelpfulNoteNotNeeded",
}
SURFACES = ("web", "api", "discord", "reddit", "cli", "sim", "import")
MAX_TAGS = 8


@dataclass(frozen=True)
class Rating:
    """A stored rating; ``changed`` says whether this call created or changed it."""

    reveal_id: int
    account_id: int
    level: str
    tags: tuple[str, ...]
    surface: str
    rated_at: float
    updated_at: float
    changed: str  # "new" or "changed"

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "tags": list(self.tags)}


def check_level(level: Any) -> str:
    if level not in LEVELS:
        raise ValidationError(f"rating level must be one of {', '.join(LEVELS)}, not {level!r}")
    return str(level)


def tag_key(level: str, tag: str) -> str:
    """How a tag is stored: ``helpful:<tag>`` or ``not_helpful:<tag>`` (both sets have ``other``)."""
    return f"{level}:{tag}"


def check_tags(level: str, tags: Any) -> tuple[str, ...]:
    """Tags that fit the level, stored as ``helpful:<tag>`` / ``not_helpful:<tag>``.

    A bare tag name is looked up in the set(s) the level allows (``other`` under
    ``somewhat_helpful`` is ambiguous and must be qualified)."""
    if tags is None:
        return ()
    if isinstance(tags, str) or not isinstance(tags, list | tuple):
        raise ValidationError("rating tags must be a list of tag names")
    if len(tags) > MAX_TAGS:
        raise ValidationError(f"{len(tags)} rating tags given; the limit is {MAX_TAGS}")
    sets = {
        "helpful": ("helpful",),
        "not_helpful": ("not_helpful",),
        "somewhat_helpful": ("helpful", "not_helpful"),
    }[level]
    out: list[str] = []
    for raw in tags:
        if not isinstance(raw, str):
            raise ValidationError(f"rating tag {raw!r} must be text")
        kind, _, name = raw.rpartition(":")
        kinds = (kind,) if kind else sets
        found = [
            k for k in kinds if k in sets and name in (HELPFUL_TAGS if k == "helpful" else NOT_HELPFUL_TAGS)
        ]
        if not found:
            allowed = sorted(
                {t for k in sets for t in (HELPFUL_TAGS if k == "helpful" else NOT_HELPFUL_TAGS)}
            )
            raise ValidationError(
                f"rating tag {raw!r} does not fit a {level} rating; use one of {', '.join(allowed)}"
            )
        if len(found) > 1:
            raise ValidationError(
                f"rating tag {raw!r} is in both sets; write helpful:{name} or not_helpful:{name}"
            )
        key = tag_key(found[0], name)
        if key not in out:
            out.append(key)
    return tuple(out)


def check_surface(surface: Any) -> str:
    if surface not in SURFACES:
        raise ValidationError(f"surface must be one of {', '.join(SURFACES)}, not {surface!r}")
    return str(surface)


def rateable_note(db: Database, reveal_id: Any) -> dict[str, Any]:
    """The published, top-level revealed note ``reveal_id`` (with its community), or a refusal."""
    reveal_id = check_id("note id", reveal_id)
    row = db.execute(
        "SELECT r.id, r.informer_id, r.unpublished_at, r.unpublish_reason, p.community_id,"
        " m.parent_offer_id, r.hidden_by FROM reveals r JOIN posts p ON p.id = r.post_id"
        " JOIN markets m ON m.id = r.market_id WHERE r.id = ?",
        [reveal_id],
    ).fetchone()
    if row is None or row[5] is not None:  # a sub-note is shown only with its offer, never rated
        raise NotFound(f"no published note {reveal_id}")
    if row[2] is not None and row[6] != "readers":  # a moderator's reason is for the audit log only
        raise Conflict(f"note {reveal_id} was unpublished by a moderator; it can no longer be rated")
    if row[2] is not None:
        raise Conflict(f"note {reveal_id} is hidden ({row[3]}); it can no longer be rated")
    return {"id": int(row[0]), "informer_id": int(row[1]), "community_id": int(row[4])}


def rate(
    db: Database,
    reveal_id: Any,
    account_id: int,
    level: Any,
    *,
    tags: Any = (),
    surface: str,
    now: float | None = None,
) -> Rating:
    """Store a reader's rating of a revealed note (or change it). Refused, with nothing changed,
    when the note cannot be rated, the rater may not rate it, or the same rating was given already."""
    level = check_level(level)
    clean_tags = check_tags(level, tags)
    surface = check_surface(surface)
    get_account(db, check_id("rater id", account_id))
    now = time.time() if now is None else now
    with write(db):
        note = rateable_note(db, reveal_id)
        if note["informer_id"] == account_id:
            raise Forbidden("an informer cannot rate its own note")
        if is_banned(db, account_id, note["community_id"]):
            raise Forbidden("this account is banned from the community and cannot rate its notes")
        old = db.execute(
            "SELECT level, tags, rated_at FROM ratings WHERE reveal_id = ? AND account_id = ?",
            [note["id"], account_id],
        ).fetchone()
        encoded = json.dumps(list(clean_tags))
        if old is not None and old[0] == level and old[1] == encoded:
            raise Conflict(f"you already rated note {note['id']} {level.replace('_', ' ')}")
        rated_at = now if old is None else float(old[2])
        db.execute(
            "INSERT INTO ratings (reveal_id, account_id, level, tags, surface, rated_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (reveal_id, account_id) DO UPDATE SET"
            " level = excluded.level, tags = excluded.tags, surface = excluded.surface,"
            " updated_at = excluded.updated_at",
            [note["id"], account_id, level, encoded, surface, rated_at, now],
        )
        records.recount_note(db, note["id"])  # ratings are an input of the note's verdict
    return Rating(
        note["id"], account_id, level, clean_tags, surface, rated_at, now, "new" if old is None else "changed"
    )


def rating_of(db: Database, reveal_id: int, account_id: int) -> dict[str, Any] | None:
    """A reader's own rating of a note, if any (shown back to the reader on every surface)."""
    row = db.execute(
        "SELECT level, tags, surface, rated_at, updated_at FROM ratings"
        " WHERE reveal_id = ? AND account_id = ?",
        [reveal_id, account_id],
    ).fetchone()
    if row is None:
        return None
    return {
        "level": row[0],
        "tags": json.loads(row[1]),
        "surface": row[2],
        "rated_at": row[3],
        "updated_at": row[4],
    }


def ratings_by(db: Database, account_id: int, reveal_ids: Iterable[int]) -> dict[int, str]:
    """The reader's level for each of these notes it rated (for showing its own ratings)."""
    ids = list(reveal_ids)
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    return {
        int(r[0]): str(r[1])
        for r in db.execute(
            f"SELECT reveal_id, level FROM ratings WHERE account_id = ? AND reveal_id IN ({marks})",
            [account_id, *ids],
        )
    }


def counts(db: Database, reveal_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """How many readers gave each level, per note."""
    ids = list(reveal_ids)
    out: dict[int, dict[str, int]] = {i: dict.fromkeys(LEVELS, 0) for i in ids}
    if not ids:
        return out
    marks = ",".join("?" * len(ids))
    for reveal_id, level, n in db.execute(
        f"SELECT reveal_id, level, COUNT(*) FROM ratings WHERE reveal_id IN ({marks})"
        " GROUP BY reveal_id, level",
        ids,
    ):
        out[int(reveal_id)][str(level)] = int(n)
    return out
