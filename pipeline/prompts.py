"""Versioned judge prompts. Moderators edit a prompt by saving a new version, compare versions,
evaluate one on labelled data, and activate it for their community.

Version 1 of the ``judge`` prompt is the packaged file ``pipeline/judge/prompts/judge.md``, shared
by every community. Every later version belongs to the community whose moderator saved it: the
moderators of another community can neither read, diff, evaluate nor activate it (``community_id``
scopes each lookup; ``None`` is the operator's view of them all, used by the CLI). Version numbers
are one sequence per prompt name across communities, so ``v7`` names one text everywhere.

Versions are immutable: an edit is always a new row, so an evaluation or an inspection can name
exactly the text it used. Line endings are stored as ``\\n``: a browser sends a textarea's lines
with ``\\r\\n``, and a diff against the packaged ``\\n`` text would show every line as changed.
"""

from __future__ import annotations

import difflib
import time
from importlib import resources
from typing import Any

from sqlite_utils import Database

from notebazaar.pipeline.community import audit, get_community, require_moderator
from notebazaar.pipeline.db import write
from notebazaar.pipeline.errors import NotFound, ValidationError
from notebazaar.pipeline.validation import check_id, check_text

DEFAULT_NAME = "judge"
MAX_PROMPT_CHARS = 20_000


def normalise_newlines(text: str) -> str:
    """``\\r\\n`` and lone ``\\r`` as ``\\n``, so only real edits differ."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def packaged_prompt(name: str = DEFAULT_NAME) -> str:
    return resources.files("notebazaar.pipeline.judge").joinpath("prompts", f"{name}.md").read_text("utf-8")


def ensure_default_prompt(db: Database, name: str = DEFAULT_NAME) -> int:
    """The id of the first version of ``name``, seeding it from the packaged file if absent."""
    with write(db):
        row = db.execute("SELECT id FROM prompts WHERE name = ? ORDER BY version LIMIT 1", [name]).fetchone()
        if row:
            return int(row[0])
        cursor = db.execute(
            "INSERT INTO prompts (name, version, text, note, created_at) VALUES (?, 1, ?, ?, ?)",
            [name, normalise_newlines(packaged_prompt(name)), "packaged default", time.time()],
        )
        return int(cursor.lastrowid)  # type: ignore[arg-type]


def list_versions(
    db: Database, *, community_id: int | None, name: str = DEFAULT_NAME
) -> list[dict[str, Any]]:
    """The versions of ``name`` a community may see: the shared default and its own."""
    ensure_default_prompt(db, name)
    return list(
        db.query(
            "SELECT p.id, p.name, p.version, p.note, p.created_at, a.handle AS created_by"
            " FROM prompts p LEFT JOIN accounts a ON a.id = p.created_by"
            " WHERE p.name = ? AND (? IS NULL OR p.community_id IS NULL OR p.community_id = ?)"
            " ORDER BY p.version",
            [name, community_id, community_id],
        )
    )


def get_version(db: Database, prompt_id: int, *, community_id: int | None) -> dict[str, Any]:
    """A prompt version, if ``community_id`` may see it (another community's is not found)."""
    rows = list(db["prompts"].rows_where("id = ?", [check_id("prompt id", prompt_id)]))
    owner = rows[0]["community_id"] if rows else None
    if not rows or (community_id is not None and owner is not None and owner != community_id):
        raise NotFound(f"no prompt version {prompt_id}")
    return rows[0]


def version_id(db: Database, version: int, *, community_id: int | None, name: str = DEFAULT_NAME) -> int:
    """The id of version ``version`` of ``name``, if ``community_id`` may see it."""
    ensure_default_prompt(db, name)
    row = db.execute(
        "SELECT id FROM prompts WHERE name = ? AND version = ?"
        " AND (? IS NULL OR community_id IS NULL OR community_id = ?)",
        [name, version, community_id, community_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"no version {version} of the {name} prompt")
    return int(row[0])


def create_version(
    db: Database,
    text: str,
    *,
    name: str = DEFAULT_NAME,
    note: str = "",
    actor_id: int | None = None,
    community_id: int | None = None,
) -> int:
    """Save ``text`` as the next version of ``name`` for ``community_id``; returns the new prompt id."""
    if isinstance(text, str):
        text = normalise_newlines(text)
    text = check_text("prompt", text, max_chars=MAX_PROMPT_CHARS, required=True)
    note = check_text("note", note, max_chars=500)
    if community_id is not None:
        require_moderator(db, actor_id, community_id)
    ensure_default_prompt(db, name)
    with write(db):
        version = db.execute("SELECT MAX(version) FROM prompts WHERE name = ?", [name]).fetchone()[0]
        cursor = db.execute(
            "INSERT INTO prompts (name, version, text, note, created_by, created_at, community_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [name, version + 1, text, note, actor_id, time.time(), community_id],
        )
        prompt_id = int(cursor.lastrowid)  # type: ignore[arg-type]
        audit(db, actor_id, "prompt.create", f"prompt:{prompt_id}", {"version": version + 1}, community_id)
        return prompt_id


def diff(db: Database, old_id: int, new_id: int, *, community_id: int | None) -> str:
    """A unified diff between two prompt versions, by lines: line endings (older rows may hold CRLF)
    and a missing newline at the very end (a saved edit is stripped) are not changes."""
    old = get_version(db, old_id, community_id=community_id)
    new = get_version(db, new_id, community_id=community_id)
    lines = difflib.unified_diff(
        normalise_newlines(old["text"]).rstrip("\n").split("\n"),
        normalise_newlines(new["text"]).rstrip("\n").split("\n"),
        fromfile=f"{old['name']} v{old['version']}",
        tofile=f"{new['name']} v{new['version']}",
        lineterm="",
    )
    return "".join(f"{line}\n" for line in lines)


def activate(db: Database, community_id: int, prompt_id: int, *, actor_id: int | None) -> None:
    """Make a prompt version the one the community's judge uses. Moderators only; audited. Only
    the shared default or one of the community's own versions can be activated."""
    from notebazaar.pipeline.judge.llm import check_prompt  # the LLM judge's rules for its prompt

    require_moderator(db, actor_id, community_id)
    prompt = get_version(db, prompt_id, community_id=community_id)
    problems = check_prompt(str(prompt["text"]))
    if problems:  # an active prompt the judge cannot use would stop every market from settling
        raise ValidationError(f"prompt {prompt_id} cannot be activated: {'; '.join(problems)}")
    with write(db):
        db["communities"].update(community_id, {"active_prompt_id": prompt_id})
        audit(
            db,
            actor_id,
            "prompt.activate",
            f"prompt:{prompt_id}",
            {"name": prompt["name"], "version": prompt["version"]},
            community_id,
        )


def active_prompt(db: Database, community_id: int) -> dict[str, Any]:
    """The community's active prompt version (the packaged default until one is activated)."""
    com = get_community(db, community_id)
    if com.active_prompt_id is not None:
        return get_version(db, com.active_prompt_id, community_id=community_id)
    return get_version(db, ensure_default_prompt(db), community_id=community_id)
