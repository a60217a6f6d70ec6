"""Building the judge a configuration asks for."""

from __future__ import annotations

from pathlib import Path

from sqlite_utils import Database

from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.judge import Judge


def make_judge(
    settings: Settings, db: Database, *, kind: str | None = None, prompt_text: str | None = None
) -> Judge:
    """The judge for ``kind`` (default: the configured one). ``prompt_text`` overrides the LLM
    judge's prompt; without it the LLM judge uses the packaged default (prompt version 1)."""
    kind = kind or settings.judge.kind
    if kind == "openai":
        from notebazaar.pipeline import prompts
        from notebazaar.pipeline.judge.llm import LLMJudge

        if prompt_text is None:
            prompt_text = str(
                prompts.get_version(db, prompts.ensure_default_prompt(db), community_id=None)["text"]
            )
        return LLMJudge(settings.judge.openai, prompt_text)
    if kind == "local":
        from notebazaar.index.retrieval import Retriever
        from notebazaar.pipeline.judge.local import LocalJudge

        return LocalJudge(db, Retriever(db, db_folder(db), settings.index))
    if kind == "simple":
        from notebazaar.pipeline.judge.simple import SimpleJudge

        return SimpleJudge()
    raise ValueError(f"unknown judge kind {kind!r}")


def db_folder(db: Database) -> Path:
    """The folder of the database file: where every piece of a run's state lives."""
    for _, name, filename in db.execute("PRAGMA database_list").fetchall():
        if name == "main" and filename:
            return Path(filename).parent
    raise ValueError("an in-memory database has no folder for the index; open a database file")
