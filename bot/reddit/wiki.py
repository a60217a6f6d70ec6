"""Moderators' settings on a subreddit wiki page, the way AutoModerator keeps its rules.

The page body is TOML (optionally inside a code block, so it reads well on the wiki)::

    attention_slots = 3
    reserve = 2
    window_seconds = 3600
    price_of_information = 100
    budget_per_market = 200
    auction = "gsp"
    payment_hold_hours = 0
    prompt_version = 2

Every key is optional. A page is applied as a whole or not at all: one transaction changes the
community's settings (:func:`notebazaar.pipeline.community.update_settings`) and activates the prompt version
(:func:`notebazaar.pipeline.prompts.activate`), both audited in the bot account's name. A bad page changes
nothing; the last good settings stay in force, and every problem is named on a line of its own
(:attr:`WikiConfigError.problems`) for the modmail to the moderators.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from notebazaar.pipeline import prompts
from notebazaar.pipeline.community import SETTING_KEYS, get_community, update_settings
from notebazaar.pipeline.config import MarketSettings
from notebazaar.pipeline.db import write
from notebazaar.pipeline.errors import NotFound, ValidationError
from notebazaar.pipeline.validation import setting_problems

KEYS = (*SETTING_KEYS, "prompt_version")
_FENCE = re.compile(r"^(```|~~~)[^\n]*\n(.*?)^\1\s*$", re.MULTILINE | re.DOTALL)


class WikiConfigError(ValidationError):
    """The wiki page cannot be applied; ``problems`` says why, one line each, for the moderators."""

    def __init__(self, *problems: str, prefix: str = "") -> None:
        self.problems = [p.replace("\n", " ").strip() for p in problems]
        super().__init__(prefix + "; ".join(self.problems))


@dataclass(frozen=True)
class WikiConfig:
    settings: dict[str, Any]
    prompt_version: int | None


def _toml_text(content: str) -> str:
    """The TOML inside a fenced code block, or a four-space-indented page, or the page as is."""
    if match := _FENCE.search(content):
        return match.group(2)
    lines = content.replace("\r\n", "\n").split("\n")
    if all(not line.strip() or line.startswith("    ") for line in lines):
        return "\n".join(line[4:] for line in lines)
    return content


def parse_wiki_config(content: str) -> WikiConfig:
    """The page's settings; a WikiConfigError names every problem found, not only the first."""
    try:
        data = tomllib.loads(_toml_text(content))
    except tomllib.TOMLDecodeError as exc:
        raise WikiConfigError(f"the page is not valid TOML: {exc}") from None
    problems = [
        f"unknown key(s) {key}; the keys are {', '.join(KEYS)}" for key in sorted(set(data) - set(KEYS))
    ]
    version = data.pop("prompt_version", None)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        problems.append(f"prompt_version must be a positive whole number, not {version!r}")
    typed = {}
    for key, value in data.items():
        if key not in SETTING_KEYS:
            continue
        if key != "auction" and (isinstance(value, bool) or not isinstance(value, int)):
            problems.append(f"{key} must be a whole number, not {value!r}")
        else:
            typed[key] = value
    out_of_range: list[str] = []
    try:  # the values' ranges, one line each (keys not on the page keep their defaults here)
        MarketSettings(**typed)
    except Exception as exc:
        out_of_range = setting_problems(exc)
    if problems or out_of_range:
        prefix = "invalid community settings: " if out_of_range else ""
        raise WikiConfigError(*problems, *out_of_range, prefix=prefix)
    return WikiConfig(settings=data, prompt_version=version)


def apply_wiki_config(db: Database, community_id: int, config: WikiConfig, *, actor_id: int) -> list[str]:
    """Apply a parsed page atomically; returns what changed (empty when the page matched already)."""
    current = get_community(db, community_id)
    try:
        MarketSettings(**({k: getattr(current, k) for k in SETTING_KEYS} | config.settings))
    except Exception as exc:  # every value out of range, one line each
        raise WikiConfigError(*setting_problems(exc), prefix="invalid community settings: ") from None
    changes = {k: v for k, v in config.settings.items() if getattr(current, k) != v}
    applied: list[str] = []
    prompt_id = None
    if config.prompt_version is not None:
        try:
            found = prompts.version_id(db, config.prompt_version, community_id=community_id)
        except NotFound:
            raise WikiConfigError(f"prompt_version {config.prompt_version} does not exist") from None
        prompt_id = found if found != current.active_prompt_id else None
        if current.active_prompt_id is None and config.prompt_version == 1:
            prompt_id = None  # version 1 is already the default
    try:
        with write(db):
            if changes:
                update_settings(db, community_id, changes, actor_id=actor_id)
                applied += [f"{k} = {v!r}" for k, v in sorted(changes.items())]
            if prompt_id is not None:
                prompts.activate(db, community_id, prompt_id, actor_id=actor_id)
                applied.append(f"prompt_version = {config.prompt_version}")
    except ValidationError as exc:
        raise WikiConfigError(str(exc)) from None
    return applied
