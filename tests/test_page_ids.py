"""Every page route that takes an id in its path refuses one past the API's integer bound with a
4xx page, as the JSON API does (`tests/test_web_contract.py`), never a server error."""

from __future__ import annotations

from fastapi.routing import APIRoute

from notebazaar.web import console, pages
from tests.web_fixtures import (  # noqa: F401  (fixtures)
    MODERATOR,
    READER,
    SLUG,
    WebWorld,
    csrf_of,
    fast_hashing_fixture,
    log_in,
    web_fixture,
    web_settings_fixture,
)

HUGE = 2**63


def _posts_with_id_in_path() -> list[str]:
    """The page routers' POST routes with an id in their path (the console's carry its prefix)."""
    return [
        route.path
        for router in (pages.router, console.router)
        for route in router.routes
        if isinstance(route, APIRoute) and "_id}" in route.path and "POST" in route.methods
    ]


def test_a_page_post_with_an_id_of_2_to_the_63_is_refused(web: WebWorld) -> None:
    client = web.client
    log_in(client, *MODERATOR)
    token = csrf_of(client, f"/mod/{SLUG}")
    paths = _posts_with_id_in_path()
    assert "/notes/{reveal_id}/ratings" in paths and "/mod/{slug}/deliveries/{outbox_id}/retry" in paths
    for path in paths:
        url = path.replace("{slug}", SLUG)
        for name in ("reveal_id", "outbox_id", "post_id", "offer_id", "market_id", "account_id", "prompt_id"):
            url = url.replace("{" + name + "}", str(HUGE))
        response = client.post(url, data={"csrf_token": token, "level": "helpful", "confirm": "yes"})
        assert 400 <= response.status_code < 500, (url, response.status_code, response.text[:200])


def test_a_reader_rating_an_unknown_note_by_page_is_told_so(web: WebWorld) -> None:
    client = web.client
    log_in(client, *READER)
    response = client.post(
        "/notes/999999/ratings", data={"csrf_token": csrf_of(client), "level": "helpful", "next": "/"}
    )
    assert response.status_code in (303, 404), response.status_code
