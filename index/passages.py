"""Passages the embedding model reads whole.

MiniLM reads the first 256 word pieces of a text and silently drops the rest, so a long note, a
long source or a long reference passage would be judged on its opening lines only; and a sentence
that decides a post, embedded with a page of text that does not, is averaged away (measured: one
deciding sentence after 30 sentences about something else scores 0.22 against the post as part of a
256-piece passage, 0.29 in a 48-piece one, 0.72 on its own). So a text longer than one passage is
read sentence by sentence: each passage is one sentence (fragments under ``MIN_PIECES`` join the
next one), and a sentence longer than the model's window is cut between words. A text that fits
in ``SHORT_PIECES`` is read whole, as before. Similarity is then taken from the best passage.
"""

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


MIN_PIECES = 8  # a fragment shorter than this ("Yes.", "Fig. 2.") joins the next sentence
SHORT_PIECES = 96  # a text this short (a sentence or two) is read whole


def split_passages(embedder: Any, texts: Sequence[str], budget: int | None = None) -> list[list[str]]:
    """Each text as a list of passages (at least one; a short text is its own passage)."""
    limit = budget or budget_of(embedder)
    sizes = _count(embedder, texts)
    out: list[list[str]] = [[text] for text in texts]
    long_texts = [i for i, n in enumerate(sizes) if n > min(SHORT_PIECES, limit)]
    if not long_texts:
        return out
    sentences = {i: [s for s in _SENTENCE.split(texts[i]) if s.strip()] for i in long_texts}
    flat = [s for i in long_texts for s in sentences[i]]
    counts = iter(_count(embedder, flat))
    for i in long_texts:
        passages: list[str] = []
        pending: list[str] = []
        used = 0
        for sentence in sentences[i]:
            n = next(counts)
            if n > limit:  # one sentence too long for the model: cut it between words
                if pending:
                    passages.append(" ".join(pending))
                    pending, used = [], 0
                passages.extend(_cut_words(embedder, sentence, limit))
                continue
            pending.append(sentence)
            used += n
            if used >= MIN_PIECES:
                passages.append(" ".join(pending))
                pending, used = [], 0
        if pending:
            if passages:
                passages[-1] = f"{passages[-1]} {' '.join(pending)}"
            else:
                passages.append(" ".join(pending))
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
