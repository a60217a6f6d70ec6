"""Track records as maintained counters: after any sequence of markets, reveals, ratings,
resolutions (and changes of mind), discredits and a migration's recount, the counters read by the
judges equal what a scan of every revealed note says (the rule as the scan used to compute it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from notebazaar.pipeline import community, market, records
from notebazaar.pipeline.config import MarketSettings
from notebazaar.pipeline.db import open_db, write
from notebazaar.pipeline.judge import TrackRecord
from notebazaar.pipeline.settlement import close_market
from tests.test_core_helpers import ScriptedJudge

CLASSES = ("misleading", "not_misleading")
# The rule as a scan (what track records were computed from before they were counters).
_RIGHT = (
    "r.classification = p.resolution AND NOT COALESCE("
    "(SELECT SUM(g.level = 'not_helpful') > SUM(g.level != 'not_helpful') FROM ratings g"
    " WHERE g.reveal_id = r.id), 0)"
)


def scanned(db: object, where: str, params: list[object]) -> TrackRecord:
    row = db.execute(  # type: ignore[attr-defined]
        f"SELECT COALESCE(SUM({_RIGHT}), 0), COALESCE(SUM(NOT ({_RIGHT})), 0)"
        " FROM reveals r JOIN posts p ON p.id = r.post_id"
        " JOIN markets m ON m.id = r.market_id AND m.parent_offer_id IS NULL"
        f" WHERE p.resolution IS NOT NULL AND {where}",
        params,
    ).fetchone()
    return TrackRecord(int(row[0]), int(row[1]))


def scanned_inspections(db: object, informer_id: int) -> TrackRecord:
    """The informer's offers read and not bought on resolved posts, by the way each moved the judge."""
    pointed = "CASE WHEN i.p_after > i.p_before THEN 'misleading' ELSE 'not_misleading' END"
    row = db.execute(  # type: ignore[attr-defined]
        f"SELECT COALESCE(SUM({pointed} = p.resolution), 0), COALESCE(SUM({pointed} != p.resolution), 0)"
        " FROM inspections i JOIN offers o ON o.id = i.offer_id"
        " JOIN markets m ON m.id = i.market_id AND m.parent_offer_id IS NULL"
        " JOIN posts p ON p.id = m.post_id"
        " WHERE o.informer_id = ? AND i.bought = 0 AND p.resolution IS NOT NULL AND i.p_after != i.p_before",
        [informer_id],
    ).fetchone()
    return TrackRecord(int(row[0]), int(row[1]))


def scanned_discredits(db: object, informer_id: int) -> int:
    return int(
        db.execute(  # type: ignore[attr-defined]
            "SELECT COUNT(*) FROM offers o JOIN markets s ON s.parent_offer_id = o.id"
            " JOIN markets m ON m.id = o.market_id AND m.parent_offer_id IS NULL"
            " WHERE o.informer_id = ? AND s.status = 'settled' AND s.belief >= 0.5 AND s.belief > s.prior",
            [informer_id],
        ).fetchone()[0]
    )


class RecordMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.db = open_db(":memory:")
        self.community = community.create_community(
            self.db, "c", settings=MarketSettings(attention_slots=3, reserve=0, budget_per_market=100)
        ).id
        funder = community.create_account(self.db, "funder")
        community.mint(self.db, funder, 100_000, key="mint:f")
        community.fund_pool(self.db, self.community, funder, 100_000, key="fund")
        self.informers = []
        for i in range(3):
            informer = community.create_account(self.db, f"i{i}")
            community.mint(self.db, informer, 10_000, key=f"mint:{i}")
            self.informers.append(informer)
        self.raters = [community.create_account(self.db, f"r{i}") for i in range(3)]
        self.posts: list[int] = []
        self.n = 0

    @rule(
        classes=st.lists(st.sampled_from(CLASSES), min_size=1, max_size=3),
        prices=st.lists(st.sampled_from((1, 5_000)), min_size=3, max_size=3),
        resolve_first=st.booleans(),
    )
    def run_market(self, classes: list[str], prices: list[int], resolve_first: bool) -> None:
        self.n += 1
        post = community.add_post(self.db, self.community, f"post {self.n}", external_id=f"p{self.n}")
        self.posts.append(post)
        market_id = market.open_market(self.db, post)
        for informer, classification, price in zip(self.informers, classes, prices, strict=False):
            # Priced past the budget, an offer is read and not bought: it counts through its inspection.
            text = "BUY" if classification == "misleading" else "DENY"
            market.submit_offer(
                self.db, market_id, informer, classification=classification, text=text, bid=1, price=price
            )
        if resolve_first:  # a post resolved before its market closes: the notes count when revealed
            market.resolve_post(self.db, post, CLASSES[self.n % 2])
        judge = ScriptedJudge({"BUY": 0.99, "DENY": 0.01}, start=0.5)
        close_market(self.db, market_id, judge, force=True)

    @rule(data=st.data(), resolution=st.sampled_from(CLASSES))
    def resolve(self, data: st.DataObject, resolution: str) -> None:
        if self.posts:
            market.resolve_post(self.db, data.draw(st.sampled_from(self.posts)), resolution)

    @rule(data=st.data(), helpful=st.booleans())
    def rate(self, data: st.DataObject, helpful: bool) -> None:
        reveals = [r[0] for r in self.db.execute("SELECT id FROM reveals")]
        if not reveals:
            return
        reveal_id = data.draw(st.sampled_from(reveals))
        with write(self.db):
            for rater in self.raters:
                self.db.execute(
                    "INSERT OR REPLACE INTO ratings (reveal_id, account_id, level, surface, rated_at,"
                    " updated_at) VALUES (?, ?, ?, 'sim', 1, 1)",
                    [reveal_id, rater, "helpful" if helpful else "not_helpful"],
                )
            records.recount_note(self.db, reveal_id)

    @rule(data=st.data(), belief=st.floats(0.05, 0.95))
    def sub_market(self, data: st.DataObject, belief: float) -> None:
        offers = [r[0] for r in self.db.execute("SELECT id FROM offers WHERE status = 'sealed'")]
        shredded = [r[0] for r in self.db.execute("SELECT id FROM offers WHERE status = 'shredded'")]
        if not shredded:
            return
        offer = data.draw(st.sampled_from(shredded + offers))
        post = self.db.execute(
            "SELECT m.post_id FROM offers o JOIN markets m ON m.id = o.market_id WHERE o.id = ?", [offer]
        ).fetchone()[0]
        sub = market.open_market(self.db, post, parent_offer_id=offer, budget=0)
        with write(self.db):
            self.db.execute(
                "UPDATE markets SET status = 'settled', prior = 0.3, belief = ? WHERE id = ?", [belief, sub]
            )
            records.count_discredit(self.db, sub)
            records.count_discredit(self.db, sub)  # counted once

    @rule()
    def migrate_again(self) -> None:
        with write(self.db):
            records.recount(self.db)

    @invariant()
    def counters_equal_the_scan(self) -> None:
        if not hasattr(self, "db"):
            return
        for informer in self.informers:
            scan = scanned(self.db, "r.informer_id = ?", [informer])
            read = scanned_inspections(self.db, informer)
            discredited = scanned_discredits(self.db, informer)
            assert records.track_record(self.db, informer) == TrackRecord(
                scan.right + read.right, scan.wrong + read.wrong + discredited, discredited
            )
        assert records.community_track_record(self.db, self.community) == scanned(
            self.db, "p.community_id = ?", [self.community]
        )
        misleading, resolved = self.db.execute(
            "SELECT COALESCE(SUM(resolution = 'misleading'), 0), COUNT(resolution) FROM posts"
        ).fetchone()
        assert records.resolved_posts(self.db, self.community) == (misleading, resolved)
        assert records.check(self.db) == []

    def teardown(self) -> None:
        if hasattr(self, "db"):
            self.db.close()


TestRecordCounters = RecordMachine.TestCase
TestRecordCounters.settings = settings(
    max_examples=25, stateful_step_count=12, deadline=None, suppress_health_check=list(HealthCheck)
)


def test_check_names_a_counter_that_drifted() -> None:
    db = open_db(":memory:")
    com = community.create_community(db, "c").id
    informer = community.create_account(db, "i")
    with write(db):
        db.execute("INSERT INTO informer_records (informer_id, notes_right) VALUES (?, 3)", [informer])
    assert records.check(db) == ["informer_records"]
    assert records.track_record(db, informer) == TrackRecord(3, 0)  # check changed nothing
    with write(db):
        records.recount(db)
    assert records.check(db) == [] and records.track_record(db, informer) == TrackRecord()
    assert records.resolved_posts(db, com) == (0, 0)


@pytest.mark.parametrize("resolution", CLASSES)
def test_the_migration_fills_the_counters_from_existing_rows(resolution: str) -> None:
    db = open_db(":memory:")
    com = community.create_community(db, "c", settings=MarketSettings(reserve=0)).id
    funder, informer = community.create_account(db, "f"), community.create_account(db, "i")
    community.mint(db, funder, 1000, key="m")
    community.fund_pool(db, com, funder, 1000, key="f")
    post = community.add_post(db, com, "a post")
    market_id = market.open_market(db, post)
    market.submit_offer(db, market_id, informer, classification="misleading", text="BUY", bid=0, price=1)
    close_market(db, market_id, ScriptedJudge({"BUY": 0.99}, start=0.01), force=True)
    market.resolve_post(db, post, resolution)
    expected = TrackRecord(1, 0) if resolution == "misleading" else TrackRecord(0, 1)
    with write(db):  # a database from before m060: counters empty, then the migration's recount
        for table in ("counted_notes", "informer_records", "community_records"):
            db.execute(f"DELETE FROM {table}")
        records.recount(db)
    assert records.track_record(db, informer) == expected
    assert records.community_track_record(db, com) == expected


def test_a_markets_bought_notes_are_read_through_an_index(tmp_path: Path) -> None:
    """Settlement reads a market's revealed notes before every inspection; without an index on
    ``reveals(market_id)`` each read scanned every reveal of every community (bench --scale)."""
    db = open_db(tmp_path / "n.db")
    plan = " ".join(
        str(row[-1])
        for row in db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM reveals WHERE market_id = ? ORDER BY id", [1]
        ).fetchall()
    )
    assert "USING INDEX reveals_market" in plan, plan
    assert "SCAN reveals" not in plan.replace("USING INDEX", "")


def test_offers_read_and_not_bought_count_once_their_post_resolves() -> None:
    """The lock-out: an informer whose first bought note resolved wrong used to stay at 0 right,
    1 wrong for ever (no note of it was worth a price again, and only bought notes counted). Now
    the offers the judge read count too, by the way each moved the judge, once their post resolves;
    one that moved it neither way does not, and the newcomers' record is left to revealed notes."""
    db = open_db(":memory:")
    com = community.create_community(db, "c", settings=MarketSettings(reserve=0, budget_per_market=50)).id
    funder, informer = community.create_account(db, "f"), community.create_account(db, "i")
    community.mint(db, funder, 10_000, key="m")
    community.mint(db, informer, 1_000, key="mi")
    community.fund_pool(db, com, funder, 10_000, key="f")
    judge = ScriptedJudge({"BUY": 0.99}, start=0.5)

    def one_market(text: str, price: int, label: str) -> int:
        post = community.add_post(db, com, f"post {text} {price} {label}")
        market_id = market.open_market(db, post)
        market.submit_offer(
            db, market_id, informer, classification="misleading", text=text, bid=0, price=price
        )
        close_market(db, market_id, judge, force=True)
        return post

    first = one_market("BUY", 1, "not_misleading")
    market.resolve_post(db, first, "not_misleading")  # bought, resolved wrong
    assert records.track_record(db, informer) == TrackRecord(0, 1)
    unresolved = one_market("BUY", 900, "misleading")  # read, not bought: over the market's budget
    assert records.track_record(db, informer) == TrackRecord(0, 1)  # its post is not resolved yet
    market.resolve_post(db, unresolved, "misleading")
    assert records.track_record(db, informer) == TrackRecord(1, 1)
    market.resolve_post(db, unresolved, "not_misleading")  # a moderator's change of mind
    assert records.track_record(db, informer) == TrackRecord(0, 2)
    market.resolve_post(db, unresolved, "misleading")
    post = one_market("nothing to see", 900, "misleading")  # moved the judge neither way
    market.resolve_post(db, post, "misleading")
    assert records.track_record(db, informer) == TrackRecord(1, 1)
    assert records.newcomer_track_record(db, com) == TrackRecord(0, 1)  # the first revealed note only
    assert records.community_track_record(db, com) == TrackRecord(0, 1)
    with write(db):
        records.recount(db)
    assert records.track_record(db, informer) == TrackRecord(1, 1) and records.check(db) == []
    [(kept,)] = db.execute("SELECT COUNT(*) FROM counted_inspections").fetchall()
    assert kept == 1
