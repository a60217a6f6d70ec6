"""Turning a bought note into a Reddit comment, with its text escaped so it renders as written.

Note text is untrusted: it must not become links, headings, tables, spoilers, superscripts, user
pings (``u/name``) or HTML entities. Every character Reddit's Markdown (snudown, and CommonMark on
new Reddit) treats as syntax is backslash-escaped, and each line is quoted, so block syntax at the
start of a line (lists, code indents) is inert too. Every line of the note is its own paragraph
inside the quote, so lines never run together.

Each comment ends with a hidden marker naming its reveal (:func:`note_marker`, an empty link that
renders as nothing). After an interrupted delivery the bot finds its own comment by it and adopts
it instead of posting the note again.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

# The characters snudown accepts after a backslash; CommonMark accepts any ASCII punctuation.
_SYNTAX = re.compile(r"([\\`*_{}\[\]()#+\-.!:|&<>/^~])")
MAX_COMMENT_CHARS = 10_000  # Reddit refuses longer comments
_CLASSIFICATION_WORDS = {
    "misleading": "the post is misleading",
    "not_misleading": "the post is not misleading",
}


def escape_markdown(text: str) -> str:
    """``text`` with every Markdown syntax character escaped; lines keep their breaks.

    Leading spaces are dropped so a line can never become an indented code block.
    """
    return "\n".join(_SYNTAX.sub(r"\\\1", line.strip()) for line in text.splitlines())


def quote_block(text: str) -> str:
    """Escaped text as a block quote, each line its own paragraph (Markdown would otherwise join
    consecutive lines into one); blank lines between paragraphs collapse into one break."""
    lines = [line for line in escape_markdown(text).split("\n") if line]
    return "\n>\n".join(f"> {line}" for line in lines)


def note_marker(reveal_id: int) -> str:
    """The hidden marker that identifies the comment of one reveal (renders as nothing)."""
    return f"[](#notebazaar-note-{int(reveal_id)})"


def author_name(informer: str) -> str:
    """The informer as readers know them: ``u/alice`` for a Reddit account (the slash escaped, so
    Reddit neither links nor notifies the user), else the escaped handle."""
    if informer.startswith("reddit:"):
        return "u\\/" + escape_markdown(informer.removeprefix("reddit:"))
    return escape_markdown(informer)


def source_line(source: str) -> str:
    """A source as a link when it is a plain http(s) URL, else as escaped text."""
    parts = urlsplit(source)
    if parts.scheme in ("http", "https") and parts.netloc and not any(c.isspace() for c in source):
        target = quote(source, safe=":/?#@!$&'*+,;=%~-._")  # parentheses and brackets get encoded
        return f"[{escape_markdown(source)}]({target})"
    return escape_markdown(source)


def note_comment(
    *, reveal_id: int, classification: str, text: str, sources: tuple[str, ...], informer: str, price: int
) -> str:
    """The reply comment for a bought note."""
    lines = [
        f"**Community note** ({_CLASSIFICATION_WORDS.get(classification, escape_markdown(classification))})",
        "",
        quote_block(text),
        "",
    ]
    if sources:
        lines += ["Sources:", ""] + [f"* {source_line(s)}" for s in sources] + [""]
    lines.append(
        f"^(Note {reveal_id} by {author_name(informer)}, bought for {price} credits by an amnesic"
        " judge in an information market; unbought notes are shredded.)"
    )
    marker = f"\n\n{note_marker(reveal_id)}"
    body = "\n".join(lines)
    if len(body) + len(marker) > MAX_COMMENT_CHARS:  # not within the default note limits; stay safe
        body = body[: MAX_COMMENT_CHARS - 20 - len(marker)].rsplit("\n", 1)[0] + "\n\n> …"
    return body + marker
