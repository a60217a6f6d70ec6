"""A tiny deterministic judge for tests and scripted demos.

It believes a note in proportion to how much of the post's vocabulary the note shares: a note that
talks about the post moves the reader toward its classification, an off-topic one barely does.
"""

from __future__ import annotations

import re

from notebazaar.pipeline.judge import Context, NoteView, PostView, Verdict
from notebazaar.pipeline.rules import clamp

_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 3}


class SimpleJudge:
    name = "simple"

    def prior(self, post: PostView, context: Context) -> float:
        return 0.5

    def inspect(self, post: PostView, context: Context, note: NoteView, p_before: float) -> Verdict:
        post_words = _words(post.text)
        overlap = len(post_words & _words(note.text)) / max(1, len(post_words))
        strength = min(0.9, 0.1 + overlap)
        target = 0.99 if note.classification == "misleading" else 0.01
        return Verdict(p_before, clamp(p_before + (target - p_before) * strength))
