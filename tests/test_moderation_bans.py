"""Bans in the market core: what happens to a banned informer's offers and money, what a banned
account may no longer do, unbanning, and that a moderator cannot ban himself (issue 15)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from sqlite_utils import Database

from notebazaar.pipeline import community, ledger, market, moderation, settlement
from notebazaar.pipeline.errors import Conflict, Forbidden, NotFound
from notebazaar.pipeline.judge import Context, NoteView, PostView, Verdict
from tests.test_core_helpers import ScriptedJudge, ledger_txns, make_market

HELPFUL = "The studio claim is false: the landing was tracked by independent observatories."


def _moderator(db: Database, com: int, handle: str = "ban-mod") -> int:
    account = community.create_account(db, handle)
    community.grant(db, account, com, "moderator")
    return account


def _offer(db: Database, market_id: int, informer: int, bid: int, price: int = 5) -> int:
    return market.submit_offer(
        db, market_id, informer, classification="not_misleading", text=HELPFUL, bid=bid, price=price
    ).offer_id


def _wallet(db: Database, account: int) -> int:
    return ledger.balance(db, ledger.wallet(account))


def test_a_ban_shreds_sealed_offers_and_refunds_their_bids(db: Database) -> None:
    com, market_id, (banned, other, _) = make_market(db)
    mod = _moderator(db, com)
    before = _wallet(db, banned)
    first, second = _offer(db, market_id, banned, 7), _offer(db, market_id, banned, 3)
    kept = _offer(db, market_id, other, 4)
    assert _wallet(db, banned) == before - 10

    report = moderation.ban(db, mod, banned, com, "sockpuppet")

    assert report.shredded == [first, second] and report.refunded == 10
    assert _wallet(db, banned) == before  # the whole bid back, as on a withdrawal
    for offer_id in (first, second):
        row = db["offers"].get(offer_id)
        assert (row["status"], row["outcome"], row["ciphertext"]) == ("shredded", "informer_banned", None)
        assert db.execute("SELECT 1 FROM offer_keys WHERE offer_id = ?", [offer_id]).fetchone() is None
    assert db["offers"].get(kept)["status"] == "sealed"
    judge = ScriptedJudge({"studio claim is false": 0.1})
    result = settlement.close_market(db, market_id, judge, force=True)
    assert [i.offer_id for i in result.inspections] == [kept]  # the banned offers were never read
    assert ledger.check(db).ok


def test_an_offer_that_won_a_slot_before_the_ban_is_not_read_bought_or_paid(db: Database) -> None:
    com, market_id, (banned, other, _) = make_market(db, slots=2)
    mod = _moderator(db, com)
    mine, theirs = _offer(db, market_id, banned, 9, price=5), _offer(db, market_id, other, 4, price=5)
    settlement._run_auction(db, market_id, now=market.get_market(db, market_id)["closes_at"])
    assert db["offers"].get(mine)["status"] == "won"
    after_auction = _wallet(db, banned)
    charge = db["offers"].get(mine)["charge"]

    assert moderation.ban(db, mod, banned, com, "spam").shredded == []  # no sealed offer left
    judge = ScriptedJudge({"studio claim is false": 0.1})
    report = settlement.close_market(db, market_id, judge, force=True)

    decided = {i.offer_id: (i.bought, i.reason) for i in report.inspections}
    assert decided[mine] == (False, "informer_banned")
    assert decided[theirs][0] is True
    assert [seen for seen, _ in judge.seen] == [theirs]  # the judge never read the banned note
    row = db["offers"].get(mine)
    assert (row["status"], row["outcome"], row["ciphertext"]) == ("shredded", "informer_banned", None)
    assert _wallet(db, banned) == after_auction  # not paid; its attention charge stays with the pool
    assert charge > 0 and not db.execute("SELECT 1 FROM reveals WHERE offer_id = ?", [mine]).fetchone()
    assert ledger.check(db).ok


@dataclass
class BanningJudge:
    """A judge during whose reading a moderator bans the note's informer (the race a ban can meet)."""

    db: Database
    moderator: int
    community_id: int
    name: str = "banning"
    seen: list[int] = field(default_factory=list)

    def prior(self, post: PostView, context: Context) -> float:
        return 0.5

    def inspect(self, post: PostView, context: Context, note: NoteView, p_before: float) -> Verdict:
        self.seen.append(note.offer_id)
        moderation.ban(self.db, self.moderator, note.informer_id, self.community_id, "caught mid-read")
        return Verdict(p_before, 0.05, rationale="would buy")


def test_a_ban_while_the_judge_reads_stops_the_purchase(db: Database) -> None:
    com, market_id, (banned, _, _) = make_market(db, slots=1)
    mod = _moderator(db, com)
    offer_id = _offer(db, market_id, banned, 5, price=5)
    judge = BanningJudge(db, mod, com)
    report = settlement.close_market(db, market_id, judge, force=True)
    assert judge.seen == [offer_id]
    assert [(i.bought, i.reason) for i in report.inspections] == [(False, "informer_banned")]
    assert ledger_txns(db, f"offer:{offer_id}:purchase") == [] and db["reveals"].count == 0
    assert ledger.check(db).ok


def test_a_banned_account_cannot_offer_post_fund_or_rejoin_until_unbanned(db: Database) -> None:
    com, market_id, (banned, _, _) = make_market(db)
    mod = _moderator(db, com)
    moderation.ban(db, mod, banned, com, "spam")
    with pytest.raises(Forbidden, match="banned"):
        _offer(db, market_id, banned, 3)
    with pytest.raises(Forbidden, match="banned"):
        community.fund_pool(db, com, banned, 10)
    with pytest.raises(Forbidden, match="banned"):
        community.require_not_banned(db, banned, com)  # what the surfaces ask before a post
    with pytest.raises(Conflict, match="already banned"):
        moderation.ban(db, mod, banned, com, "again")

    moderation.unban(db, mod, banned, com)
    assert not community.is_banned(db, banned, com)
    community.fund_pool(db, com, banned, 10)
    _offer(db, market_id, banned, 3)
    with pytest.raises(NotFound, match="not banned"):
        moderation.unban(db, mod, banned, com)
    actions = [r[0] for r in db.execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["informer.ban", "informer.unban"]


def test_a_moderator_cannot_ban_himself_and_only_moderators_ban_or_unban(db: Database) -> None:
    com, _, (informer, _, _) = make_market(db)
    mod = _moderator(db, com)
    with pytest.raises(Forbidden, match="cannot ban yourself"):
        moderation.ban(db, mod, mod, com, "oops")
    assert not community.is_banned(db, mod, com)
    with pytest.raises(Forbidden, match="moderator"):
        moderation.ban(db, informer, mod, com, "coup")
    moderation.ban(db, mod, informer, com, "spam")
    with pytest.raises(Forbidden, match="moderator"):
        moderation.unban(db, informer, informer, com)


def test_a_banned_moderator_does_not_moderate_nor_lift_the_ban(db: Database) -> None:
    com, _, (informer, _, _) = make_market(db)
    first, second = _moderator(db, com, "mod-a"), _moderator(db, com, "mod-b")
    moderation.ban(db, first, second, com, "abuse of the tools")
    for action in (
        lambda: moderation.unban(db, second, second, com),
        lambda: moderation.ban(db, second, first, com, "revenge"),
        lambda: moderation.ban(db, second, informer, com, "spam"),
    ):
        with pytest.raises(Forbidden, match="you are banned from this community"):
            action()
    assert community.is_banned(db, second, com) and not community.is_banned(db, first, com)
    assert not community.has_role(db, second, com, "moderator")
    moderation.unban(db, first, second, com)  # another moderator can lift it, and the role is back
    assert community.has_role(db, second, com, "moderator")
