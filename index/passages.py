"""Passages the embedding model reads whole.

MiniLM reads the first 256 word pieces of a text and silently drops the rest, so a long note, a
long source or a long reference passage would be judged on its opening lines only. Here a text is
cut at sentence boundaries into passages that each fit (``budget`` word pieces, a margin below the
model's window for its special tokens); a sentence longer than that is cut between words. Similarity
is then taken from the best passage, so a deciding sentence buried in a long page still counts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_SENTENCE = re.compile(r"(?<=[.!?;:])\s+|\n+")
MARGIN = 16  # word pieces left for [CLS], [SEP] and tokenizer differences


def budget_of(embedder: Any) -> int:
    """How many word pieces one passage may hold for this embedder."""
    return max(32, int(getattr(embedder, "max_tokens", 256)) - MARGIN)


def _count(embedder: Any, texts: Sequence[str]) -> list[int]:
    counter = getattr(embedder, "count_tokens", None)
    if counter is not None:
        return list(counter(texts))
    return [round(len(t.split()) * 1.4) + 1 for t in texts]  # a wrapper without a tokenizer: estimate


def split_passages(embedder: Any, texts: Sequence[str], budget: int | None = None) -> list[list[str]]:
    """Each text as a list of passages that fit (at least one; a short text is its own passage).

    Sentences are packed greedily in order, so a passage is a run of whole sentences."""
    limit = budget or budget_of(embedder)
    sizes = _count(embedder, texts)
    out: list[list[str]] = []
    long_texts = [i for i, n in enumerate(sizes) if n > limit]
    for text in texts:
        out.append([text])
    if not long_texts:
        return out
    sentences = {i: [s for s in _SENTENCE.split(texts[i]) if s.strip()] for i in long_texts}
    flat = [s for i in long_texts for s in sentences[i]]
    counts = iter(_count(embedder, flat))
    for i in long_texts:
        passages: list[str] = []
        current: list[str] = []
        used = 0
        for sentence in sentences[i]:
            n = next(counts)
            if n > limit:  # one sentence too long for the model: cut it between words
                if current:
                    passages.append(" ".join(current))
                    current, used = [], 0
                passages.extend(_cut_words(embedder, sentence, limit))
                continue
            if used + n > limit and current:
                passages.append(" ".join(current))
                current, used = [], 0
            current.append(sentence)
            used += n
        if current:
            passages.append(" ".join(current))
        out[i] = passages or [texts[i]]
    return out


def _cut_words(embedder: Any, sentence: str, limit: int) -> list[str]:
    words = sentence.split()
    sizes = _count(embedder, words)
    pieces, current, used = [], [], 0
    for word, n in zip(words, sizes, strict=True):
        if used + n > limit and current:
            pieces.append(" ".join(current))
            current, used = [], 0
        current.append(word)
        used += n
    if current:
        pieces.append(" ".join(current))
    return pieces
