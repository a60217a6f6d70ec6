"""Building the judge a configuration asks for."""

from __future__ import annotations

from sqlite_utils import Database

from pipeline.config import Settings
from pipeline.judge import Judge


def make_judge(settings: Settings, db: Database, *, kind: str | None = None) -> Judge:
    kind = kind or settings.judge.kind
    if kind == "simple":
        from pipeline.judge.simple import SimpleJudge

        return SimpleJudge()
    raise ValueError(f"unknown judge kind {kind!r}")
