"""Spotlighting untrusted text for a language model, and the code-side checks on what it answers.

Notes, sources and posts are written by people who may try to steer the judge (prompt injection).
The model is told which text is data, but a model can be talked round, so everything that matters
is also checked here, in code, where no note can reach:

* :func:`sanitize` strips invisible Unicode (format characters, tag characters used for "ASCII
  smuggling", variation selectors, private-use and unassigned code points, invisible fillers),
  applies NFKC and collapses whitespace padding. The model and the checks see the same text.
* :class:`Spotlight` wraps each untrusted block between delimiters carrying a random per-call token
  and *datamarks* it (every space becomes a per-call marker character), so a note cannot forge the
  end of its own block: it cannot know the token or the marker in advance.
* :func:`instruction_regions` flags text that reads as instructions to a model (``ignore previous
  instructions``, ``rate this``, ``system:``, ``you are now``), fake answers (``"p_after": 0.99``)
  and fake delimiters. A note with such a region is never bought, and a span inside one never
  counts as evidence.
* :func:`find_span` locates a quoted span in the note (verbatim, up to case and whitespace).

Why regular expressions and not a classifier: the checks must be deterministic, explainable to a
moderator and impossible for the judged model to influence. They catch the known patterns; the
prompt structure and the purchase rule bound what an unknown one can win (see docs/judge-llm.md).
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

# Characters that render as nothing, or as blank space, but are not whitespace to ``str.isspace``.
_INVISIBLE_EXTRA = {
    "\u115f",  # Hangul choseong filler
    "\u1160",  # Hangul jungseong filler
    "\u3164",  # Hangul filler
    "\uffa0",  # halfwidth Hangul filler
    "\u2800",  # Braille pattern blank
    "\u034f",  # combining grapheme joiner
}
_DROP_CATEGORIES = {"Cf", "Co", "Cs", "Cn"}  # format, private use, surrogate, unassigned

# Per-call datamark candidates: printable, rare in prose, unchanged by NFKC.
MARK_CANDIDATES = ("ˆ", "¤", "¦", "‡", "¶", "§", "‖", "⁂", "⁑", "※", "⸬", "⁘")


def _is_variation_selector(ch: str) -> bool:
    code = ord(ch)
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF


def sanitize(text: str) -> str:
    """The text with invisible characters removed and whitespace padding collapsed.

    Line breaks survive (at most one blank line in a row); every other run of whitespace becomes
    one space. Applied to the note before the model sees it and before any check, so the span
    check compares like with like.
    """
    if text.isascii():
        out = text.translate(_ASCII_TABLE)  # the loop below, for ASCII text, in one C call
        return _collapse(out)
    kept = []
    for ch in unicodedata.normalize("NFKC", text):
        if ch in ("\u2028", "\u2029", "\r"):
            kept.append("\n")
        elif ch in "\n\t" or ch.isspace():
            kept.append(ch if ch == "\n" else " ")
        elif (
            unicodedata.category(ch) in _DROP_CATEGORIES
            or unicodedata.category(ch) == "Cc"
            or ch in _INVISIBLE_EXTRA
            or _is_variation_selector(ch)
        ):
            continue
        else:
            kept.append(ch)
    return _collapse("".join(kept))


def _collapse(out: str) -> str:
    out = re.sub(r"[ ]*\n[ ]*", "\n", out)
    out = re.sub(r"\n{3,}", "\n\n", out)
    out = re.sub(r" {2,}", " ", out)
    return out.strip()


# What the loop in ``sanitize`` does to each ASCII character: CR becomes a line break, other
# whitespace a space, other control characters vanish, everything else stays.
_ASCII_TABLE = {
    code: ("\n" if ch == "\r" else " " if (ch.isspace() and ch != "\n") else None)
    for code, ch in ((c, chr(c)) for c in range(128))
    if ch == "\r" or (ch.isspace() and ch != "\n") or (unicodedata.category(ch) == "Cc" and ch != "\n")
}


def _invisible_as_space(text: str) -> str:
    return "".join(
        " "
        if unicodedata.category(ch) in _DROP_CATEGORIES
        or ch in _INVISIBLE_EXTRA
        or _is_variation_selector(ch)
        else ch
        for ch in text
    )


def _tags_as_ascii(text: str) -> str:
    """Unicode tag characters (U+E0020-E007E) read as the ASCII they shadow ("ASCII smuggling")."""
    return "".join(chr(ord(ch) - 0xE0000) if 0xE0020 <= ord(ch) <= 0xE007E else ch for ch in text)


def has_instructions(raw: str) -> bool:
    r"""True when raw, unsanitised text holds instruction-like text in any of three readings.

    Invisible characters can hide an instruction inside a word ("ig\u200bnore": caught once they are
    stripped, as :func:`sanitize` does), as the only separator between words ("rules\u200bIgnore
    all": caught once they read as spaces), or as tag characters spelling ASCII that a model may
    still read (caught once they read as that ASCII).
    """
    if raw.isascii():  # no invisible or tag characters: the three readings are the same text
        return bool(instruction_regions(sanitize(raw)))
    readings = {raw, _invisible_as_space(raw), _tags_as_ascii(raw)}  # one, for ordinary text
    return any(instruction_regions(sanitize(text)) for text in readings)


@dataclass(frozen=True)
class Spotlight:
    """The per-call delimiter token and datamark. Make a fresh one for every model call."""

    token: str
    mark: str

    @classmethod
    def fresh(cls, texts: Iterable[str]) -> Spotlight:
        """A random token, and a random marker that occurs in none of ``texts``.

        Raises ValueError if every candidate marker occurs (a note stuffed with them to confuse
        the marking); the judge turns that into a refusal.
        """
        joined = "".join(texts)
        free = [m for m in MARK_CANDIDATES if m not in joined]
        if not free:
            raise ValueError("no datamark character is free in the untrusted text")
        return cls(token=secrets.token_hex(8), mark=secrets.choice(free))

    def begin(self, label: str) -> str:
        return f"<<<BEGIN {self.token} {label}>>>"

    def end(self, label: str) -> str:
        return f"<<<END {self.token} {label}>>>"

    def mark_text(self, text: str) -> str:
        """Datamark: every space and line break inside the block becomes the marker."""
        return re.sub(r"[ \n]", self.mark, text)

    def wrap(self, label: str, text: str) -> str:
        """An untrusted block: sanitized, datamarked, between this call's delimiters."""
        return f"{self.begin(label)}\n{self.mark_text(sanitize(text))}\n{self.end(label)}"

    def unmark(self, text: str) -> str:
        """What a model quoted, with this call's marker turned back into spaces."""
        return text.replace(self.mark, " ")


@dataclass(frozen=True)
class Region:
    """A stretch of sanitized text flagged as instruction-like, with the kind of pattern found."""

    start: int
    end: int
    kind: str


_FLAGS = re.IGNORECASE | re.MULTILINE
INSTRUCTION_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "override",
        re.compile(
            r"\b(ignore|disregard|forget|override|bypass)\b[^.!?\n]{0,30}?\b(instructions?|prompts?)\b"
            r"|\b(ignore|disregard|forget|override)\s+(all\s+|any\s+)?(the\s+)?(previous|prior|above|earlier|your)"
            r"\s+(rules|messages?|context|directions|guidance|guidelines|orders|task)\b",
            _FLAGS,
        ),
    ),
    (
        "rating_request",
        re.compile(
            r"\b(rate|score|grade|classify|mark)\s+(this|the|my|it)\b[^.!?\n]{0,40}?"
            r"\b(decisive|helpful|conclusive|definitive|credible|true|misleading|not[ _]misleading"
            r"|maximum|highest|max|\d(\.\d+)?)\b",
            _FLAGS,
        ),
    ),
    (
        "role_marker",
        re.compile(
            r"(^|[.!?]\s+)\s*[\[<({\"'*#|]*\s*(system|assistant|developer|user|human)\s*[\]>)}\"'*|]*\s*:",
            _FLAGS,
        ),
    ),
    (
        "chat_template",
        re.compile(r"<\|[a-z_]+\|>|\[/?INST\]|<<\s*/?\s*SYS\s*>>|</s>|\bim_(start|end)\b", _FLAGS),
    ),
    (
        "persona",
        re.compile(
            r"\b(you\s+are\s+(now|no\s+longer)|pretend\s+(to\s+be|you)|role[- ]?play|jailbreak"
            r"|developer\s+mode)\b",
            _FLAGS,
        ),
    ),
    (
        "addressing_judge",
        re.compile(
            r"\b(dear|attention|note\s+to|hey|hello|instructions?\s+for)\s*,?\s*(the\s+)?"
            r"(judge|model|ai|assistant|llm|grader|evaluator)\b"
            r"|\bnew\s+instructions?\b|\b(the\s+)?judge\s+(must|should|will|shall|has\s+to)\b",
            _FLAGS,
        ),
    ),
    (
        "answer_format",
        re.compile(
            r"\b(p_after|p_before|p_misleading)\b"
            r"|[\"']\s*(span|rationale|p|probability|verdict)\s*[\"']\s*:"
            r"|\b(respond|reply|output|return)\s+(only\s+)?(with|json|exactly|the\s+following)\b",
            _FLAGS,
        ),
    ),
    (
        "fake_delimiter",
        re.compile(
            r"<<<|>>>|</?\s*(note|untrusted|data|post|system|instructions?|end)\s*>"
            r"|\[/?\s*(note|untrusted|data|end)\s*\]"
            r"|\b(end|begin)\s+(of\s+)?(the\s+)?(untrusted|note)\b"
            r"|^\s*[-=#*_]{3,}\s*(end|begin|system|instructions?)\b",
            _FLAGS,
        ),
    ),
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s|\n")


def _sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The sentence (or line) around ``text[start:end]``; a match spanning sentences keeps both."""
    left = 0
    for m in _SENTENCE_END.finditer(text, 0, start):
        left = m.end()
    right_match = _SENTENCE_END.search(text, end)
    right = right_match.start() if right_match else len(text)
    return left, right


def instruction_regions(text: str) -> list[Region]:
    """Every sentence of ``text`` (sanitized) that reads as an instruction to a model.

    Regions are whole sentences: an instruction's surroundings ("...and so this is decisive.")
    are part of the same attempt.
    """
    regions = []
    for kind, pattern in INSTRUCTION_PATTERNS:
        for m in pattern.finditer(text):
            left, right = _sentence_bounds(text, m.start(), m.end())
            regions.append(Region(left, right, kind))
    return sorted(regions, key=lambda r: (r.start, r.end, r.kind))


def _fold(text: str) -> tuple[str, list[int]]:
    """Case-folded text with whitespace runs as one space, and each folded char's source index."""
    chars: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        if ch.isspace():
            if chars and chars[-1] == " ":
                continue
            chars.append(" ")
            index.append(i)
            continue
        for c in ch.casefold():
            chars.append(c)
            index.append(i)
    return "".join(chars), index


def find_span(span: str, text: str) -> list[tuple[int, int]]:
    """Where ``span`` occurs in ``text`` (both sanitized), ignoring case and whitespace differences.

    Returns ``(start, end)`` offsets into ``text`` for every occurrence; empty if the span is not a
    verbatim quote.
    """
    needle, _ = _fold(span.strip())
    needle = needle.strip()
    if not needle:
        return []
    hay, index = _fold(text)
    found = []
    at = hay.find(needle)
    while at != -1:
        last = at + len(needle) - 1
        found.append((index[at], index[last] + 1))
        at = hay.find(needle, at + 1)
    return found


def overlaps(start: int, end: int, regions: Iterable[Region]) -> bool:
    return any(start < r.end and r.start < end for r in regions)
