"""End to end: a market closed with the LLM judge against the loopback server. One offer is bought
and revealed; the other gets a malformed answer and is not bought, with the reason recorded; the
market settles and the ledger checks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlite_utils import Database

from notebazaar.pipeline import community, ledger, market, settlement
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.judge.factory import make_judge
from tests.conftest import World
from tests.fake_openai import FakeOpenAI, Reply, answer, blocks, malformed, schema_name

GOOD = "The council minutes of 3 May 2024 show the budget passed by 7 votes to 2 (item 4.1)."
VAGUE = "I heard from a friend that this is not the whole story about the budget."


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def model(body: dict) -> Reply:
    """A scripted model: a neutral prior; a strong, quoted verdict on the good note; garbage otherwise."""
    if schema_name(body) == "PriorAnswer":
        return answer(p=0.5)
    if blocks(body)["NOTE"] == GOOD:
        return answer(p_after=0.95, span=GOOD[:60], rationale="The official minutes record the vote.")
    return malformed()


def test_market_settles_with_one_bought_and_one_malformed(
    server: FakeOpenAI, db: Database, settings: Settings, world: World
) -> None:
    server.default = model
    settings.judge.openai.base_url = server.base_url
    settings.judge.openai.max_retries = 0
    judge = make_judge(settings, db, kind="openai")

    post = community.add_post(db, world.community_id, "The council never passed the 2024 budget.")
    market_id = market.open_market(db, post, now=1_000.0)
    good = market.submit_offer(
        db,
        market_id,
        world.informers[0],
        classification="misleading",
        text=GOOD,
        bid=10,
        price=20,
        now=1_001.0,
    )
    vague = market.submit_offer(
        db,
        market_id,
        world.informers[1],
        classification="misleading",
        text=VAGUE,
        bid=8,
        price=5,
        now=1_002.0,
    )
    report = settlement.close_market(db, market_id, judge, now=1_010.0, force=True)

    results = {r.offer_id: r for r in report.inspections}
    assert results[good.offer_id].bought and results[good.offer_id].p_after == pytest.approx(0.95)
    assert not results[vague.offer_id].bought
    assert results[vague.offer_id].reason == "judge_error:malformed_answer"
    assert market.get_market(db, market_id)["status"] == "settled"
    assert ledger.check(db).ok

    [reveal] = db["reveals"].rows
    assert reveal["offer_id"] == good.offer_id and reveal["text"] == GOOD
    assert reveal["rationale"] == "The official minutes record the vote."
    rows = {r["offer_id"]: r for r in db["inspections"].rows}
    # a failed inspection records the tokens it spent (the fake reports 100 + 20 per answer)
    assert rows[vague.offer_id]["judge"] == "openai" and rows[vague.offer_id]["tokens"] == 120
    assert rows[good.offer_id]["tokens"] == 120
    offers = {o["id"]: o for o in db["offers"].rows}
    assert offers[vague.offer_id]["status"] == "shredded" and offers[vague.offer_id]["ciphertext"] is None
    assert [schema_name(b) for b in server.requests] == [
        "PriorAnswer",
        "InspectionAnswer",
        "InspectionAnswer",
    ]


def test_unreachable_judge_still_settles_the_market(db: Database, settings: Settings, world: World) -> None:
    with FakeOpenAI() as fake:
        settings.judge.openai.base_url = fake.base_url  # closed again below: nothing listens
    settings.judge.openai.max_retries = 0
    judge = make_judge(settings, db, kind="openai")
    post = community.add_post(db, world.community_id, "A post nobody can judge today.")
    market_id = market.open_market(db, post, now=1_000.0)
    offer = market.submit_offer(
        db,
        market_id,
        world.informers[0],
        classification="misleading",
        text=GOOD,
        bid=10,
        price=20,
        now=1_001.0,
    )
    report = settlement.close_market(db, market_id, judge, now=1_010.0, force=True)
    assert [(r.offer_id, r.bought, r.reason) for r in report.inspections] == [
        (offer.offer_id, False, "judge_error:connection_error")
    ]
    assert market.get_market(db, market_id)["prior"] == 0.5  # the prior fell back, settlement went on
    assert market.get_market(db, market_id)["prior_error"] == "judge_error:connection_error"
    assert market.get_market(db, market_id)["status"] == "settled"
    assert ledger.check(db).ok
