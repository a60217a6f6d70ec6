"""Turning form strings into the values the pipeline checks, with messages that name the field.

Form fields arrive as text; the pipeline refuses anything but real integers, so a stray ``"12abc"``
must become a clear error here rather than FastAPI's generic 422.
"""

from __future__ import annotations

from notebazaar.pipeline.errors import ValidationError


def whole_number(name: str, value: str | None) -> int:
    text = (value or "").strip()
    if not text:
        raise ValidationError(f"{name} is empty; enter a whole number of credits")
    try:
        return int(text, 10)
    except ValueError:
        raise ValidationError(f"{name} must be a whole number, not {text!r}") from None


def optional_number(name: str, value: str | None) -> int | None:
    return whole_number(name, value) if (value or "").strip() else None


def lines(value: str | None) -> list[str]:
    """Non-empty lines of a textarea (one source per line)."""
    return [line.strip() for line in (value or "").splitlines() if line.strip()]


def safe_next(target: str | None) -> str:
    """A same-site path to go back to after login; anything else goes to the feed."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"
