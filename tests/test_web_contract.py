"""Every request gets a clear answer: no 500 for huge ids and amounts or a NUL, a 500 in the error
envelope, an OpenAPI document that tells the truth (errors, minimums, strict integers), security
headers, and /docs served from a package."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from notebazaar.web import api
from tests.web_fixtures import (  # noqa: F401  (fixtures)
    MODERATOR,
    SLUG,
    WebWorld,
    api_token,
    fast_hashing_fixture,
    open_post_id,
    web_fixture,
    web_settings_fixture,
)

HUGE = 2**63
JSON_MAX = 2**53 - 1  # the API's bound on every integer (web/contract.py)
NOTE = {"classification": "misleading", "text": "A note.", "bid": 5, "price": 4}


def _envelope(response: Any) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error", "detail"} and all(isinstance(v, str) for v in body.values()), body
    return body  # type: ignore[no-any-return]


def test_ids_of_2_to_the_63_get_a_422_on_every_operation(web: WebWorld) -> None:
    client = web.client
    mod = api_token(client, *MODERATOR)
    paths = client.get("/openapi.json").json()["paths"]
    tried = 0
    for path, operations in paths.items():
        if "_id}" not in path:
            continue
        for method in operations:
            url = re.sub(r"\{\w+_id\}", str(HUGE), path).replace("{slug}", SLUG)
            body = NOTE if method in ("post", "patch") else None
            if url.endswith("/eval"):
                body = {"path": "x.jsonl"}
            elif url.endswith("/unpublish"):
                body = {"reason": "r"}
            elif url.endswith("/fund"):
                body = {"amount": 1}
            answer = client.request(method.upper(), url, headers=mod, json=body)
            assert answer.status_code == 422, (method, url, answer.status_code, answer.text)
            assert "less than or equal" in _envelope(answer)["detail"]
            tried += 1
    assert tried >= 11


@pytest.mark.parametrize(
    ("url", "body", "status", "message"),
    [
        ("/api/posts/{post}/fund", {"amount": HUGE}, 422, "amount"),
        ("/api/posts/{post}/fund", {"amount": HUGE - 1}, 422, "amount"),
        ("/api/posts/{post}/fund", {"amount": JSON_MAX}, 400, "amount must be at most 1000000000"),
        ("/api/posts/{post}/offers", NOTE | {"bid": HUGE}, 422, "bid"),
        ("/api/posts/{post}/offers", NOTE | {"price": JSON_MAX}, 400, "price must be at most"),
        ("/api/communities/demo/bans", {"account_id": HUGE, "reason": "x"}, 422, "account_id"),
        ("/api/communities/demo/bans", {"account_id": JSON_MAX, "reason": "x"}, 404, "no account"),
    ],
)
def test_huge_amounts_and_ids_in_bodies_are_refused_not_500(
    web: WebWorld, url: str, body: dict[str, Any], status: int, message: str
) -> None:
    client = web.client
    mod = api_token(client, *MODERATOR)
    answer = client.post(url.format(post=open_post_id(client)), headers=mod, json=body)
    assert answer.status_code == status and message in _envelope(answer)["detail"], answer.text


@pytest.mark.parametrize("value", [True, 5.0, "5", 5.5, None])
def test_integers_are_strict(web: WebWorld, value: Any) -> None:
    client = web.client
    mod = api_token(client, *MODERATOR)
    url = f"/api/posts/{open_post_id(client)}/offers"
    for field in ("bid", "price"):
        answer = client.post(url, headers=mod, json=NOTE | {field: value})
        assert answer.status_code == 422 and field in _envelope(answer)["detail"], (field, value)
    fund = client.post(f"/api/posts/{open_post_id(client)}/fund", headers=mod, json={"amount": value})
    assert fund.status_code == 422


def test_a_nul_in_the_eval_path_is_a_400(web: WebWorld) -> None:
    client = web.client
    mod = api_token(client, *MODERATOR)
    prompt = client.get(f"/api/communities/{SLUG}/prompts", headers=mod).json()["active_id"]
    answer = client.post(
        f"/api/communities/{SLUG}/prompts/{prompt}/eval", headers=mod, json={"path": "/tmp/a\x00b.jsonl"}
    )
    assert answer.status_code == 400 and "control character (U+0000)" in _envelope(answer)["detail"]


def test_a_500_comes_in_the_envelope_with_the_headers(web: WebWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(api.queries, "feed", broken)
    client = TestClient(web.client.app, raise_server_exceptions=False)
    answer = client.get("/api/posts")
    assert answer.status_code == 500 and answer.headers["content-type"] == "application/json"
    assert _envelope(answer)["error"] == "internal" and "a bug" not in answer.text
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    page = client.get("/")
    assert page.status_code == 500 and "text/html" in page.headers["content-type"]


def test_the_openapi_document_declares_the_real_errors_and_minimums(web: WebWorld) -> None:
    schema = web.client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    assert set(components["ErrorBody"]["required"]) == {"error", "detail"}
    assert "HTTPValidationError" not in components  # the 422 body is the envelope, as sent
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for code in ("400", "401", "403", "404", "409", "422", "500"):
                declared = operation["responses"].get(code)
                assert declared, f"{method} {path} does not declare {code}"
                ref = declared["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorBody"), (path, code, ref)
    note = components["SealedNote"]["properties"]
    assert note["price"]["minimum"] == 1 and note["bid"]["minimum"] == 0
    assert note["bid"]["maximum"] == 2**53 - 1 and isinstance(note["bid"]["maximum"], int)
    assert components["Funding"]["properties"]["amount"]["minimum"] == 1
    # The 422 really is the envelope it declares.
    client = web.client
    answer = client.post("/api/signup", json={"handle": 1})
    assert answer.status_code == 422 and _envelope(answer)["error"] == "invalid"


@pytest.mark.parametrize(
    "url", ["/", "/api/posts", "/static/style.css", "/openapi.json", "/posts/999", "/docs"]
)
def test_every_answer_carries_the_security_headers(web: WebWorld, url: str) -> None:
    answer = web.client.get(url)
    csp = answer.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "same-origin"
    assert answer.headers["x-frame-options"] == "DENY"


def test_docs_are_served_from_the_package_not_a_cdn(web: WebWorld) -> None:
    client = web.client
    page = client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/") and not s.startswith("//") for s in sources), sources
    assert "<script>" not in page.text  # no inline script: the CSP allows none
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200 and len(asset.content) > 30, source
    assert "SwaggerUIBundle" in client.get("/docs-assets/swagger-ui-bundle.js").text


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/tokens", '{"handle": "\\ud800", "password": "x"}'),
        ("/api/tokens", '{"handle": "demo_reader", "password": "\\ud800abc"}'),
        (
            "/api/signup",
            '{"handle": "new_one", "password": "a long passphrase 42", "community": "de\\ud800"}',
        ),
    ],
)
def test_a_lone_surrogate_in_a_body_is_a_422_not_a_500(web: WebWorld, url: str, body: str) -> None:
    """JSON's \\ud800 escape is valid JSON but no text SQLite or the password hasher can store."""
    answer = web.client.post(url, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert "lone surrogate" in _envelope(answer)["detail"]
