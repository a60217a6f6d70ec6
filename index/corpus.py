"""Loading the trusted reference corpus (``notebazaar corpus add FILE``) into ``documents`` and the index.

Formats, chosen by the file's suffix:

* ``.jsonl`` / ``.ndjson``: one JSON object per line with a non-empty ``"text"``; optional ``"title"``
  and ``"source"`` (or ``"url"``). Blank lines are skipped.
* anything else: plain text, one passage per blank-line-separated paragraph (its lines joined by
  spaces); the file's name is each passage's source.

A passage longer than the embedding model reads (over 96 word pieces) is stored sentence by
sentence, each row keeping its title and source.

Why all-or-nothing: the whole file is parsed and checked before any row is written, and the rows go
in one transaction, so a malformed line (named by its number) leaves the corpus as it was. Passages
already in the corpus for the same community (same text) are skipped, so loading a file twice adds
nothing.

Limits (``[index]`` in config.toml): a file over ``max_corpus_file_bytes`` is refused before it is
read, a file holding a NUL byte is refused as binary, and a passage over ``max_passage_chars`` is
refused by its line or paragraph number (embedding one 50 MB passage once took 6.3 GB of memory;
the model reads only its first few hundred words anyway).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlite_utils import Database

from notebazaar.index.passages import split_passages
from notebazaar.index.retrieval import Progress as ProgressCallback
from notebazaar.index.retrieval import Retriever
from notebazaar.pipeline.config import IndexSettings, Settings
from notebazaar.pipeline.db import write
from notebazaar.pipeline.errors import ValidationError

JSONL_SUFFIXES = (".jsonl", ".ndjson")
#: Files with more passages than this show a progress bar while they are embedded.
PROGRESS_MIN = 200
_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n")


@dataclass(frozen=True)
class Passage:
    text: str
    title: str = ""
    source: str = ""


def _optional_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"{where}: {key!r} must be a string")
    return value.strip()


def parse_jsonl(content: str, name: str, max_chars: int | None = None) -> list[Passage]:
    """Passages from JSON lines; the first bad line raises, naming its number."""
    passages = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise ValidationError(f'{where}: expected a JSON object with a "text" field')
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValidationError(f'{where}: "text" must be a non-empty string')
        _check_length(text.strip(), where, max_chars)
        source = _optional_str(obj, "source", where) or _optional_str(obj, "url", where)
        passages.append(Passage(text.strip(), _optional_str(obj, "title", where), source))
    return passages


def parse_text(content: str, name: str, max_chars: int | None = None) -> list[Passage]:
    """Passages from plain text: one per blank-line-separated paragraph."""
    paragraphs = [" ".join(p.split()) for p in _PARAGRAPH.split(content.replace("\r\n", "\n"))]
    passages = []
    for number, paragraph in enumerate((p for p in paragraphs if p), start=1):
        _check_length(paragraph, f"{name} paragraph {number}", max_chars)
        passages.append(Passage(paragraph, "", name))
    return passages


def _check_length(text: str, where: str, max_chars: int | None) -> None:
    if max_chars is not None and len(text) > max_chars:
        raise ValidationError(
            f"{where}: the passage is {len(text):,} characters; the limit is {max_chars:,}"
            " ([index] max_passage_chars): split it into paragraphs"
        )


def read_passages(file: Path, limits: IndexSettings | None = None) -> list[Passage]:
    """Parse ``file`` (JSONL or plain text by suffix); raise ``ValidationError`` on any problem."""
    limits = limits or IndexSettings()
    try:
        size = file.stat().st_size
        if size > limits.max_corpus_file_bytes:
            raise ValidationError(
                f"{file.name} is {size:,} bytes; the limit is {limits.max_corpus_file_bytes:,}"
                " ([index] max_corpus_file_bytes): split it into smaller files"
            )
        raw = file.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read {file}: {exc.strerror}") from None
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise ValidationError(f"{file.name} holds a NUL byte at offset {nul}: it is not a text file")
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{file.name} is not UTF-8 text (bad byte at offset {exc.start})") from None
    if file.suffix.lower() in JSONL_SUFFIXES:
        passages = parse_jsonl(content, file.name, limits.max_passage_chars)
    else:
        passages = parse_text(content, file.name, limits.max_passage_chars)
    if not passages:
        raise ValidationError(f"{file.name} holds no passages")
    return passages


def insert_passages(db: Database, passages: list[Passage], community_id: int | None) -> int:
    """Insert new passages as ``reference`` documents in one transaction; returns how many."""
    now = time.time()
    with write(db):
        known = {
            r[0]
            for r in db.execute(
                "SELECT text FROM documents WHERE kind = 'reference' AND community_id IS ?", [community_id]
            )
        }
        rows = []
        for p in passages:
            if p.text in known:
                continue
            known.add(p.text)
            rows.append((community_id, p.title, p.text, p.source, now))
        db.conn.executemany(
            "INSERT INTO documents (kind, ref_id, community_id, title, text, source, created_at)"
            " VALUES ('reference', NULL, ?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows)


def model_sized(passages: list[Passage], embedder: Any) -> list[Passage]:
    """Passages the model reads whole: a long one is stored sentence by sentence, each with the
    passage's title and source (:mod:`notebazaar.index.passages`), so a long source corroborates
    by its best sentence instead of by its first 256 word pieces."""
    pieces = split_passages(embedder, [p.text for p in passages])
    return [
        Passage(text, p.title, p.source) for p, texts in zip(passages, pieces, strict=True) for text in texts
    ]


@contextmanager
def _progress_bar(show: bool) -> Iterator[ProgressCallback | None]:
    """A rich progress bar on stderr (stdout stays machine-readable), as a ``(done, total)`` callback."""
    if not show:
        yield None
        return
    columns = (
        TextColumn("embedding passages"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    console = Console(stderr=True)
    # On a terminal the bar disappears when done; elsewhere (logs, CI) its final state is printed once.
    with Progress(*columns, console=console, transient=console.is_terminal) as bar:
        task = bar.add_task("embed", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def add_corpus_file(
    db: Database,
    db_path: Path,
    file: Path,
    *,
    settings: Settings,
    community_id: int | None = None,
    retriever: Retriever | None = None,
) -> int:
    """Load ``file`` into the reference corpus (global, or one community's) and index it.

    Returns the number of passages added. Nothing is written if any line is malformed.
    """
    if (
        community_id is not None
        and db.execute("SELECT 1 FROM communities WHERE id = ?", [community_id]).fetchone() is None
    ):
        raise ValidationError(f"no community {community_id}")
    passages = read_passages(Path(file), settings.index)
    retriever = retriever or Retriever(db, Path(db_path).parent, settings.index)
    passages = model_sized(passages, retriever.embedder)
    added = insert_passages(db, passages, community_id)
    with _progress_bar(added >= PROGRESS_MIN) as progress:
        retriever.sync(progress=progress)
    retriever.save()
    return added
