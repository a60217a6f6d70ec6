"""Accounts and roles: creating an account, setting its password, granting and revoking roles.

This is how an operator makes a moderator who can log in: ``account create``, ``account password``
(prompted twice with the input hidden, never taken as an argument, so it lands in no shell history
or process list), then ``account grant HANDLE --community SLUG --role moderator``. Setting a
password ends every web session of the account.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from notebazaar.cli.base import account_id_of, echo_json, main, with_db
from notebazaar.pipeline import community
from notebazaar.pipeline.config import Settings
from notebazaar.web import auth


@main.group("account")
def account_group() -> None:
    """Accounts, passwords and roles."""


@account_group.command("create")
@click.argument("handle")
@click.option("--community", "slug", default=None, help="Grant roles in this community.")
@click.option("--role", "roles", multiple=True, type=click.Choice(community.ROLES))
@with_db
def account_create(
    db: Any, db_path: Path, settings: Settings, handle: str, slug: str | None, roles: tuple[str, ...]
) -> None:
    """Create an account, optionally with roles in a community (reader and informer by default).
    It has no password until `account password` sets one."""
    if roles and not slug:
        raise click.ClickException("--role needs --community")
    com = community.get_community(db, slug) if slug else None
    account_id = community.create_account(db, handle)
    if com is not None:
        for role in roles or ("reader", "informer"):
            community.grant(db, account_id, com.id, role)
    echo_json({"id": account_id, "handle": handle})


@account_group.command("password")
@click.argument("handle")
@with_db
def account_password(db: Any, db_path: Path, settings: Settings, handle: str) -> None:
    """Set HANDLE's password for the web and the API. It is asked for twice, hidden; a common or
    short password is refused. Every web session of the account ends."""
    account_id = account_id_of(db, handle)
    password = click.prompt("New password", hide_input=True, confirmation_prompt="Repeat it")
    ended = auth.set_password(db, account_id, password)
    echo_json({"handle": handle, "password_set": True, "sessions_ended": ended})


def _role_change(db: Any, handle: str, slug: str, role: str, *, grant: bool) -> None:
    account_id = account_id_of(db, handle)
    com = community.get_community(db, slug)
    if grant:
        changed = not community.has_role(db, account_id, com.id, role)
        community.grant(db, account_id, com.id, role)
    else:
        changed = community.revoke(db, account_id, com.id, role)
    if changed:
        action = "role.grant" if grant else "role.revoke"
        community.audit(db, None, action, f"account:{account_id}", {"role": role, "via": "cli"}, com.id)
    echo_json({"handle": handle, "community": slug, "role": role, "held": grant, "changed": changed})


def _role_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """HANDLE, --community and --role, shared by grant and revoke."""
    func = click.option("--role", required=True, type=click.Choice(community.ROLES))(func)
    func = click.option("--community", "slug", required=True, help="The community the role is in.")(func)
    return click.argument("handle")(func)


@account_group.command("grant")
@_role_options
@with_db
def account_grant(db: Any, db_path: Path, settings: Settings, handle: str, slug: str, role: str) -> None:
    """Give HANDLE a role in a community (audited). Granting a role it holds changes nothing."""
    _role_change(db, handle, slug, role, grant=True)


@account_group.command("revoke")
@_role_options
@with_db
def account_revoke(db: Any, db_path: Path, settings: Settings, handle: str, slug: str, role: str) -> None:
    """Take a role away from HANDLE in a community (audited); it applies from the next request."""
    _role_change(db, handle, slug, role, grant=False)
