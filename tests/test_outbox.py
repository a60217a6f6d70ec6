"""The outbox keeps each delivery's schedule: backoff with jitter, the platform's wait as a floor,
a give-up horizon; failed deliveries are shown and can be queued again (CLI and moderator console)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from notebazaar.cli import main
from notebazaar.pipeline import community, market, outbox
from notebazaar.pipeline.backoff import Backoff
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.errors import Conflict
from notebazaar.pipeline.judge.simple import SimpleJudge
from notebazaar.pipeline.poststate import PostState
from notebazaar.pipeline.settlement import close_market
from tests.conftest import World
from tests.web_fixtures import MODERATOR, SLUG, WebWorld, csrf_of, log_in
from tests.web_fixtures import fast_hashing_fixture as fast_hashing  # noqa: F401  (fixture)
from tests.web_fixtures import web_fixture as web  # noqa: F401  (fixture)
from tests.web_fixtures import web_settings_fixture as web_settings  # noqa: F401  (fixture)

POST = "Scientists say the glaciers in the Alps grew by forty percent since 2010."
NOTE = "Alpine glaciers shrank since 2010; the forty percent figure misreads the glacier survey."


def bought_note(db: Database, world: World, *, platform: str = "reddit", external_id: str = "t3_abc") -> int:
    """A settled market on a platform post with one bought note; returns its outbox id."""
    post_id = community.add_post(db, world.community_id, POST, platform=platform, external_id=external_id)
    market_id = market.open_market(db, post_id)
    market.submit_offer(
        db, market_id, world.informers[0], classification="misleading", text=NOTE, bid=3, price=5
    )
    report = close_market(db, market_id, SimpleJudge(), force=True)
    assert [i.bought for i in report.inspections] == [True]
    return int(db.execute("SELECT MAX(id) FROM outbox").fetchone()[0])


def test_the_schedule_is_in_the_database_and_grows(db: Database, world: World) -> None:
    outbox_id = bought_note(db, world)
    backoff = Backoff(first_seconds=10, max_seconds=1800, horizon_seconds=3 * 3600)
    now, waits = 1_000_000.0, []
    for attempt in range(1, 9):
        outbox.begin_attempt(db, outbox_id, now=now)
        due = outbox.mark_retry(db, outbox_id, "HTTP 503", backoff=backoff, now=now)
        assert due is not None
        waits.append(due - now)
        assert outbox.pending(db, "reddit", now=due - 0.1) == []  # not before it is due
        assert [r.outbox_id for r in outbox.pending(db, "reddit", now=due)] == [outbox_id]
        high = min(10 * 2 ** (attempt - 1), 1800)
        assert high / 2 <= waits[-1] <= high, waits  # equal jitter around a capped doubling
        now = due
    row = db["outbox"].get(outbox_id)
    assert row["attempts"] == 8 and row["failing_since"] == 1_000_000.0 and row["status"] == "pending"


def test_the_platforms_wait_is_a_floor(db: Database, world: World) -> None:
    outbox_id = bought_note(db, world)
    due = outbox.mark_retry(db, outbox_id, "RATELIMIT", backoff=Backoff(), retry_after=540.0, now=0.0)
    assert due is not None and due >= 540.0


def test_past_the_horizon_a_transient_failure_fails_the_note(db: Database, world: World) -> None:
    outbox_id = bought_note(db, world)
    backoff = Backoff(horizon_seconds=3600)
    assert outbox.mark_retry(db, outbox_id, "HTTP 500", backoff=backoff, now=0.0) is not None
    assert outbox.mark_retry(db, outbox_id, "HTTP 500", backoff=backoff, now=3599.0) is not None
    assert outbox.mark_retry(db, outbox_id, "HTTP 502", backoff=backoff, now=3600.0) is None
    row = db["outbox"].get(outbox_id)
    assert row["status"] == "failed" and row["last_error"].startswith("gave up after 1.0 h")
    assert "HTTP 502" in row["last_error"] and row["failed_at"] == 3600.0


def test_a_held_surface_does_not_advance_backoff(db: Database, world: World) -> None:
    outbox_id = bought_note(db, world)
    outbox.defer_surface(db, "reddit", 500.0, now=100.0)
    row = db["outbox"].get(outbox_id)
    assert (row["next_attempt_at"], row["attempts"], row["failing_since"]) == (500.0, 0, 100.0)
    outbox.defer_surface(db, "reddit", 300.0, now=200.0)  # never earlier than already held
    assert db["outbox"].get(outbox_id)["next_attempt_at"] == 500.0


def test_retry_queues_a_failed_note_with_a_fresh_horizon(db: Database, world: World) -> None:
    outbox_id = bought_note(db, world)
    outbox.mark_failed(db, outbox_id, "reddit refused it: THREAD_LOCKED", now=5.0)
    assert outbox.pending(db, "reddit", now=1e12) == []
    outbox.retry(db, outbox_id)
    row = db["outbox"].get(outbox_id)
    assert row["status"] == "pending" and row["failing_since"] is None and row["next_attempt_at"] is None
    assert [r.outbox_id for r in outbox.pending(db, "reddit")] == [outbox_id]
    outbox.mark_delivered(db, outbox_id, "t1_xyz")
    with pytest.raises(Conflict, match="delivered already"):
        outbox.retry(db, outbox_id)
    assert outbox.delivered_external_id(db, int(row["reveal_id"]), "reddit") == "t1_xyz"


def test_rows_never_carry_a_note_s_text(db: Database, world: World) -> None:
    bought_note(db, world)
    [row] = outbox.rows(db)
    assert NOTE not in json.dumps(row) and row["post_external_id"] == "t3_abc"
    assert NOTE not in repr(outbox.pending(db, "reddit")[0])


def test_a_post_check_that_says_gone_cancels_and_unknown_skips(db: Database, world: World) -> None:
    post_id = community.add_post(db, world.community_id, POST, platform="reddit", external_id="t3_x")
    market_id = market.open_market(db, post_id)
    market.submit_offer(
        db, market_id, world.informers[0], classification="misleading", text=NOTE, bid=3, price=5
    )
    asked: list[str] = []

    def check(answer: PostState) -> object:
        def post_check(post: dict[str, object]) -> PostState:
            asked.append(str(post["external_id"]))
            return answer

        return post_check

    report = close_market(
        db, market_id, SimpleJudge(), force=True, post_check=check(PostState.unknown("down"))
    )
    assert report.skipped == "down" and market.get_market(db, market_id)["status"] == "open"
    report = close_market(
        db, market_id, SimpleJudge(), force=True, post_check=check(PostState.gone("locked"))
    )
    assert report.cancelled == "locked" and asked == ["t3_x", "t3_x"]
    again = close_market(db, market_id, SimpleJudge(), force=True, post_check=check(PostState.gone("locked")))
    assert again.already_settled and asked == ["t3_x", "t3_x"]  # cancelled exactly once


def _cli(db_path: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, [*args, "--db", str(db_path)])
    assert result.exit_code == code, result.output
    return result.output


def test_outbox_list_and_retry_from_the_command_line(db: Database, db_path: Path, world: World) -> None:
    first = bought_note(db, world)
    second = bought_note(db, world, external_id="t3_def")
    outbox.mark_failed(db, first, "Forbidden (the bot is banned, or the subreddit is private)")
    listing = _cli(db_path, "outbox", "list", "--status", "failed")
    assert "Forbidden" in listing and "t3_abc" in listing and "t3_def" not in listing
    assert NOTE not in _cli(db_path, "outbox", "list")
    rows = [json.loads(line) for line in _cli(db_path, "outbox", "list", "--json").splitlines()]
    assert {r["outbox_id"]: r["status"] for r in rows} == {first: "failed", second: "pending"}

    assert json.loads(_cli(db_path, "outbox", "retry", str(first))) == {"queued": [first]}
    assert db["outbox"].get(first)["status"] == "pending"
    outbox.mark_failed(db, first, "x")
    outbox.mark_failed(db, second, "y")
    queued = json.loads(_cli(db_path, "outbox", "retry", "--all-failed"))
    assert sorted(queued["queued"]) == sorted([first, second])
    assert "Error: name one outbox row" in _cli(db_path, "outbox", "retry", code=1)
    assert "Error: no outbox row 99" in _cli(db_path, "outbox", "retry", "99", code=1)
    outbox.mark_delivered(db, first, "t1_a")
    assert "delivered already" in _cli(db_path, "outbox", "retry", str(first), code=1)
    actions = [r[0] for r in db.execute("SELECT action FROM audit_log WHERE action = 'outbox.retry'")]
    assert len(actions) == 3


def test_moderators_see_undelivered_notes_on_the_console_and_retry_them(web: WebWorld) -> None:  # noqa: F811
    db = web.db()
    try:
        com = community.get_community(db, SLUG)
        informer = community.create_account(db, "console_informer")
        community.mint(db, informer, 100, key="test:console")
        world = World(com.id, 0, 0, [informer])
        outbox_id = bought_note(db, world, external_id="t3_console")
        outbox.mark_failed(db, outbox_id, "reddit refused it: THREAD_LOCKED")
    finally:
        db.close()
    client = web.client
    log_in(client, *MODERATOR)
    page = client.get(f"/mod/{SLUG}").text
    assert f'id="delivery-{outbox_id}"' in page and "THREAD_LOCKED" in page and "Deliveries (1)" in page
    token = csrf_of(client, f"/mod/{SLUG}")
    response = client.post(f"/mod/{SLUG}/deliveries/{outbox_id}/retry", data={"csrf_token": token})
    assert response.status_code == 200 and "queued again" in response.text
    assert f'id="delivery-{outbox_id}"' not in response.text
    db = open_db(web.db_path, migrate=False)
    try:
        assert db["outbox"].get(outbox_id)["status"] == "pending"
    finally:
        db.close()
    missing = client.post(f"/mod/{SLUG}/deliveries/9999/retry", data={"csrf_token": token})
    assert missing.status_code == 404


def test_a_note_hidden_while_its_delivery_is_under_way_is_taken_down_once_delivered(
    db: Database, world: World
) -> None:
    """The bot loaded the note to deliver, then readers hid it, then the platform accepted it: the
    message must still be taken down."""
    from notebazaar.pipeline import statuses

    outbox_id = bought_note(db, world)
    (due,) = outbox.pending(db, "reddit")
    reveal_id = due.reveal_id
    statuses.hide(db, reveal_id, world.community_id, "readers rated it not helpful", now=1.0, detail={})
    assert outbox.pending(db, "reddit") == []  # not started again
    outbox.mark_delivered(db, outbox_id, "t1_late")
    (takedown,) = outbox.pending_takedowns(db, "reddit")
    assert (takedown.outbox_id, takedown.external_id) == (outbox_id, "t1_late")
