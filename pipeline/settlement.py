"""Closing a market: the attention auction, the amnesic inspections, payment, reveal and shredding.

Settlement runs in steps, each its own atomic transaction, and every step can be repeated:

1. **Auction** (``open`` -> ``closing``): shred (reason ``undecryptable``, bid refunded) any sealed
   offer that cannot be opened, rank the others, mark the top ``k`` as ``won``, charge their bids
   into the pool, refund the rest, shred the offers that were not inspected, and take the market's
   budget from the pool if there is an offer to inspect (rule 6 in :mod:`notebazaar.pipeline.rules`).
2. **Inspections**, one per won offer, best-proven informers first (rule 7): the judge reads the
   note (outside any transaction: it may be a slow network call), then one transaction records the
   decision and either pays, reveals and queues the note, or shreds it. A won offer whose note
   cannot be opened is shredded with its reason code and its attention charge refunded; the others
   go on.
3. **Finish** (``closing`` -> ``settled``): return the unspent budget to the pool, and delete the
   post's market key once its market is settled (:mod:`notebazaar.pipeline.market_keys`); a close
   that ends without settling the post's market (paused, or a sub-market's) checkpoints the WAL
   instead, since that key lives on.

A *quick* judge (``quick = True``: it inspects in memory, from what its ``prepare`` embedded, with
no model call or network in ``inspect``, as the embedded judge does) has steps 2 and 3 recorded in
one transaction, each inspection a savepoint in it: a 32-offer market then commits once for its
decisions instead of 34 times, which was the largest part of its bookkeeping in ``notebazaar bench``
(issue 18). It holds the write lock for the inspections' arithmetic only, milliseconds. A process
that dies in it loses the whole step and repeats it from the auction's result.

Recursion (:mod:`notebazaar.pipeline.recursion`): an uncertain inspection may open a sub-market about the
offer instead of deciding. The parent then *pauses* in ``closing``, its offer still ``won``, and no
later offer is inspected (their prior depends on this decision); ``close_market`` reports the
sub-market in ``waiting_on``. Closing the parent again after the sub-market settled resumes it.

A process that dies anywhere resumes where it stopped: completed steps are visible in the offer and
market statuses, and every ledger transfer has an idempotency key derived from ids, so nothing is
paid twice. Two closers racing each other are serialised by the write lock and the status checks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from notebazaar.pipeline import credit, holds, ledger, market_keys, records, recursion, rules
from notebazaar.pipeline.community import get_post, is_banned
from notebazaar.pipeline.config import RecursionSettings
from notebazaar.pipeline.db import checkpoint, rows, write
from notebazaar.pipeline.errors import MarketClosed
from notebazaar.pipeline.judge import Context, Judge, JudgeError, NoteView, PostView, TrackRecord
from notebazaar.pipeline.market import budget_key, get_market, reveal, shred
from notebazaar.pipeline.poststate import PostCheck, cancel_market
from notebazaar.pipeline.sealing import NoteContent, Unreadable, unseal

log = logging.getLogger(__name__)

UNDECRYPTABLE = "undecryptable"  # reason code of an offer whose sealed note cannot be opened
KEY_MISSING = "key_missing"  # reason code of a won offer whose key is gone
BANNED = "informer_banned"  # the reason an offer whose informer was banned is shredded uninspected


@dataclass
class InspectionResult:
    offer_id: int
    rank: int
    charge: int
    price: int
    p_before: float
    p_after: float
    value: float
    bought: bool
    reason: str


@dataclass
class SettlementReport:
    market_id: int
    already_settled: bool = False
    ranking: list[dict[str, Any]] = field(default_factory=list)
    inspections: list[InspectionResult] = field(default_factory=list)
    spent: int = 0
    returned: int = 0
    waiting_on: list[int] = field(default_factory=list)  # sub-markets the settlement is paused on
    cancelled: str | None = None  # why the market was cancelled instead (its post is gone)
    skipped: str | None = None  # why it was left for the next pass (the post could not be checked)


def close_market(
    db: Database,
    market_id: int,
    judge: Judge,
    *,
    now: float | None = None,
    force: bool = False,
    subject: Callable[[Database, dict[str, Any]], PostView] | None = None,
    recursion_settings: RecursionSettings | None = None,
    post_check: PostCheck | None = None,
) -> SettlementReport:
    """Close and settle a market exactly once. Safe to call again, or after a crash.

    ``recursion_settings`` allow opening sub-markets (None: none are opened; existing ones are
    still waited on). A sub-market's subject defaults to its parent offer's note. ``post_check``
    (from a platform adapter, :mod:`notebazaar.pipeline.poststate`) is asked about a post's market
    before its auction: a post that is gone cancels the market, one that cannot be checked now
    leaves it for the next pass."""
    now = time.time() if now is None else now
    report = SettlementReport(market_id)
    market = get_market(db, market_id)
    if market["status"] == "settled":
        report.already_settled = True
        if market["parent_offer_id"] is None:  # a process that died before deleting it
            market_keys.destroy(db, int(market["post_id"]))
        return report
    if market["status"] == "open":
        if not force and now < market["closes_at"]:
            raise MarketClosed(
                f"market {market_id}'s bidding window runs {market['closes_at'] - now:.0f}s more;"
                " close it early with force"
            )
        if post_check is not None and market["parent_offer_id"] is None:
            state = post_check(db["posts"].get(market["post_id"]))
            if state.verdict == "unknown":
                report.skipped = state.reason
                return report
            if state.verdict == "gone":
                cancel_market(db, market_id, state.reason, now=now)
                report.cancelled = state.reason
                return report
        _run_auction(db, market_id, now)
    report.ranking = [
        {k: o[k] for k in ("id", "informer_id", "bid", "rank", "charge", "status")}
        for o in rows(
            db, "SELECT * FROM offers WHERE market_id = ? AND rank IS NOT NULL ORDER BY rank", [market_id]
        )
    ]

    pending = recursion.pending_sub_markets(db, market_id)
    if pending:  # paused on sub-markets still open: nothing to do until they settle
        report.waiting_on = pending
        return report
    if subject is None and market["parent_offer_id"] is not None:
        subject = recursion.subject_view
    post = (subject or _post_view)(db, get_market(db, market_id))
    won = list(
        rows(db, "SELECT * FROM offers WHERE market_id = ? AND status = 'won' ORDER BY rank", [market_id])
    )
    tracks = {o["id"]: records.track_record(db, int(o["informer_id"])) for o in won}
    won = rules.inspection_order(won, tracks, first=recursion.waiting_offer_ids(db, market_id))
    market_key = market_keys.load(db, int(market["post_id"]))  # read once for every note it opens
    notes = {  # a banned informer's note is never opened (moderation.ban: shredded uninspected)
        o["id"]: BANNED if _banned(db, o, market) else _open_note(db, o, tracks[o["id"]], market_key)
        for o in won
    }
    del market_key
    prepare = getattr(judge, "prepare", None)
    try:
        if prepare is not None:  # before the prior, which can then use what prepare embedded
            prepare(post, [n for n in notes.values() if isinstance(n, NoteView)])
        prior = _read_prior(db, market_id, post, judge)  # before the lock: it may search the index
        with write(db) if getattr(judge, "quick", False) else contextlib.nullcontext():
            _decide(db, market_id, won, notes, post, judge, now, recursion_settings, report, prior)
    finally:
        forget = getattr(judge, "forget", None)
        if forget is not None:
            forget()
        notes.clear()
    if market["parent_offer_id"] is None and get_market(db, market_id)["status"] == "settled":
        market_keys.destroy(db, int(market["post_id"]))  # every offer key of the post's markets
    else:  # paused, or a sub-market: the market key lives on, so the notes shredded now must not
        checkpoint(db)  # linger in old WAL pages it could open
    return report


def _decide(
    db: Database,
    market_id: int,
    won: list[dict[str, Any]],
    notes: dict[int, NoteView | str],
    post: PostView,
    judge: Judge,
    now: float,
    recursion_settings: RecursionSettings | None,
    report: SettlementReport,
    prior: tuple[float, str | None] | None,
) -> None:
    """The prior (as :func:`_read_prior` read it), the inspections in rule 7's order, and the
    finish: steps 2 and 3.

    Each inspection records its decision in a transaction of its own (a savepoint when the caller
    holds one: see :func:`close_market` for a quick judge)."""
    if prior is not None:
        with write(db):
            db.execute(
                "UPDATE markets SET prior = ?, belief = ?, prior_error = ? WHERE id = ? AND belief IS NULL",
                [prior[0], prior[0], prior[1], market_id],
            )
    for offer in won:
        result = _inspect(db, market_id, offer, notes[offer["id"]], post, judge, now, recursion_settings)
        if isinstance(result, recursion.Waiting):
            report.waiting_on.append(result.sub_market_id)
            break  # paused: later offers' prior depends on this decision
        if result is not None:
            report.inspections.append(result)
    if not report.waiting_on:
        _finish(db, market_id, now, report)


def _read_prior(
    db: Database, market_id: int, post: PostView, judge: Judge
) -> tuple[float, str | None] | None:
    """The reader's prior and the judge's failure to read it, if any; None when the market has its
    belief already (a resumed close)."""
    if get_market(db, market_id)["belief"] is not None:
        return None
    try:
        return rules.clamp(judge.prior(post, Context(_bought_notes(db, market_id)))), None
    except JudgeError as exc:  # the market goes on from a neutral reader; the failure is kept
        log.warning(
            "market %s: the judge could not read the prior (%s); starting from 0.5", market_id, exc.reason
        )
        return 0.5, f"judge_error:{exc.reason}"[:120]


def _post_view(db: Database, market: dict[str, Any]) -> PostView:
    row = get_post(db, int(market["post_id"]))
    return PostView(int(row["id"]), int(row["community_id"]), row["text"], row["platform"])


def _run_auction(db: Database, market_id: int, now: float) -> None:
    with write(db):
        market = get_market(db, market_id)
        if market["status"] != "open":
            return  # another closer got here first
        sealed = rows(db, "SELECT * FROM offers WHERE market_id = ? AND status = 'sealed'", [market_id])
        slots = _auction(db, market, sealed)
        by_id = {o["id"]: o for o in sealed}
        for slot in slots:
            offer = by_id[slot.offer_id]
            if slot.charge > 0:
                ledger.transfer(
                    db,
                    f"offer:{slot.offer_id}:charge",
                    [ledger.Move(ledger.escrow(market_id), ledger.pool(market["community_id"]), slot.charge)],
                    kind="attention_charge",
                )
            _refund(db, market, offer, offer["bid"] - slot.charge)
            db.execute(
                "UPDATE offers SET rank = ?, charge = ? WHERE id = ?",
                [slot.rank, slot.charge, slot.offer_id],
            )
            if slot.inspected:
                db.execute("UPDATE offers SET status = 'won' WHERE id = ?", [slot.offer_id])
            else:
                shred(db, slot.offer_id, "shredded", "not_inspected")
        _take_budget(db, market, sum(1 for slot in slots if slot.inspected))
        db.execute("UPDATE markets SET status = 'closing', closed_at = ? WHERE id = ?", [now, market_id])
    log.info("market %s closed: %s offers ranked", market_id, len(slots))


def _auction(db: Database, market: dict[str, Any], sealed: list[dict[str, Any]]) -> list[rules.Slot]:
    """Rule 1 over the sealed offers. A winner whose note cannot be opened (only winners are
    opened, and only to check) leaves the auction with its whole bid refunded, shredded with the
    reason code ``undecryptable``, and the auction is run again without it, so it neither takes a
    slot nor sets another offer's charge. Removes such offers from ``sealed``."""
    key = market_keys.load(db, int(market["post_id"]))
    while True:
        slots = rules.run_auction(
            [rules.Bid(o["id"], o["bid"], o["submitted_at"]) for o in sealed],
            slots=market["attention_slots"],
            reserve=market["reserve"],
            kind=market["auction"],
        )
        winners = {slot.offer_id for slot in slots if slot.inspected}
        unreadable = [
            o
            for o in sealed
            if o["id"] in winners and not isinstance(_open_note(db, o, TrackRecord(), key), NoteView)
        ]
        if not unreadable:
            return slots
        for offer in unreadable:
            _refund(db, market, offer, int(offer["bid"]))
            shred(db, int(offer["id"]), "shredded", UNDECRYPTABLE)
            sealed.remove(offer)
            log.warning(
                "market %s offer %s cannot be opened: shredded, bid refunded", market["id"], offer["id"]
            )


def _refund(db: Database, market: dict[str, Any], offer: dict[str, Any], amount: int) -> None:
    """The part of an offer's bid it was not charged, from escrow back to its informer."""
    if amount > 0:
        ledger.transfer(
            db,
            f"offer:{offer['id']}:refund",
            [ledger.Move(ledger.escrow(market["id"]), ledger.wallet(int(offer["informer_id"])), amount)],
            kind="refund_bid",
        )


def _take_budget(db: Database, market: dict[str, Any], inspected: int) -> None:
    """Rule 6: a market on a post takes its budget from the pool now, and only if it has an offer
    to inspect. Sub-markets and markets opened before the rule already hold theirs."""
    market_id = int(market["id"])
    if market["parent_offer_id"] is not None or ledger.has_transaction(db, budget_key(market_id)):
        return
    pool = ledger.pool(int(market["community_id"]))
    taken = rules.reserved_budget(int(market["budget"]), ledger.balance(db, pool), inspected)
    if taken > 0:
        ledger.transfer(
            db,
            budget_key(market_id),
            [ledger.Move(pool, ledger.budget(market_id), taken)],
            kind="market_budget",
        )
    db.execute("UPDATE markets SET budget = ? WHERE id = ?", [taken, market_id])


def _bought_notes(db: Database, market_id: int) -> tuple[NoteView, ...]:
    revealed = tuple(
        NoteView(
            offer_id=r["offer_id"],
            informer_id=r["informer_id"],
            classification=r["classification"],
            text=r["text"],
            sources=tuple(json.loads(r["sources"])),
            price=r["price"],
        )
        for r in rows(db, "SELECT * FROM reveals WHERE market_id = ? ORDER BY id", [market_id])
    )
    return revealed + recursion.held_notes(db, market_id)  # a sub-market's bought notes, still sealed


def _banned(db: Database, offer: dict[str, Any], market: dict[str, Any]) -> bool:
    """Whether the offer's informer is banned from the community of ``market``, the offer's own."""
    return is_banned(db, int(offer["informer_id"]), int(market["community_id"]))


def _open_note(
    db: Database, offer: dict[str, Any], track: TrackRecord, market_key: bytes | None
) -> NoteView | str:
    """The offer's note, opened in memory with its post's ``market_key``
    (:func:`notebazaar.pipeline.market_keys.load`), or the reason code saying why it cannot be."""
    row = db.execute("SELECT key FROM offer_keys WHERE offer_id = ?", [offer["id"]]).fetchone()
    if row is None or offer["ciphertext"] is None:
        return KEY_MISSING
    try:
        key = market_keys.unwrap_with(market_key, row[0])
        if key is None:
            return KEY_MISSING
        content = unseal(key, offer["nonce"], offer["ciphertext"])
    except Unreadable:
        return UNDECRYPTABLE
    return NoteView(
        offer_id=offer["id"],
        informer_id=offer["informer_id"],
        classification=content.classification,
        text=content.text,
        sources=content.sources,
        price=offer["price"],
        track=track,
    )


def _inspect(
    db: Database,
    market_id: int,
    offer: dict[str, Any],
    opened: NoteView | str,
    post: PostView,
    judge: Judge,
    now: float,
    recursion_settings: RecursionSettings | None = None,
) -> InspectionResult | recursion.Waiting | None:
    market = get_market(db, market_id)
    p_before = float(market["belief"])
    context = Context(_bought_notes(db, market_id))
    verdict = None
    note = opened if isinstance(opened, NoteView) else None
    failure = BANNED if _banned(db, offer, market) else opened if isinstance(opened, str) else ""
    failed_tokens = 0
    read_after = p_before  # what the judge read in a note it gave no weight (none: no move)
    if note is not None and not failure:
        try:
            verdict = judge.inspect(post, context, note, p_before)
        except JudgeError as exc:
            failure = f"judge_error:{exc.reason}"[:120]
            failed_tokens = exc.tokens
            log.warning("market %s offer %s: the judge failed (%s)", market_id, offer["id"], exc.reason)
        if verdict is not None and verdict.no_weight:  # read, and given no weight: a judgement
            # The move it read is recorded all the same (an informer's record counts it).
            failure, failed_tokens, read_after, verdict = (
                verdict.no_weight[:120],
                verdict.tokens,
                rules.clamp(verdict.p_after),
                None,
            )
    with write(db):
        current = db.execute("SELECT status FROM offers WHERE id = ?", [offer["id"]]).fetchone()
        if current is None or current[0] != "won":
            return None  # decided by another closer meanwhile
        budget_left = ledger.balance(db, ledger.budget(market_id))
        if verdict is not None and _banned(db, offer, market):  # banned while the judge was reading
            verdict, failure = None, BANNED
        if verdict is None:
            p_after = read_after
            decision = rules.Decision(False, 0.0, 0.0, failure)
        else:
            weighed = recursion.weigh(
                db,
                market,
                offer,
                p_before=p_before,
                p_after=rules.clamp(verdict.p_after),
                budget_left=budget_left,
                settings=recursion_settings,
                now=now,
            )
            if isinstance(weighed, recursion.Waiting):
                log.info(
                    "market %s offer %s: waits on sub-market %s",
                    market_id,
                    offer["id"],
                    weighed.sub_market_id,
                )
                return weighed
            p_after = weighed
            budget_left = ledger.balance(db, ledger.budget(market_id))
            decision = rules.decide(
                p_before=p_before,
                p_after=p_after,
                price=int(offer["price"]),
                price_of_information=int(market["price_of_information"]),
                remaining_budget=budget_left,
            )
        inspection_id = db.execute(
            "INSERT INTO inspections (offer_id, market_id, judge, p_before, p_after, kl, value, bought,"
            " reason, tokens, inspected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                offer["id"],
                market_id,
                judge.name,
                p_before,
                p_after,
                decision.kl,
                decision.value,
                int(decision.buy),
                decision.reason,
                verdict.tokens if verdict else failed_tokens,
                now,
            ],
        ).lastrowid
        if decision.buy and note is not None and verdict is not None:
            _buy(db, market, offer, note, verdict.rationale, now)
            db.execute("UPDATE markets SET belief = ? WHERE id = ?", [p_after, market_id])
        else:
            # Never read, or refused a stranger's trust the informer could not know was used up:
            # its attention charge is due back.
            if decision.reason in (UNDECRYPTABLE, KEY_MISSING, credit.NEWCOMER_CREDIT):
                _refund_charge(db, market, offer)
            shred(db, offer["id"], "shredded", decision.reason)
            records.recount_inspection(db, int(inspection_id))  # counts at once on a resolved post
            recursion.follow_parent(db, int(offer["id"]), revealed=False, now=now)
    log.info(
        "market %s offer %s: %s (value %.2f, price %s)",
        market_id,
        offer["id"],
        decision.reason,
        decision.value,
        offer["price"],
    )
    return InspectionResult(
        offer["id"],
        offer["rank"],
        offer["charge"],
        offer["price"],
        p_before,
        p_after,
        decision.value,
        decision.buy,
        decision.reason,
    )


def _refund_charge(db: Database, market: dict[str, Any], offer: dict[str, Any]) -> None:
    """Give back the attention charge of a won offer the judge could not read (or would not weigh
    for want of credit). It went into the pool at the auction; it comes back from the pool and,
    for what that no longer holds, from the market's budget (the pool's money set aside for this
    market), so the notes still to be read keep their budget whenever the pool can pay."""
    charge = int(offer["charge"] or 0)
    budget_ref, pool_ref = ledger.budget(int(market["id"])), ledger.pool(int(market["community_id"]))
    from_pool = min(charge, ledger.balance(db, pool_ref))
    from_budget = min(charge - from_pool, ledger.balance(db, budget_ref))
    wallet = ledger.wallet(int(offer["informer_id"]))
    moves = [
        ledger.Move(ref, wallet, n) for ref, n in ((pool_ref, from_pool), (budget_ref, from_budget)) if n
    ]
    if moves:
        ledger.transfer(db, f"offer:{offer['id']}:charge-refund", moves, kind="refund_charge")
    if from_budget + from_pool < charge:
        log.warning(
            "offer %s: only %s of its charge %s could be refunded",
            offer["id"],
            from_budget + from_pool,
            charge,
        )


def _buy(
    db: Database,
    market: dict[str, Any],
    offer: dict[str, Any],
    note: NoteView,
    rationale: str,
    now: float,
) -> None:
    market_id = int(market["id"])
    # With a payment hold (top-level notes only) the price waits in escrow for readers' verdict.
    held = market["parent_offer_id"] is None and int(market.get("payment_hold_hours") or 0) > 0
    if offer["price"] > 0 and not held:
        ledger.transfer(
            db,
            f"offer:{offer['id']}:purchase",
            [ledger.Move(ledger.budget(market_id), ledger.wallet(note.informer_id), offer["price"])],
            kind="purchase",
        )
    if market["parent_offer_id"] is not None:
        recursion.hold(db, int(offer["id"]))  # paid now, revealed or shredded with its parent offer
        return
    content = NoteContent(note.classification, note.text, note.sources)
    reveal_id = reveal(db, offer, market_id, int(market["post_id"]), content, rationale, now)
    if note.track.stranger:  # a stranger's note: on credit until reviewed
        credit.extend(db, reveal_id, int(market["community_id"]), now=now)
    if offer["price"] > 0 and held:
        holds.hold(db, market, offer, reveal_id, now)
    platform = db.execute("SELECT platform FROM posts WHERE id = ?", [market["post_id"]]).fetchone()[0]
    db.execute(
        "INSERT INTO outbox (reveal_id, surface, created_at) VALUES (?, ?, ?)",
        [reveal_id, platform, now],
    )
    db.execute(
        "INSERT INTO documents (kind, ref_id, community_id, text, source, created_at)"
        " VALUES ('reveal', ?, ?, ?, ?, ?)",
        [reveal_id, market["community_id"], note.text, json.dumps(list(note.sources)), now],
    )
    shred(db, offer["id"], "bought", "bought")
    recursion.follow_parent(db, int(offer["id"]), revealed=True, now=now)


def _finish(db: Database, market_id: int, now: float, report: SettlementReport) -> None:
    with write(db):
        market = get_market(db, market_id)
        if market["status"] == "settled":
            return
        if db.execute(
            "SELECT 1 FROM offers WHERE market_id = ? AND status IN ('won', 'sealed')", [market_id]
        ).fetchone():
            return  # an inspection is still pending (e.g. another closer is mid-way)
        left = ledger.balance(db, ledger.budget(market_id))
        if left > 0:
            target = (
                ledger.pool(market["community_id"])
                if market["parent_offer_id"] is None
                else ledger.budget(_parent_market(db, market["parent_offer_id"]))
            )
            ledger.transfer(
                db,
                f"market:{market_id}:budget-return",
                [ledger.Move(ledger.budget(market_id), target, left)],
                kind="budget_return",
            )
        db.execute("UPDATE markets SET status = 'settled', settled_at = ? WHERE id = ?", [now, market_id])
        if market["parent_offer_id"] is not None:
            records.count_discredit(db, market_id)  # its informer's record learns it now
        report.returned = left
        report.spent = int(market["budget"]) - left
    log.info("market %s settled: spent %s, returned %s", market_id, report.spent, left)


def _parent_market(db: Database, offer_id: int) -> int:
    return int(db.execute("SELECT market_id FROM offers WHERE id = ?", [offer_id]).fetchone()[0])


def due_markets(
    db: Database,
    now: float | None = None,
    *,
    platforms: Collection[str] | None = None,
    other_than: Collection[str] = (),
) -> list[int]:
    """Markets and sub-markets whose window has elapsed, and any left mid-settlement (by a crash, or
    paused on sub-markets that have all settled since). Deepest first, so sub-markets settle before
    the parents that wait on them. ``platforms`` keeps only markets on posts of those platforms,
    ``other_than`` leaves those platforms' markets out (see :func:`close_due`)."""
    now = time.time() if now is None else now
    where, params = "", [now]
    if platforms is not None:
        where += f" AND p.platform IN ({', '.join('?' * len(platforms)) or 'NULL'})"
        params += list(platforms)
    if other_than:
        where += f" AND p.platform NOT IN ({', '.join('?' * len(other_than))})"
        params += list(other_than)
    return [
        int(r[0])
        for r in db.execute(
            "SELECT m.id FROM markets m JOIN posts p ON p.id = m.post_id"
            " WHERE ((m.status = 'open' AND m.closes_at <= ?)"
            " OR (m.status = 'closing' AND NOT EXISTS (SELECT 1 FROM markets s JOIN offers o"
            " ON o.id = s.parent_offer_id WHERE o.market_id = m.id AND s.status != 'settled')))"
            f"{where} ORDER BY m.depth DESC, m.closes_at, m.id",
            params,
        )
    ]


def close_due(
    db: Database,
    judge: Judge,
    *,
    now: float | None = None,
    recursion_settings: RecursionSettings | None = None,
    post_check: PostCheck | None = None,
    lock: AbstractContextManager[Any] | None = None,
    platforms: Collection[str] | None = None,
    other_than: Collection[str] = (),
) -> list[int]:
    """Close every due market (the worker's loop body), then any parent its sub-markets just
    released. A failure in one market does not stop the others; it is logged by id and retried on
    the next pass. No market is closed twice in one pass. ``post_check``: see :func:`close_market`;
    a market skipped because its post could not be checked is not in the returned list.

    ``platforms`` / ``other_than`` choose whose markets this closer settles: a platform's bot closes
    only its own platform's markets, with its post check, and the web worker leaves them to it, so
    no market on a Discord or Reddit post settles without the post being checked.

    ``lock`` (the judge's lock, shared with "close now") is held around each market's close and
    released between markets, so a close asked for meanwhile waits for one market, not a pass."""
    closed: list[int] = []
    tried: set[int] = set()
    market_keys.sweep(db)  # market keys a process that died after a settlement left behind
    while batch := [
        m for m in due_markets(db, now, platforms=platforms, other_than=other_than) if m not in tried
    ]:
        for market_id in batch:
            tried.add(market_id)
            try:
                with lock if lock is not None else contextlib.nullcontext():
                    report = close_market(
                        db,
                        market_id,
                        judge,
                        now=now,
                        recursion_settings=recursion_settings,
                        post_check=post_check,
                    )
                if report.skipped is None:
                    closed.append(market_id)
                else:
                    log.info("market %s not closed this pass: %s", market_id, report.skipped)
            except Exception:
                log.exception("closing market %s failed; will retry", market_id)
    catch_up = getattr(judge, "catch_up", None)
    if closed and catch_up is not None:  # between markets: index what they revealed
        catch_up()
    return closed
