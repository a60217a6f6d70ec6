"""Answering interactions, and turning Discord users and guilds into market participants.

Every command body runs inside :func:`guarded`: a refused request (``NotebazaarError``) reaches the
user as its message, ephemerally; anything else is a bug, logged by interaction id with the
traceback's frames only (no exception message, which could quote user input such as a note) and
answered with a short generic message. Users never see a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import AsyncIterator
from typing import Any

import discord
from sqlite_utils import Database

from notebazaar.pipeline import community
from notebazaar.pipeline.community import Community
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.db import write
from notebazaar.pipeline.errors import Forbidden, NotebazaarError, NotFound

log = logging.getLogger(__name__)
PLATFORM = "discord"
GENERIC_ERROR = "Something went wrong on our side. It was logged as interaction {id}; please try again later."


async def send(
    interaction: discord.Interaction,
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
    ephemeral: bool = True,
) -> None:
    """Answer an interaction: the first response if none was sent yet, else a follow-up."""
    kwargs: dict[str, Any] = {"ephemeral": ephemeral}
    if content is not None:
        kwargs["content"] = content
    if embed is not None:
        kwargs["embed"] = embed
    if interaction.response.is_done():
        await interaction.followup.send(**kwargs)
    else:
        await interaction.response.send_message(**kwargs)


async def defer(interaction: discord.Interaction) -> None:
    """Acknowledge now (Discord wants an answer within 3 s) and answer with a follow-up later."""
    if not interaction.response.is_done():
        await interaction.response.defer(ephemeral=True, thinking=True)


def log_failure(interaction_id: int, action: str, exc: BaseException) -> None:
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("interaction %s (%s) failed: %s\n%s", interaction_id, action, type(exc).__name__, frames)


async def report_error(interaction: discord.Interaction, action: str, exc: BaseException) -> None:
    """Tell the user what went wrong, ephemerally; log unexpected errors without their message."""
    if isinstance(exc, NotebazaarError):
        message = str(exc)
        log.info("interaction %s (%s) refused: %s", interaction.id, action, type(exc).__name__)
    else:
        log_failure(interaction.id, action, exc)
        message = GENERIC_ERROR.format(id=interaction.id)
    try:
        await send(interaction, message)
    except discord.HTTPException as send_exc:  # the interaction expired or was already answered
        log.warning("could not tell interaction %s about its error: %s", interaction.id, send_exc.status)


@contextlib.asynccontextmanager
async def guarded(interaction: discord.Interaction, action: str) -> AsyncIterator[None]:
    try:
        yield
    except Exception as exc:
        await report_error(interaction, action, exc)


def community_for_guild(db: Database, settings: Settings, guild_id: int | None) -> Community:
    """The community a guild is linked to in config.toml ``[discord] guilds``."""
    if guild_id is None:
        raise Forbidden("use this command in a server that is linked to a notebazaar community")
    slug = settings.discord.guilds.get(str(guild_id))
    if slug is None:
        raise NotFound(
            "this server is not linked to a notebazaar community ([discord] guilds in config.toml)"
        )
    return community.get_community(db, slug)


def account_for_user(db: Database, user: discord.abc.User) -> int:
    return community.account_for_identity(db, PLATFORM, str(user.id), user.name)


def require_moderator(db: Database, interaction: discord.Interaction, com: Community) -> int:
    """The moderator's account id, or Forbidden.

    A moderator holds the community's 'moderator' role. A member with Discord's Manage Server
    permission is granted that role on first use (audited), so a server's admins need no CLI step.
    """
    account = account_for_user(db, interaction.user)
    if community.is_banned(db, account, com.id):
        raise Forbidden("you are banned from this community, so you cannot moderate it")
    if community.has_role(db, account, com.id, "moderator"):
        return account
    permissions = getattr(interaction.user, "guild_permissions", None)
    if permissions is not None and permissions.manage_guild:
        with write(db):
            community.grant(db, account, com.id, "moderator")
            community.audit(
                db,
                account,
                "role.grant",
                f"account:{account}",
                {"role": "moderator", "via": "manage_guild"},
                com.id,
            )
        log.info("account %s granted moderator in community %s via Manage Server", account, com.id)
        return account
    raise Forbidden("only a moderator of this community may do that")
