"""``notebazaar account``: making a moderator who can log in, from the command line (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from notebazaar.cli import main
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.judge.simple import SimpleJudge
from notebazaar.web.app import create_app
from tests.test_core_helpers import restore_logging  # noqa: F401
from tests.web_fixtures import csrf_of, fast_hashing_fixture, log_in  # noqa: F401

pytestmark = pytest.mark.usefixtures("restore_logging", "fast_hashing")
PASSWORD = "tangerine lighthouse gravel"


def _run(db: Path, *args: str, input: str | None = None, code: int = 0) -> str:
    result = CliRunner().invoke(main, [*args, "--db", str(db)], input=input)
    assert result.exit_code == code, (args, result.output, result.exception)
    return result.output


def test_an_operator_makes_a_moderator_who_can_log_in(tmp_path: Path) -> None:
    db = tmp_path / "state" / "nb.db"
    _run(db, "community", "create", "town")
    _run(db, "account", "create", "mia")
    output = _run(db, "account", "password", "mia", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert PASSWORD not in output  # the prompt hides what is typed
    assert "New password" in output and "Repeat it" in output
    assert json.loads(output.strip().splitlines()[-1]) == {
        "handle": "mia",
        "password_set": True,
        "sessions_ended": 0,
    }
    granted = json.loads(_run(db, "account", "grant", "mia", "--community", "town", "--role", "moderator"))
    assert granted == {
        "handle": "mia",
        "community": "town",
        "role": "moderator",
        "held": True,
        "changed": True,
    }
    again = json.loads(_run(db, "account", "grant", "mia", "--community", "town", "--role", "moderator"))
    assert again["changed"] is False

    app = create_app(db, Settings(), judge=SimpleJudge(), key="k", start_worker=False)
    with TestClient(app) as client:
        log_in(client, "mia", PASSWORD)
        assert client.get("/mod/town").status_code == 200
        revoked = json.loads(
            _run(db, "account", "revoke", "mia", "--community", "town", "--role", "moderator")
        )
        assert revoked == {
            "handle": "mia",
            "community": "town",
            "role": "moderator",
            "held": False,
            "changed": True,
        }
        assert client.get("/mod/town").status_code == 403  # at once, in the same session

        # Setting the password again from the CLI signs the browser out.
        ended = _run(db, "account", "password", "mia", input="another long phrase\nanother long phrase\n")
        assert json.loads(ended.strip().splitlines()[-1])["sessions_ended"] == 1
        assert client.get("/me", follow_redirects=False).status_code == 303
    database = open_db(db)
    try:
        actions = [r[0] for r in database.execute("SELECT action FROM audit_log ORDER BY id")]
    finally:
        database.close()
    assert actions == ["role.grant", "role.revoke"]


def test_the_password_is_never_an_argument_and_bad_ones_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "nb.db"
    _run(db, "account", "create", "leo")
    as_argument = CliRunner().invoke(main, ["account", "password", "leo", PASSWORD, "--db", str(db)])
    assert as_argument.exit_code == 2 and "unexpected extra argument" in as_argument.output.lower()
    mismatch = _run(db, "account", "password", "leo", input=f"{PASSWORD}\nsomething else\n", code=1)
    assert "do not match" in mismatch.lower() or "don't match" in mismatch.lower()
    common = _run(db, "account", "password", "leo", input="password1\npassword1\n", code=1)
    assert "Error: that password is too common" in common
    missing = _run(db, "account", "password", "nobody", input=f"{PASSWORD}\n{PASSWORD}\n", code=1)
    assert "no account 'nobody'" in missing
    database = open_db(db)
    try:
        assert (
            database.execute("SELECT password_hash FROM accounts WHERE handle = 'leo'").fetchone()[0] is None
        )
    finally:
        database.close()


def test_grant_and_revoke_refuse_unknown_roles_communities_and_handles(tmp_path: Path) -> None:
    db = tmp_path / "nb.db"
    _run(db, "community", "create", "town")
    _run(db, "account", "create", "ada")
    assert "Invalid value for '--role'" in _run(
        db, "account", "grant", "ada", "--community", "town", "--role", "admin", code=2
    )
    assert "no community 'city'" in _run(
        db, "account", "grant", "ada", "--community", "city", "--role", "reader", code=1
    )
    assert "no account 'bob'" in _run(
        db, "account", "revoke", "bob", "--community", "town", "--role", "reader", code=1
    )
    absent = json.loads(_run(db, "account", "revoke", "ada", "--community", "town", "--role", "moderator"))
    assert absent["changed"] is False
