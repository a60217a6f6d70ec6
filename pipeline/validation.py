"""Checks on what users send, shared by every surface. Each failure names the field and the rule."""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from notebazaar.pipeline.errors import ValidationError

CLASSIFICATIONS = ("misleading", "not_misleading")
# Unicode's control characters (category Cc: U+0000-001F and U+007F-009F) other than line breaks
# and tabs, as one regex: a C-speed scan instead of a category lookup per character.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def check_amount(name: str, value: Any, *, minimum: int = 0, maximum: int | None = None) -> int:
    """A whole number of credits within bounds. Floats, NaN, booleans and strings are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and math.isnan(value):
            raise ValidationError(f"{name} must be a whole number of credits, not NaN")
        raise ValidationError(f"{name} must be a whole number of credits, not {value!r}")
    if value < minimum:
        raise ValidationError(f"{name} must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise ValidationError(f"{name} must be at most {maximum}, not {value}")
    return value


def check_text(name: str, value: Any, *, max_chars: int, required: bool = False) -> str:
    """Text that is valid UTF-8, without NUL or other control characters, within a length."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError(f"{name} is not valid UTF-8 (byte {exc.start})") from None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be text, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{name} is not valid UTF-8 (it holds a lone surrogate)") from None
    control = _CONTROL.search(value)
    if control:
        raise ValidationError(f"{name} holds a control character (U+{ord(control.group()):04X})")
    value = value.strip()
    if required and not value:
        raise ValidationError(f"{name} is empty")
    if len(value) > max_chars:
        raise ValidationError(f"{name} is {len(value)} characters; the limit is {max_chars}")
    return value


def strip_controls(text: str) -> str:
    """``text`` without control characters other than line breaks and tabs."""
    return "".join(ch for ch in text if ch in "\n\r\t" or unicodedata.category(ch) != "Cc")


def check_classification(value: Any) -> str:
    if value not in CLASSIFICATIONS:
        raise ValidationError(f"classification must be 'misleading' or 'not_misleading', not {value!r}")
    return str(value)


def check_id(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{name} must be a positive whole number, not {value!r}")
    return value


def setting_problems(exc: Exception) -> list[str]:
    """One plain line per invalid setting in a pydantic ``ValidationError`` ("`reserve = -1`:
    input should be greater than or equal to 0"), without pydantic's dump and documentation link."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return [str(exc).splitlines()[0]]
    lines = []
    for error in errors(include_url=False):
        key = ".".join(str(part) for part in error.get("loc", ())) or "value"
        message = str(error.get("msg", "is invalid"))
        message = message[:1].lower() + message[1:]
        lines.append(f"`{key} = {error.get('input')!r}`: {message}")
    return lines
