"""Discord message references: jump links, ``channel:message`` pairs and bare message ids.

Posts that come from Discord are stored with ``external_id = "<channel_id>:<message_id>"``, so a
reveal can be posted under the message it is about without any further lookup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from notebazaar.pipeline.errors import ValidationError

_JUMP = re.compile(
    r"^<?https?://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/channels/(\d{1,20}|@me)/(\d{1,20})/(\d{1,20})/?>?$"
)
_PAIR = re.compile(r"^(\d{1,20}):(\d{1,20})$")
_ID = re.compile(r"^\d{1,20}$")


@dataclass(frozen=True)
class MessageRef:
    """Where a message is. ``channel_id`` is None when only the message id was given."""

    message_id: int
    channel_id: int | None = None
    guild_id: int | None = None


def parse_message_ref(text: str) -> MessageRef:
    """A message link (``Copy Message Link``), ``channel_id:message_id``, or a message id."""
    value = (text or "").strip()
    if match := _JUMP.match(value):
        guild = None if match.group(1) == "@me" else int(match.group(1))
        return MessageRef(int(match.group(3)), int(match.group(2)), guild)
    if match := _PAIR.match(value):
        return MessageRef(int(match.group(2)), int(match.group(1)))
    if _ID.match(value):
        return MessageRef(int(value))
    raise ValidationError(
        "the post must be a message link (right-click the message, Copy Message Link) or a message id"
    )


def external_id(channel_id: int, message_id: int) -> str:
    return f"{channel_id}:{message_id}"


def split_external_id(value: str) -> tuple[int, int]:
    """``(channel_id, message_id)`` from a stored external id."""
    match = _PAIR.match(value or "")
    if not match:
        raise ValueError(f"not a Discord channel:message id: {value!r}")
    return int(match.group(1)), int(match.group(2))
