"""The reward export against hand-computed ledgers: second-price charges, purchases, withdrawals,
offers never inspected, held sub-note payments, bridging statuses; and no unbought text anywhere."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from notebazaar.cli import main
from notebazaar.pipeline import community, market, rewards
from notebazaar.pipeline.config import RecursionSettings
from notebazaar.pipeline.settlement import close_market
from tests.test_core_helpers import ScriptedJudge, make_market

# With b = 100 from a prior of 0.5, "DECISIVE" (0.95) is worth 53 credits; a note without a marker 0.
SCRIPT = {"DECISIVE": 0.95, "UNSURE": 0.7, "DEBUNK": 0.9}
CANARY = "CANARY-unbought-7f3a"


def _offer(db: Database, market_id: int, informer: int, text: str, bid: int, price: int, at: float) -> int:
    return market.submit_offer(
        db, market_id, informer, classification="misleading", text=text, bid=bid, price=price, now=at
    ).offer_id


def _by_offer(db: Database, **kw: object) -> dict[int, dict[str, object]]:
    return {int(r["offer_id"]): r for r in rewards.offer_rewards(db, **kw)}  # type: ignore[arg-type]


def test_reward_is_profit_adjusted_by_the_notes_status() -> None:
    assert rewards.reward(paid=10, charged=3, status=None) == 7
    assert rewards.reward(paid=10, charged=3, status="helpful") == 7
    assert rewards.reward(paid=10, charged=3, status="needs_more_ratings") == 7
    assert rewards.reward(paid=10, charged=3, status="not_helpful") == -13
    assert rewards.reward(paid=0, charged=4, status=None) == -4
    with pytest.raises(ValueError, match="unknown note status"):
        rewards.reward(paid=1, charged=0, status="great")


def test_rows_match_a_hand_computed_ledger(db: Database) -> None:
    """k = 2 slots, reserve 2, GSP. Bids 10, 6, 3 and one withdrawn offer at 8:
    - A (bid 10, price 5, decisive): inspected, pays the next bid down, 6; bought for 5: reward -1.
    - B (bid 6, price 4, moves nobody): inspected, pays max(next bid 3, reserve 2) = 3; not bought: -3.
    - C (bid 3): ranked third, not inspected, charged nothing: 0.
    - D (bid 8): withdrawn before close, refunded in full: 0."""
    _, market_id, (a, b, c, d) = make_market(db, slots=2, reserve=2, informers=4)
    t0 = time.time()
    oa = _offer(db, market_id, a, "DECISIVE the photo is from 2015", 10, 5, t0)
    ob = _offer(db, market_id, b, f"maybe {CANARY}", 6, 4, t0 + 1)
    oc = _offer(db, market_id, c, f"unread {CANARY}", 3, 2, t0 + 2)
    od = _offer(db, market_id, d, f"withdrawn {CANARY}", 8, 2, t0 + 3)
    market.withdraw_offer(db, od, d)
    pending = _by_offer(db)
    assert pending[oa]["outcome"] == "sealed" and pending[oa]["final"] is False
    assert pending[od]["outcome"] == "withdrawn" and pending[od]["final"] is True

    close_market(db, market_id, ScriptedJudge(SCRIPT), force=True)
    rows = _by_offer(db)
    expected = {
        oa: ("bought", 6, 5, -1, "misleading"),
        ob: ("worth_less_than_price", 3, 0, -3, None),
        oc: ("not_inspected", 0, 0, 0, None),
        od: ("withdrawn", 0, 0, 0, None),
    }
    for offer_id, (outcome, charged, paid, reward, classification) in expected.items():
        row = rows[offer_id]
        assert (row["outcome"], row["charged"], row["paid"], row["reward"]) == (
            outcome,
            charged,
            paid,
            reward,
        )
        assert row["classification"] == classification  # only a revealed note's is known
        assert row["final"] is True and row["status"] is None and row["reward_version"] == 1
        assert row["market_id"] == market_id and row["post_text"]
    assert set(rows[oa]) == set(rewards.ROW_KEYS)
    # The rows agree with the wallets: every informer lost exactly its charge and gained its payment.
    for informer, offer_id in ((a, oa), (b, ob), (c, oc), (d, od)):
        wallet = db.execute(
            "SELECT balance FROM ledger_accounts WHERE ref = ?", [f"wallet:{informer}"]
        ).fetchone()[0]
        assert wallet == 1_000 + rows[offer_id]["paid"] - rows[offer_id]["charged"]
    assert CANARY not in json.dumps(list(rows.values()))

    reveal_id = rows[oa]["reveal_id"]
    db.execute(
        "INSERT INTO note_statuses (reveal_id, status, ratings, scored_at) VALUES (?, 'not_helpful', 5, ?)",
        [reveal_id, time.time()],
    )
    assert (_by_offer(db)[oa]["status"], _by_offer(db)[oa]["reward"]) == ("not_helpful", -11)
    db.execute("UPDATE note_statuses SET status = 'helpful' WHERE reveal_id = ?", [reveal_id])
    assert _by_offer(db)[oa]["reward"] == -1
    # Filters: one informer's offers, those submitted since a time, one market's.
    assert list(_by_offer(db, informer_id=b)) == [ob]
    assert list(_by_offer(db, since=t0 + 1.5)) == [oc, od]
    assert set(_by_offer(db, market_id=market_id)) == {oa, ob, oc, od}


def test_a_held_sub_note_is_paid_and_so_rewarded(db: Database) -> None:
    """A sub-note bought in a sub-market is paid at once and kept sealed until its parent is
    decided (outcome ``held``): its reward counts the payment; its classification stays unknown."""
    _, market_id, informers = make_market(db, budget=200, informers=3)
    on = RecursionSettings(enabled=True, uncertain_band=0.5, max_depth=1, max_breadth=2, budget_share=0.3)
    judge = ScriptedJudge(SCRIPT)
    parent = _offer(db, market_id, informers[0], "UNSURE the broadcast was faked", 5, 8, time.time())
    sub_id = close_market(db, market_id, judge, force=True, recursion_settings=on).waiting_on[0]
    sub_note = _offer(db, sub_id, informers[1], f"DEBUNK retracted {CANARY}", 3, 10, time.time())
    close_market(db, sub_id, judge, force=True, recursion_settings=on)
    row = _by_offer(db)[sub_note]
    assert (row["outcome"], row["final"], row["charged"], row["paid"], row["reward"]) == (
        "held",
        True,
        2,
        10,
        8,
    )
    assert row["parent_offer_id"] == parent and row["classification"] is None
    assert _by_offer(db)[parent]["outcome"] == "won"  # still waiting on its sub-market
    close_market(db, market_id, judge, force=True, recursion_settings=on)
    after = _by_offer(db)
    assert after[sub_note]["outcome"] == "shredded_with_parent" and after[sub_note]["reward"] == 8
    assert after[parent]["outcome"] == "worth_less_than_price"
    assert CANARY not in json.dumps(list(after.values()))


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_export_rewards_command(db: Database, db_path: Path) -> None:
    _, market_id, (a, b, _) = make_market(db, slots=2, reserve=2, informers=3)
    t0 = time.time()
    oa = _offer(db, market_id, a, "DECISIVE the photo is from 2015", 10, 5, t0 - 100)
    ob = _offer(db, market_id, b, f"nothing new {CANARY}", 6, 4, t0)
    close_market(db, market_id, ScriptedJudge(SCRIPT), force=True)
    handle = community.get_account(db, b)["handle"]

    lines = [json.loads(x) for x in _cli("export", "rewards", "--db", str(db_path)).splitlines()]
    assert [r["offer_id"] for r in lines] == [oa, ob]
    assert {k for r in lines for k in r} == set(rewards.ROW_KEYS)
    assert [r["reward"] for r in lines] == [5 - 6, -2]  # the last bid pays the reserve
    mine = _cli("export", "rewards", "--db", str(db_path), "--informer", handle)
    assert [json.loads(x)["offer_id"] for x in mine.splitlines()] == [ob]
    since = _cli("export", "rewards", "--db", str(db_path), "--since", str(t0 - 50))
    assert [json.loads(x)["offer_id"] for x in since.splitlines()] == [ob]
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 - 50))
    assert _cli("export", "rewards", "--db", str(db_path), "--since", iso) == since
    assert CANARY not in _cli("export", "rewards", "--db", str(db_path))

    bad = CliRunner().invoke(main, ["export", "rewards", "--db", str(db_path), "--since", "last week"])
    assert bad.exit_code == 1 and "--since 'last week'" in bad.output and "Traceback" not in bad.output
    nobody = CliRunner().invoke(main, ["export", "rewards", "--db", str(db_path), "--informer", "nobody"])
    assert nobody.exit_code == 1 and "no account 'nobody'" in nobody.output
