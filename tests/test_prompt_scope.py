"""Prompt versions belong to their community, and line endings do not count as edits (issue 15)."""

from __future__ import annotations

import pytest
from sqlite_utils import Database

from notebazaar.pipeline import community, prompts
from notebazaar.pipeline.errors import NotFound, ValidationError
from tests.web_fixtures import (  # noqa: F401  (fixtures)
    MODERATOR,
    SLUG,
    WebWorld,
    api_token,
    csrf_of,
    fast_hashing_fixture,
    log_in,
    web_fixture,
    web_settings_fixture,
)

OTHER = ("rival_mod", "a rival moderator's passphrase")


def _two_communities(db: Database) -> tuple[int, int, int, int]:
    a = community.create_community(db, "alpha").id
    b = community.create_community(db, "beta").id
    mod_a, mod_b = community.create_account(db, "mod-a"), community.create_account(db, "mod-b")
    community.grant(db, mod_a, a, "moderator")
    community.grant(db, mod_b, b, "moderator")
    return a, b, mod_a, mod_b


def test_a_draft_is_seen_only_by_its_own_community(db: Database) -> None:
    a, b, mod_a, mod_b = _two_communities(db)
    default = prompts.ensure_default_prompt(db)
    draft = prompts.create_version(
        db, "Alpha's secret draft. Data: $token, $mark.", actor_id=mod_a, community_id=a
    )

    assert [v["id"] for v in prompts.list_versions(db, community_id=a)] == [default, draft]
    assert [v["id"] for v in prompts.list_versions(db, community_id=b)] == [default]
    assert (
        prompts.get_version(db, draft, community_id=a)["text"] == "Alpha's secret draft. Data: $token, $mark."
    )
    with pytest.raises(NotFound):
        prompts.get_version(db, draft, community_id=b)
    with pytest.raises(NotFound):
        prompts.diff(db, default, draft, community_id=b)
    with pytest.raises(NotFound):
        prompts.activate(db, b, draft, actor_id=mod_b)
    with pytest.raises(NotFound):
        prompts.version_id(db, 2, community_id=b)
    assert community.get_community(db, b).active_prompt_id is None
    prompts.activate(db, b, default, actor_id=mod_b)  # the packaged default is everyone's
    prompts.activate(db, a, draft, actor_id=mod_a)
    assert prompts.active_prompt(db, a)["id"] == draft
    # The operator (CLI) sees them all.
    assert [v["id"] for v in prompts.list_versions(db, community_id=None)] == [default, draft]


def test_crlf_is_stored_as_lf_and_the_diff_shows_only_the_edit(db: Database) -> None:
    a, _, mod_a, _ = _two_communities(db)
    default = prompts.ensure_default_prompt(db)
    text = prompts.get_version(db, default, community_id=a)["text"]
    lines = text.split("\n")
    assert len(lines) > 20
    edited = "\r\n".join([*lines[:3], "An added line.", *lines[3:]])  # what a browser's textarea sends
    new = prompts.create_version(db, edited, actor_id=mod_a, community_id=a)
    assert "\r" not in prompts.get_version(db, new, community_id=a)["text"]
    changed = [
        line
        for line in prompts.diff(db, default, new, community_id=a).splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed == ["+An added line."]


def test_a_legacy_crlf_row_diffs_by_its_content(db: Database) -> None:
    a, _, mod_a, _ = _two_communities(db)
    first = prompts.create_version(db, "one\ntwo\nthree", actor_id=mod_a, community_id=a)
    second = prompts.create_version(db, "one\ntwo\nfour", actor_id=mod_a, community_id=a)
    db.execute(
        "UPDATE prompts SET text = 'one\r\ntwo\r\nthree' WHERE id = ?", [first]
    )  # saved before the fix
    body = prompts.diff(db, first, second, community_id=a).splitlines()
    assert [line for line in body if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [
        "-three",
        "+four",
    ]


def test_the_api_and_console_keep_another_communitys_drafts_out(web: WebWorld) -> None:
    client = web.client
    db = web.db()
    try:
        rival = community.create_community(db, "rival").id
        account = community.create_account(db, OTHER[0], password_hash=None)
        community.grant(db, account, rival, "moderator")
        from notebazaar.web import auth

        auth.set_password(db, account, OTHER[1])
    finally:
        db.close()
    demo_mod = api_token(client, *MODERATOR)
    draft = client.post(
        f"/api/communities/{SLUG}/prompts", headers=demo_mod, json={"text": "Demo's draft.", "note": "wip"}
    ).json()["id"]
    rival_mod = api_token(client, *OTHER)
    listed = client.get("/api/communities/rival/prompts", headers=rival_mod).json()
    assert draft not in [v["id"] for v in listed["versions"]]
    for response in (
        client.get(f"/api/communities/rival/prompts/{draft}", headers=rival_mod),
        client.get(f"/api/communities/rival/prompts/diff/1/{draft}", headers=rival_mod),
        client.post(f"/api/communities/rival/prompts/{draft}/activate", headers=rival_mod),
    ):
        assert response.status_code == 404, response.text
    assert "Demo's draft." not in response.text

    log_in(client, *OTHER)
    assert client.get(f"/mod/rival/prompts/{draft}").status_code == 404
    assert client.get("/mod/rival/prompts/diff", params={"old": 1, "new": draft}).status_code == 404
    assert "Demo's draft." not in client.get("/mod/rival/prompts").text
    token = csrf_of(client, "/mod/rival/prompts")
    activate = client.post(
        f"/mod/rival/prompts/{draft}/activate", data={"csrf_token": token, "confirm": "yes"}
    )
    assert activate.status_code == 404
    assert client.get(f"/api/communities/{SLUG}/prompts/{draft}", headers=demo_mod).status_code == 200


def test_a_prompt_the_llm_judge_cannot_use_is_not_activated(db: Database) -> None:
    """A draft may be anything; the active prompt must name the call's delimiter and datamark, or
    every market of the community would fail to settle under the LLM judge."""
    a, _, mod_a, _ = _two_communities(db)
    draft = prompts.create_version(db, "Judge well.", actor_id=mod_a, community_id=a)
    with pytest.raises(
        ValidationError, match=r"cannot be activated: the prompt must contain the placeholder \$token"
    ):
        prompts.activate(db, a, draft, actor_id=mod_a)
    assert community.get_community(db, a).active_prompt_id is None
