"""Community Notes' public TSV formats: reading its notes and ratings, writing ours in them.

Column names are those of Community Notes' data download (``notes-00000.tsv``,
``ratings-00000.tsv`` or a folder of ``ratings-*.tsv``, ``noteStatusHistory-00000.tsv``): a rating
is ``noteId``, ``raterParticipantId``, ``createdAtMillis``, ``helpfulnessLevel`` (``HELPFUL``,
``SOMEWHAT_HELPFUL``, ``NOT_HELPFUL``; older files give ``helpful`` / ``notHelpful`` 0/1 instead)
and one 0/1 column per reason tag (``helpfulClear``, ``notHelpfulIncorrect``, ...). Only the
columns we use are required; a missing one is named in the error with the file.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from notebazaar.pipeline.errors import ValidationError
from notebazaar.pipeline.ratings import HELPFUL_TAGS, NOT_HELPFUL_TAGS

csv.field_size_limit(sys.maxsize)  # a note's summary can be long

LEVEL_FROM_CN = {"HELPFUL": "helpful", "SOMEWHAT_HELPFUL": "somewhat_helpful", "NOT_HELPFUL": "not_helpful"}
LEVEL_TO_CN = {v: k for k, v in LEVEL_FROM_CN.items()}
CLASSIFICATION_FROM_CN = {
    "MISINFORMED_OR_POTENTIALLY_MISLEADING": "misleading",
    "NOT_MISLEADING": "not_misleading",
}
CLASSIFICATION_TO_CN = {v: k for k, v in CLASSIFICATION_FROM_CN.items()}
STATUS_TO_CN = {
    "helpful": "CURRENTLY_RATED_HELPFUL",
    "not_helpful": "CURRENTLY_RATED_NOT_HELPFUL",
    "needs_more_ratings": "NEEDS_MORE_RATINGS",
}
TAG_COLUMNS: dict[str, str] = {
    **{column: f"helpful:{tag}" for tag, column in HELPFUL_TAGS.items()},
    **{column: f"not_helpful:{tag}" for tag, column in NOT_HELPFUL_TAGS.items()},
}
RATING_COLUMNS = (
    "noteId",
    "raterParticipantId",
    "createdAtMillis",
    "version",
    "agree",
    "disagree",
    "helpful",
    "notHelpful",
    "helpfulnessLevel",
    *HELPFUL_TAGS.values(),
    *NOT_HELPFUL_TAGS.values(),
    "ratedOnTweetId",
)
NOTE_COLUMNS = (
    "noteId",
    "noteAuthorParticipantId",
    "createdAtMillis",
    "tweetId",
    "classification",
    "trustworthySources",
    "summary",
    "isMediaNote",
)
STATUS_COLUMNS = (
    "noteId",
    "noteAuthorParticipantId",
    "createdAtMillis",
    "timestampMillisOfCurrentStatus",
    "currentStatus",
    "timestampMillisOfLatestNonNMRStatus",
    "mostRecentNonNMRStatus",
)


@dataclass(frozen=True)
class CnRating:
    note_id: str
    rater_id: str
    created_at_millis: int
    level: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class CnNote:
    note_id: str
    author_id: str
    created_at_millis: int
    tweet_id: str
    classification: str
    summary: str


def rating_files(path: Path) -> list[Path]:
    """A ratings TSV, or every ``*.tsv`` in a folder (Community Notes ships ratings in parts)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == ".tsv")
        if not files:
            raise ValidationError(f"{path} holds no .tsv ratings files")
        return files
    if not path.is_file():
        raise ValidationError(f"{path} is neither a ratings .tsv file nor a folder of them")
    return [path]


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, int], list[str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise ValidationError(f"{path} is empty; expected a header line")
        index = {name: i for i, name in enumerate(header)}
        missing = [c for c in required if c not in index]
        if missing:
            raise ValidationError(f"{path} lacks the column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            if len(row) < len(header):
                raise ValidationError(f"{path} line {line}: {len(row)} fields, the header has {len(header)}")
            yield line, index, row


def _level(path: Path, line: int, index: dict[str, int], row: list[str]) -> str:
    raw = row[index["helpfulnessLevel"]].strip() if "helpfulnessLevel" in index else ""
    if raw:
        level = LEVEL_FROM_CN.get(raw)
        if level is None:
            raise ValidationError(
                f"{path} line {line}: helpfulnessLevel {raw!r} is not one of {', '.join(LEVEL_FROM_CN)}"
            )
        return level
    if "helpful" in index and row[index["helpful"]].strip() == "1":
        return "helpful"
    if "notHelpful" in index and row[index["notHelpful"]].strip() == "1":
        return "not_helpful"
    raise ValidationError(f"{path} line {line}: no helpfulnessLevel (nor helpful / notHelpful) given")


def read_rating_columns(path: Path) -> tuple[list[str], list[str], list[float]]:
    """Just what the scorer needs, fast: note ids, rater ids and values (1, 0.5, 0).

    Each line is split only as far as the last column needed (``str.split`` with a limit), which
    reads Community Notes' 35-column rows several times faster than a full TSV parse."""
    from notebazaar.pipeline.ratings import LEVEL_VALUES

    values = {cn: LEVEL_VALUES[ours] for cn, ours in LEVEL_FROM_CN.items()}
    notes: list[str] = []
    raters: list[str] = []
    out: list[float] = []
    for file in rating_files(path):
        with file.open(encoding="utf-8", newline="") as handle:
            header = handle.readline().rstrip("\r\n").split("\t")
            index = {name: i for i, name in enumerate(header)}
            missing = [c for c in ("noteId", "raterParticipantId", "helpfulnessLevel") if c not in index]
            if (
                missing
            ):  # an older file without helpfulnessLevel: the full parse below reads helpful/notHelpful
                if "helpfulnessLevel" in missing and len(missing) == 1:
                    for line, idx, row in _rows(file, ("noteId", "raterParticipantId")):
                        notes.append(row[idx["noteId"]])
                        raters.append(row[idx["raterParticipantId"]])
                        out.append(LEVEL_VALUES[_level(file, line, idx, row)])
                    continue
                raise ValidationError(f"{file} lacks the column(s) {', '.join(missing)}")
            n_i, r_i, l_i = index["noteId"], index["raterParticipantId"], index["helpfulnessLevel"]
            last = max(n_i, r_i, l_i)
            for line_no, line in enumerate(handle, start=2):
                parts = line.rstrip("\r\n").split("\t", last + 1)
                if len(parts) <= last:
                    if not line.strip():
                        continue
                    raise ValidationError(
                        f"{file} line {line_no}: {len(parts)} fields, the header has {len(header)}"
                    )
                value = values.get(parts[l_i])
                if value is None:
                    raise ValidationError(
                        f"{file} line {line_no}: helpfulnessLevel {parts[l_i]!r} is not one of"
                        f" {', '.join(LEVEL_FROM_CN)}"
                    )
                notes.append(parts[n_i])
                raters.append(parts[r_i])
                out.append(value)
    return notes, raters, out


def read_ratings(path: Path) -> Iterator[CnRating]:
    """Every rating with its level and tags."""
    for file in rating_files(path):
        for line, index, row in _rows(file, ("noteId", "raterParticipantId", "createdAtMillis")):
            level = _level(file, line, index, row)
            tags = tuple(
                tag
                for column, tag in TAG_COLUMNS.items()
                if column in index and row[index[column]].strip() == "1"
            )
            try:
                created = int(float(row[index["createdAtMillis"]]))
            except ValueError:
                raise ValidationError(f"{file} line {line}: createdAtMillis is not a number") from None
            yield CnRating(row[index["noteId"]], row[index["raterParticipantId"]], created, level, tags)


def read_notes(path: Path) -> Iterator[CnNote]:
    if not path.is_file():
        raise ValidationError(f"{path} is not a notes .tsv file")
    required = (
        "noteId",
        "noteAuthorParticipantId",
        "createdAtMillis",
        "tweetId",
        "classification",
        "summary",
    )
    for line, index, row in _rows(path, required):
        classification = CLASSIFICATION_FROM_CN.get(row[index["classification"]].strip())
        if classification is None:
            raise ValidationError(
                f"{path} line {line}: classification {row[index['classification']]!r} is not one of"
                f" {', '.join(CLASSIFICATION_FROM_CN)}"
            )
        try:
            created = int(float(row[index["createdAtMillis"]]))
        except ValueError:
            raise ValidationError(f"{path} line {line}: createdAtMillis is not a number") from None
        yield CnNote(
            row[index["noteId"]],
            row[index["noteAuthorParticipantId"]],
            created,
            row[index["tweetId"]],
            classification,
            row[index["summary"]],
        )


def write_tsv(
    path: Path, columns: tuple[str, ...], rows: Iterator[tuple[object, ...]] | list[tuple[object, ...]]
) -> int:
    """A TSV with a header; tabs and line breaks inside values become spaces. Returns the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("\t".join(columns) + "\n")
        for row in rows:
            handle.write("\t".join(_cell(v) for v in row) + "\n")
            count += 1
    return count


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value).replace("\t", " ").replace("\r", " ").replace("\n", " ")
