""" "Close now" no longer waits for the worker's whole pass: the worker holds the judge's lock for one
market at a time, and closing a market that is already settled answers at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from notebazaar.pipeline import community, market
from notebazaar.pipeline.db import write
from notebazaar.pipeline.judge import Context, NoteView, PostView, Verdict
from notebazaar.pipeline.poststate import CHECKED_PLATFORMS
from notebazaar.pipeline.settlement import close_due
from notebazaar.web.worker import CloseWorker
from tests.test_core_helpers import ScriptedJudge, make_market
from tests.web_fixtures import (  # noqa: F401  (fixtures)
    MODERATOR,
    SLUG,
    WebWorld,
    api_token,
    fast_hashing_fixture,
    web_fixture,
    web_settings_fixture,
)


class RecordingLock:
    """A lock that records, at every inspection, whether it is held, and counts its holds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holds = 0

    def __enter__(self) -> None:
        self.lock.acquire()
        self.holds += 1

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def test_the_worker_releases_the_lock_between_markets(db: Database) -> None:
    com, first, informers = make_market(db, slots=1, reserve=2)
    seen: list[tuple[int, bool]] = []
    lock = RecordingLock()

    class Judge(ScriptedJudge):
        def inspect(self, post: PostView, context: Context, note: NoteView, p_before: float) -> Verdict:
            seen.append((note.offer_id, lock.lock.locked()))
            return super().inspect(post, context, note, p_before)

    markets = [first] + [market.open_market(db, community.add_post(db, com, f"post {n}")) for n in range(2)]
    offers = [
        market.submit_offer(
            db, m, informers[n], classification="misleading", text="a", bid=3, price=1
        ).offer_id
        for n, m in enumerate(markets)
    ]
    with write(db):
        db.execute("UPDATE markets SET closes_at = 0")
    closed = close_due(db, Judge(), lock=lock)
    assert len(closed) == 3
    assert lock.holds == 3  # taken once per market, so released between them
    assert sorted(o for o, _ in seen) == sorted(offers) and all(held for _, held in seen)


def test_closing_a_settled_market_answers_while_the_worker_holds_the_lock(web: WebWorld) -> None:
    client = web.client
    mod = api_token(client, *MODERATOR)
    settled = next(p for p in client.get("/api/posts").json() if p["market_status"] == "settled")
    lock = client.app.state.close_lock
    answers: list[Any] = []
    with _held(lock):  # the worker is busy settling another market, for as long as it takes
        thread = threading.Thread(
            target=lambda: answers.append(
                client.post(f"/api/markets/{settled['market_id']}/close", headers=mod)
            )
        )
        thread.start()
        thread.join(10)
        assert not thread.is_alive(), "closing a settled market waited for the worker's lock"
    assert answers[0].status_code == 200 and answers[0].json()["already_settled"] is True


@contextmanager
def _held(lock: threading.Lock) -> Iterator[None]:
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def test_each_closer_settles_only_the_markets_it_can_check(db: Database) -> None:
    # A Discord or Reddit market settled by another process would skip its post check (a note
    # bought on a deleted post, paid for and never shown): the web worker leaves them to the bots,
    # and each bot closes only its own platform's markets.
    com, web_market, _ = make_market(db, slots=1, reserve=2)
    on = {
        platform: market.open_market(
            db, community.add_post(db, com, f"a {platform} post", platform=platform, external_id="x")
        )
        for platform in ("discord", "reddit")
    }
    with write(db):
        db.execute("UPDATE markets SET closes_at = 0")
    assert close_due(db, ScriptedJudge(), other_than=CHECKED_PLATFORMS) == [web_market]
    assert close_due(db, ScriptedJudge(), platforms=("reddit",)) == [on["reddit"]]
    assert close_due(db, ScriptedJudge(), platforms=("discord",)) == [on["discord"]]
    assert close_due(db, ScriptedJudge()) == []  # nothing left


def test_the_web_worker_leaves_bot_markets_to_their_bots(db: Database, db_path: Path) -> None:
    com, web_market, _ = make_market(db, slots=1, reserve=2)
    discord_market = market.open_market(
        db, community.add_post(db, com, "a discord post", platform="discord", external_id="1:2")
    )
    with write(db):
        db.execute("UPDATE markets SET closes_at = 0")
    worker = CloseWorker(db_path, ScriptedJudge(), interval=0.05, lock=threading.Lock())
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while market.get_market(db, web_market)["status"] != "settled" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert market.get_market(db, web_market)["status"] == "settled"
    assert market.get_market(db, discord_market)["status"] == "open"  # the Discord bot's to close
