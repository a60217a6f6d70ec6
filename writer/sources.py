"""Where the writer's candidate notes come from.

- :class:`CorpusSource` (``--source corpus FILE``): retrieval over the writer's own passages,
  embedded with the same packaged MiniLM model the market uses; no key, no network. The candidates
  are the passages closest to the post.
- :class:`OpenAISource` (``--source openai``): any OpenAI-compatible server writes a note (and its
  classification) from each retrieved passage; the key comes from the environment.

Either way the bandit (:mod:`notebazaar.writer.bandit`) chooses which candidate to offer and how.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from notebazaar.index.corpus import read_passages
from notebazaar.index.embed import Embedder, get_embedder
from notebazaar.pipeline.config import WriterSettings
from notebazaar.writer.choices import RANKS, Candidate

log = logging.getLogger(__name__)


class NoteSource(Protocol):
    """Candidate notes for a post, best first."""

    def candidates(self, post_text: str) -> list[Candidate]: ...


@dataclass(frozen=True)
class Passage:
    id: str
    text: str
    source: str = ""


class CorpusSource:
    """The passages nearest to the post by cosine similarity of their embeddings."""

    def __init__(
        self, passages: Sequence[Passage], *, embedder: Embedder | None = None, k: int = RANKS
    ) -> None:
        if not passages:
            raise ValueError("the writer's corpus holds no passages")
        self.passages = list(passages)
        self.embedder = embedder or get_embedder()
        self.k = k
        self.vectors = self.embedder.encode([p.text for p in self.passages])

    @classmethod
    def from_file(cls, path: Path, *, embedder: Embedder | None = None) -> CorpusSource:
        """JSONL with ``text`` (and ``source`` or ``url``), or plain-text paragraphs: the format of
        ``notebazaar corpus add``."""
        passages = [
            Passage(f"{path.name}:{i}", p.text, p.source or p.title)
            for i, p in enumerate(read_passages(path))
        ]
        return cls(passages, embedder=embedder)

    def nearest(self, post_text: str) -> list[tuple[Passage, float]]:
        query = self.embedder.encode([post_text])[0]
        sims = self.vectors @ query
        order = np.argsort(-sims, kind="stable")[: self.k]
        return [(self.passages[int(j)], float(sims[int(j)])) for j in order]

    def candidates(self, post_text: str) -> list[Candidate]:
        return [
            Candidate(p.text, (p.source,) if p.source else (), sim, p.id)
            for p, sim in self.nearest(post_text)
        ]


SYSTEM_PROMPT = (
    "You write community notes: short, sourced notes that help a reader judge whether a post is"
    " misleading. Use only the passage you are given; do not invent facts. Answer with a JSON object:"
    ' {"classification": "misleading" or "not_misleading", "note": "<at most 600 characters>"}.'
)


class OpenAISource:
    """A model on an OpenAI-compatible server writes one draft per retrieved passage.

    Quirks of real servers respected: ``response_format`` is ``json_object`` (llama.cpp's server takes
    no schema), ``max_tokens`` is always set (small models run away without it), and the client's
    own retries and timeout apply. A draft that is not valid JSON, or names no classification, is
    dropped, not offered."""

    def __init__(self, retrieval: CorpusSource, settings: WriterSettings, *, client: Any = None) -> None:
        self.retrieval = retrieval
        self.settings = settings
        if client is None:
            from openai import OpenAI

            key = os.environ.get(settings.openai.api_key_env)
            if not key:
                raise ValueError(f"set {settings.openai.api_key_env} to the writer's model server key")
            client = OpenAI(
                base_url=settings.openai.base_url,
                api_key=key,
                timeout=settings.openai.timeout_seconds,
                max_retries=settings.openai.max_retries,
            )
        self.client = client

    def _draft(self, post_text: str, passage: Passage) -> tuple[str, str] | None:
        from openai import OpenAIError

        try:
            response = self.client.chat.completions.create(
                model=self.settings.openai.model,
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": f"Post:\n{post_text}\n\nPassage:\n{passage.text}"},
                ],
                response_format={"type": "json_object"},
                max_tokens=self.settings.openai.max_tokens,
                temperature=0,
            )
            answer = json.loads(response.choices[0].message.content or "")
        except (OpenAIError, json.JSONDecodeError, IndexError, AttributeError) as exc:
            log.warning("writer model: draft dropped (%s)", type(exc).__name__)
            return None
        if not isinstance(answer, dict):
            return None
        classification, note = answer.get("classification"), answer.get("note")
        if classification not in ("misleading", "not_misleading") or not isinstance(note, str):
            log.warning("writer model: draft dropped (no classification or note)")
            return None
        note = " ".join(note.split())[: self.settings.openai.max_note_chars]
        return (classification, note) if note else None

    def candidates(self, post_text: str) -> list[Candidate]:
        out = []
        for passage, sim in self.retrieval.nearest(post_text):
            drafted = self._draft(post_text, passage)
            if drafted is not None:
                sources = (passage.source,) if passage.source else ()
                out.append(Candidate(drafted[1], sources, sim, passage.id, classification=drafted[0]))
        return out
