"""Rating notes on the web: the JSON API (and OpenAPI), the post page's buttons without JavaScript
and through htmx, refusals that change nothing, and notes readers hid marked with the reason."""

from __future__ import annotations

from typing import Any

from notebazaar.pipeline import community, moderation, statuses
from notebazaar.web import auth
from tests.test_core_helpers import snapshot
from tests.web_fixtures import (  # noqa: F401  (fixtures)
    MODERATOR,
    READER,
    SLUG,
    WebWorld,
    api_token,
    csrf_of,
    fast_hashing_fixture,
    log_in,
    web_fixture,
    web_settings_fixture,
)


def _a_note(web: WebWorld) -> dict[str, Any]:
    posts = web.client.get("/api/posts", params={"community": SLUG}).json()
    return next(n | {"post_id": p["id"]} for p in posts for n in p["notes"])


def test_openapi_documents_rating(web: WebWorld) -> None:
    paths = web.client.get("/openapi.json").json()["paths"]
    assert "post" in paths["/api/reveals/{reveal_id}/ratings"]
    assert "get" in paths["/api/reveals/{reveal_id}/ratings"]


def test_api_rate_change_and_refusals(web: WebWorld) -> None:
    client = web.client
    note = _a_note(web)
    url = f"/api/reveals/{note['id']}/ratings"
    reader = api_token(client, *READER)
    first = client.post(url, headers=reader, json={"level": "helpful", "tags": ["good_sources"]})
    assert first.status_code == 201, first.text
    assert first.json()["level"] == "helpful" and first.json()["surface"] == "api"
    assert first.json()["tags"] == ["helpful:good_sources"]
    again = client.post(url, headers=reader, json={"level": "helpful", "tags": ["good_sources"]})
    assert again.status_code == 409 and "already rated" in again.json()["detail"]
    retry = reader | {"Idempotency-Key": "change-rating-0001"}
    changed = client.post(url, headers=retry, json={"level": "not_helpful", "tags": ["incorrect"]})
    assert changed.status_code == 200 and changed.json()["changed"] == "changed"
    replayed = client.post(url, headers=retry, json={"level": "not_helpful", "tags": ["incorrect"]})
    assert (replayed.status_code, replayed.json()) == (200, changed.json())  # answered as the first call
    shown = client.get(url, headers=reader).json()
    assert shown["mine"]["level"] == "not_helpful" and shown["counts"]["not_helpful"] == 1
    post = client.get(f"/api/posts/{note['post_id']}").json()
    assert next(n for n in post["notes"] if n["id"] == note["id"])["ratings"]["not_helpful"] == 1

    db = web.db()
    try:
        informer_handle = note["informer"]
        informer_id = int(community.get_account(db, informer_handle)["id"])
        informer = {"Authorization": f"Bearer {auth.create_token(db, informer_id, 'test')}"}
        before = snapshot(db)
    finally:
        db.close()
    cases = [
        (informer, url, {"level": "helpful"}, 403, "own note"),
        (reader, "/api/reveals/99999/ratings", {"level": "helpful"}, 404, "no published note 99999"),
        (reader, url, {"level": "very_helpful"}, 422, "level"),
        (reader, url, {"level": "helpful", "tags": ["incorrect"]}, 400, "does not fit a helpful rating"),
        (reader, url, {"level": "helpful", "extra": 1}, 422, "extra"),
        (reader, "/api/reveals/abc/ratings", {"level": "helpful"}, 422, "reveal_id"),
    ]
    for headers, target, body, status, message in cases:
        response = client.post(target, headers=headers, json=body)
        assert response.status_code == status, (body, response.text)
        assert message in response.json()["detail"], response.text
    assert client.post(url, json={"level": "helpful"}).status_code == 401
    db = web.db()
    try:
        assert snapshot(db) == before
    finally:
        db.close()


def test_banned_reader_cannot_rate(web: WebWorld) -> None:
    client = web.client
    note = _a_note(web)
    reader = api_token(client, *READER)
    db = web.db()
    try:
        com = community.get_community(db, SLUG)
        moderator = int(community.get_account(db, MODERATOR[0])["id"])
        banned = int(community.get_account(db, READER[0])["id"])
        moderation.ban(db, moderator, banned, com.id, "vote brigading")
    finally:
        db.close()
    response = client.post(f"/api/reveals/{note['id']}/ratings", headers=reader, json={"level": "helpful"})
    assert response.status_code == 403 and "banned" in response.json()["detail"]


def test_page_buttons_without_javascript_and_with_htmx(web: WebWorld) -> None:
    client = web.client
    note = _a_note(web)
    page = f"/posts/{note['post_id']}"
    anonymous = client.get(page).text
    assert "to rate this note" in anonymous and f'id="rate-{note["id"]}"' not in anonymous
    log_in(client, *READER)
    html = client.get(page).text
    assert f'action="/notes/{note["id"]}/ratings"' in html and 'hx-post="/notes/' in html
    token = csrf_of(client, page)
    plain = client.post(
        f"/notes/{note['id']}/ratings",
        data={"level": "somewhat_helpful", "next": page, "csrf_token": token},
        follow_redirects=False,
    )
    assert plain.status_code == 303 and plain.headers["location"] == page
    after = client.get(page).text
    assert (
        "You rated it somewhat helpful." in after and f"You rated note {note['id']} somewhat helpful" in after
    )
    fragment = client.post(
        f"/notes/{note['id']}/ratings",
        data={"level": "helpful", "next": page, "csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert fragment.status_code == 200
    assert fragment.text.strip().startswith(f'<article class="note" id="note-{note["id"]}"')
    assert "You rated it helpful." in fragment.text and 'aria-pressed="true"' in fragment.text
    refused = client.post(
        f"/notes/{note['id']}/ratings",
        data={"level": "helpful", "next": page, "csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert "already rated" in refused.text and f'id="rating-error-{note["id"]}"' in refused.text
    bad = client.post(
        f"/notes/{note['id']}/ratings", data={"level": "meh", "next": page, "csrf_token": token}
    )
    assert bad.status_code == 400 and "rating level must be one of" in bad.text
    no_csrf = client.post(f"/notes/{note['id']}/ratings", data={"level": "helpful", "next": page})
    assert no_csrf.status_code == 403


def test_a_note_readers_hid_is_marked_with_its_reason(web: WebWorld) -> None:
    note = _a_note(web)
    db = web.db()
    try:
        com = community.get_community(db, SLUG)
        statuses.hide(db, note["id"], com.id, statuses.hide_reason(-0.3, 0.1, 9), now=1.0, detail={})
    finally:
        db.close()
    post = web.client.get(f"/api/posts/{note['post_id']}").json()
    assert note["id"] not in [n["id"] for n in post["notes"]]
    hidden = next(h for h in post["hidden_notes"] if h["id"] == note["id"])
    assert hidden["hidden"] is True and "readers rated it not helpful" in hidden["hidden_reason"]
    assert "text" not in hidden
    html = web.client.get(f"/posts/{note['post_id']}").text
    assert f"Note #{note['id']} is hidden: readers rated it not helpful" in html
    assert note["text"] not in html
    log_in(web.client, *READER)
    response = web.client.post(
        f"/api/reveals/{note['id']}/ratings",
        headers=api_token(web.client, *READER),
        json={"level": "helpful"},
    )
    assert response.status_code == 409 and "is hidden" in response.json()["detail"]
