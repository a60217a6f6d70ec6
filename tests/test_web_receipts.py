"""The sealed-note receipt by Post/Redirect/Get: a reload submits nothing and shows the salt once,
only the offer's informer sees it, and a GET of a form's address is a page, never a JSON 405."""

from __future__ import annotations

from tests.web_fixtures import (  # noqa: F401  (fixtures)
    INFORMER,
    READER,
    WebWorld,
    csrf_of,
    fast_hashing_fixture,
    log_in,
    open_post_id,
    web_fixture,
    web_settings_fixture,
)

FORM = {
    "classification": "misleading",
    "text": "A sealed note on stoves.",
    "sources": "",
    "bid": "5",
    "price": "4",
}


def _offers(world: WebWorld) -> int:
    db = world.db()
    try:
        return int(db.execute("SELECT COUNT(*) FROM offers").fetchone()[0])
    finally:
        db.close()


def test_a_reloaded_receipt_submits_nothing_and_shows_the_salt_once(web: WebWorld) -> None:
    client = web.client
    log_in(client, *INFORMER)
    post_id = open_post_id(client)
    before = _offers(web)
    form = FORM | {"csrf_token": csrf_of(client, f"/posts/{post_id}")}
    sealed = client.post(f"/posts/{post_id}/offers", data=form, follow_redirects=False)
    assert sealed.status_code == 303 and sealed.headers["location"].startswith("/receipts/")
    cookie = sealed.headers["set-cookie"]
    assert (
        "HttpOnly" in cookie
        and "SameSite=strict" in cookie
        and f"Path={sealed.headers['location']}" in cookie
    )
    receipt_url = sealed.headers["location"]
    shown = client.get(receipt_url)
    assert shown.status_code == 200 and 'id="receipt-salt"' in shown.text and "Keep the salt" in shown.text
    assert shown.headers["cache-control"] == "no-store"
    salt = shown.text.split('id="receipt-salt" value="')[1].split('"')[0]
    assert len(salt) == 32
    again = client.get(receipt_url)  # a reload: the page, without the salt, and no second offer
    assert again.status_code == 200 and salt not in again.text and 'id="receipt-shown"' in again.text
    assert _offers(web) == before + 1
    log_in(client, *READER)
    stranger = client.get(receipt_url)
    assert (
        stranger.status_code == 404
        and salt not in stranger.text
        and "text/html" in stranger.headers["content-type"]
    )


def test_a_get_of_a_form_address_is_a_page(web: WebWorld) -> None:
    client = web.client
    post_id = open_post_id(client)
    form = client.get(f"/posts/{post_id}/offers")
    assert (
        form.status_code == 200
        and form.url.path == f"/posts/{post_id}"
        and "text/html" in form.headers["content-type"]
    )
    logout = client.get("/logout")
    assert logout.status_code == 405 and "text/html" in logout.headers["content-type"]
    assert client.get("/api/signup").headers["content-type"] == "application/json"  # the API stays JSON
