"""The judge's pages on the moderator console: what each judge reads, its parameters and its
failures; eval results as a readable table with every metric explained; and an eval whose judge
failed every call answered as a failure, with why, never as a normal-looking table."""

from __future__ import annotations

from typing import Any

import pytest

from notebazaar.pipeline import credit, evaluate
from notebazaar.pipeline.db import write
from notebazaar.pipeline.judge import params
from tests.web_fixtures import (  # noqa: F401  (fixtures)
    FAKE_EVAL,
    MODERATOR,
    SLUG,
    WebWorld,
    csrf_of,
    fast_hashing_fixture,
    log_in,
    web_fixture,
    web_settings_fixture,
)

FAILED_EVAL = FAKE_EVAL | {
    "judge": "openai",
    "judge_calls": 9,
    "judge_errors": {"connection_error": 6, "prior:connection_error": 3},
    "coverage": 0.0,
    "purchase_precision": 0.0,
    "profit_per_offer": {"honest": -6.5},
}


def _eval(
    web: WebWorld,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    report: dict[str, Any],
    kind: str,
    headers: dict[str, str] | None = None,
) -> Any:
    """Post an eval form whose evaluation returns ``report``; the moderator is signed in."""
    monkeypatch.setattr(evaluate, "evaluate", lambda path, **kwargs: report)
    claims = tmp_path / "labelled.jsonl"
    claims.write_text("{}\n")
    client = web.client
    log_in(client, *MODERATOR)
    prompt_id = client.get(f"/mod/{SLUG}/prompts").text.split(f"/mod/{SLUG}/prompts/")[1].split('"')[0]
    token = csrf_of(client, f"/mod/{SLUG}/prompts/{prompt_id}")
    return client.post(
        f"/mod/{SLUG}/prompts/{prompt_id}/eval",
        data={"judge_kind": kind, "path": str(claims), "csrf_token": token},
        headers=headers or {},
    )


def test_console_says_what_each_judge_reads_with_parameters_and_failures(web: WebWorld) -> None:
    db = web.db()
    try:
        community_id = db.execute("SELECT id FROM communities WHERE slug = ?", [SLUG]).fetchone()[0]
        awaiting = credit.outstanding(db, community_id)  # the world's note from a stranger
        assert awaiting >= 1
        mine = params.replace(params.DEFAULTS, rel_floor=0.41, rel_full=0.66, newcomer_credit=awaiting)
        params.store(db, community_id, mine, fitted_on="town.jsonl", fit_report={})
        market_id = db.execute(
            "SELECT id FROM markets WHERE community_id = ? LIMIT 1", [community_id]
        ).fetchone()[0]
        with write(db):
            db.execute(
                "UPDATE markets SET prior = 0.5, prior_error = 'judge_error:timeout' WHERE id = ?",
                [market_id],
            )
    finally:
        db.close()
    log_in(web.client, *MODERATOR)
    page = web.client.get(f"/mod/{SLUG}").text
    assert "does NOT read stance" in page and "contradicts_classification" in page
    assert "fitted on town.jsonl" in page and "0.41" in page and "0.66" in page
    assert "Judge failures: 1 of" in page and "prior:timeout 1" in page
    assert f"Strangers' notes awaiting review: {awaiting} of {awaiting}." in page  # credit used up
    assert f"a note has {credit.REVIEW_RATINGS} ratings, the embedded judge gives new informers" in page


def test_eval_shows_a_readable_table_with_the_metrics_explained(
    web: WebWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    report = FAKE_EVAL | {"judge_calls": 12, "judge_errors": {}, "profit_per_offer": {"honest": 3.456}}
    page = _eval(web, monkeypatch, tmp_path, report, "simple")
    assert page.status_code == 200, page.text[-2000:]
    html = page.text
    assert "Purchase precision" in html and "bought notes that were right for the truth" in html
    assert "90.0%" in html and "12.0 credits" in html and "+3.46" in html  # formatted, not raw floats
    assert "{&#39;claims&#39;" not in html and "{'claims'" not in html  # no Python dict on the page
    assert "What this judge reads" in html


def test_an_eval_whose_judge_failed_every_call_is_a_failure_with_its_reason(
    web: WebWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    page = _eval(web, monkeypatch, tmp_path, FAILED_EVAL, "openai")
    assert page.status_code == 502
    assert "The evaluation failed: the judge failed every one of its 9 calls" in page.text
    assert "connection_error (6)" in page.text and 'id="eval-table"' not in page.text
    # Through htmx the message is swapped in (htmx swaps only 2xx answers), still with no table.
    swapped = _eval(web, monkeypatch, tmp_path, FAILED_EVAL, "openai", {"HX-Request": "true"})
    assert swapped.status_code == 200 and "The evaluation failed" in swapped.text
    assert 'id="eval-table"' not in swapped.text


def test_some_failed_calls_are_a_warning_beside_the_table(
    web: WebWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    partly = FAKE_EVAL | {"judge_calls": 10, "judge_errors": {"timeout": 2}}
    page = _eval(web, monkeypatch, tmp_path, partly, "openai")
    assert page.status_code == 200
    assert "2 of 10 judge calls failed (timeout: 2)" in page.text and 'id="eval-table"' in page.text
