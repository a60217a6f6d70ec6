"""Property tests: random sequences of offers, withdrawals, replacements, opens and closes keep the
ledger balanced, conserved and never negative; charges never exceed bids; a bought note is paid
exactly its price, once; and a refused operation changes nothing."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from notebazaar.pipeline import community, ledger, market
from notebazaar.pipeline.config import LimitSettings, MarketSettings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.errors import NotebazaarError
from notebazaar.pipeline.settlement import close_market
from tests.test_core_helpers import ScriptedJudge, ledger_txns, snapshot, txn_entries

INFORMERS = 4
WALLET = 60
POOL = 300
LIMITS = LimitSettings(max_open_offers_per_informer=2)
MARKERS = ["ALPHA", "BETA", "GAMMA", "ALPHA", "plain"]
SCRIPT = {"ALPHA": 0.9, "BETA": 0.1, "GAMMA": 0.6}


class MarketMachine(RuleBasedStateMachine):
    @initialize(
        slots=st.integers(1, 3),
        reserve=st.integers(0, 5),
        budget=st.integers(1, 80),
        auction=st.sampled_from(["gsp", "first_price"]),
    )
    def setup(self, slots: int, reserve: int, budget: int, auction: str) -> None:
        self.db = open_db(":memory:")
        conf = MarketSettings(
            attention_slots=slots,
            reserve=reserve,
            budget_per_market=budget,
            auction=auction,
            price_of_information=100,  # type: ignore[arg-type]
        )
        self.community = community.create_community(self.db, "prop", settings=conf).id
        reader = community.create_account(self.db, "reader")
        community.mint(self.db, reader, POOL, key="mint:reader")
        community.fund_pool(self.db, self.community, reader, POOL, key="fund")
        self.informers = []
        for i in range(INFORMERS):
            informer = community.create_account(self.db, f"informer{i}")
            community.mint(self.db, informer, WALLET, key=f"mint:{i}")
            self.informers.append(informer)
        self.minted = POOL + INFORMERS * WALLET
        self.markets: list[int] = []
        self.offers: list[int] = []
        self.clock = time.time()
        self.open_market()

    def teardown(self) -> None:
        if hasattr(self, "db"):
            self.db.close()

    def _refused_changes_nothing(self, call: object) -> bool:
        before = snapshot(self.db)
        try:
            call()  # type: ignore[operator]
        except NotebazaarError as exc:
            assert str(exc)
            assert snapshot(self.db) == before, f"refused ({exc}) but the database changed"
            return False
        return True

    @rule()
    def open_market(self) -> None:
        if len(self.markets) >= 4:
            return
        post = community.add_post(self.db, self.community, f"post number {len(self.markets)}")
        self.markets.append(market.open_market(self.db, post))

    @rule(
        m=st.integers(0, 3),
        who=st.integers(0, INFORMERS - 1),
        marker=st.sampled_from(MARKERS),
        bid=st.integers(0, 15) | st.integers(16, 70),
        price=st.integers(0, 40),
        tick=st.floats(0, 2),
    )
    def submit(self, m: int, who: int, marker: str, bid: int, price: int, tick: float) -> None:
        market_id = self.markets[m % len(self.markets)]
        self.clock += tick  # equal clocks (tick 0) exercise tie-breaking

        def call() -> None:
            receipt = market.submit_offer(
                self.db,
                market_id,
                self.informers[who],
                classification="misleading",
                text=f"{marker} note",
                bid=bid,
                price=price,
                limits=LIMITS,
                now=self.clock,
            )
            self.offers.append(receipt.offer_id)

        self._refused_changes_nothing(call)

    @rule(
        n=st.integers(0, 100),
        who=st.integers(0, INFORMERS - 1),
        replace=st.booleans(),
        bid=st.integers(0, 40),
    )
    def withdraw_or_replace(self, n: int, who: int, replace: bool, bid: int) -> None:
        if not self.offers:
            return
        offer_id = self.offers[n % len(self.offers)]
        informer = self.informers[who]  # often not the offer's author: must be refused

        def call() -> None:
            if replace:
                receipt = market.replace_offer(
                    self.db,
                    offer_id,
                    informer,
                    classification="misleading",
                    text="BETA again",
                    bid=bid,
                    price=5,
                    limits=LIMITS,
                    now=self.clock,
                )
                self.offers.append(receipt.offer_id)
            else:
                market.withdraw_offer(self.db, offer_id, informer, now=self.clock)

        self._refused_changes_nothing(call)

    @rule(m=st.integers(0, 3))
    def close(self, m: int) -> None:
        market_id = self.markets[m % len(self.markets)]
        was = self.db["markets"].get(market_id)["status"]
        report = close_market(self.db, market_id, ScriptedJudge(dict(SCRIPT)), force=True, now=self.clock)
        assert report.already_settled == (was == "settled")
        assert self.db["markets"].get(market_id)["status"] == "settled"
        event(
            "closed with a purchase"
            if any(i.bought for i in report.inspections)
            else "closed, nothing bought"
        )

    @invariant()
    def ledger_is_balanced_conserved_and_never_negative(self) -> None:
        report = ledger.check(self.db)
        assert report.ok, report.problems()
        assert report.minted == report.circulating == self.minted
        for row in ledger.balances(self.db):
            assert row["kind"] == "issuance" or row["balance"] >= 0
        assert ledger.balance(self.db, ledger.ISSUANCE) == -self.minted

    @invariant()
    def every_offer_settles_its_bid_and_price_exactly_once(self) -> None:
        if not hasattr(self, "db"):
            return
        for market_id in self.markets:
            m = self.db["markets"].get(market_id)
            sealed_bids = 0
            for offer in self.db["offers"].rows_where("market_id = ?", [market_id]):
                oid, bid = offer["id"], offer["bid"]
                charged = ledger_txns(self.db, f"offer:{oid}:charge")
                refunded = ledger_txns(self.db, f"offer:{oid}:refund")
                out_of_escrow = sum(
                    -txn_entries(self.db, t[0])[ledger.escrow(market_id)] for t in charged + refunded
                )
                charge = offer["charge"] or 0
                assert 0 <= charge <= bid
                if charged:
                    assert -txn_entries(self.db, charged[0][0])[ledger.escrow(market_id)] == charge
                if offer["status"] == "sealed":
                    assert m["status"] == "open" and out_of_escrow == 0
                    sealed_bids += bid
                else:
                    assert out_of_escrow == bid
                purchases = ledger_txns(self.db, f"offer:{oid}:purchase")
                if offer["status"] == "bought":
                    assert len(purchases) == (1 if offer["price"] else 0)
                    if purchases:
                        entries = txn_entries(self.db, purchases[0][0])
                        assert entries == {
                            ledger.budget(market_id): -offer["price"],
                            ledger.wallet(offer["informer_id"]): offer["price"],
                        }
                    inspection = self.db["inspections"].rows_where("offer_id = ?", [oid]).__next__()
                    assert inspection["value"] >= offer["price"]
                else:
                    assert purchases == []
            assert ledger.balance(self.db, ledger.escrow(market_id)) == sealed_bids
            spent = sum(
                r[0] for r in self.db.execute("SELECT price FROM reveals WHERE market_id = ?", [market_id])
            )
            if m["status"] == "settled":
                assert ledger.balance(self.db, ledger.budget(market_id)) == 0
                assert spent <= m["budget"]
                assert len(ledger_txns(self.db, f"market:{market_id}:budget-return")) == (
                    1 if m["budget"] > spent else 0
                )
            elif m["status"] == "open":  # rule 6: an open market holds no pool credits
                assert ledger.balance(self.db, ledger.budget(market_id)) == 0
            else:
                assert ledger.balance(self.db, ledger.budget(market_id)) == m["budget"] - spent
        keys = self.db.execute(
            "SELECT COUNT(*) FROM offer_keys k JOIN offers o ON o.id = k.offer_id"
            " WHERE o.status NOT IN ('sealed', 'won')"
        ).fetchone()[0]
        assert keys == 0, "a shredded or bought offer still has its key"


FAST = settings(
    max_examples=60, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestMarketSequences = MarketMachine.TestCase
TestMarketSequences.settings = FAST


@pytest.mark.slow
class TestMarketSequencesLong(MarketMachine.TestCase):  # type: ignore[name-defined]
    settings = settings(max_examples=150, stateful_step_count=50, deadline=None)
