"""Readers' ratings in the market core: who may rate what (every refusal changes nothing), the
scorer's statuses and their history, hiding a note readers reject, held payments, the track-record
rule, and ``ledger check`` over held payments."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlite_utils import Database

from notebazaar.pipeline import bridging, community, ledger, market, moderation, ratings, records, statuses
from notebazaar.pipeline.config import BridgingSettings, MarketSettings
from notebazaar.pipeline.errors import Conflict, Forbidden, NotFound, ValidationError
from notebazaar.pipeline.judge import TrackRecord
from notebazaar.pipeline.settlement import close_market
from tests.test_core_helpers import ScriptedJudge, snapshot

PARAMS = BridgingSettings()


@dataclass
class Notes:
    community_id: int
    informers: list[int]
    readers: list[int]
    reveals: list[int]  # one bought note per post (by default one per informer)
    posts: list[int]


def _buy_notes(
    db: Database,
    *,
    hold_hours: int = 0,
    count: int = 3,
    readers: int = 12,
    authors: list[int] | None = None,
) -> Notes:
    """``count`` notes bought on posts of their own; ``authors[i]`` is note i's informer (by index),
    by default a new one each."""
    authors = list(range(count)) if authors is None else authors
    settings = MarketSettings(budget_per_market=100, price_of_information=100, payment_hold_hours=hold_hours)
    com = community.create_community(db, "rated", settings=settings)
    funder = community.create_account(db, "funder")
    community.mint(db, funder, 10_000, key="t:mint:funder")
    community.fund_pool(db, com.id, funder, 5_000, key="t:fund")
    informers, reveals, posts = [], [], []
    judge = ScriptedJudge({"DECISIVE": 0.95})
    for _ in range(max(authors) + 1):
        informers.append(community.create_account(db, f"writer{len(informers)}"))
        community.mint(db, informers[-1], 100, key=f"t:mint:{len(informers)}")
    for i, author in enumerate(authors):
        informer = informers[author]
        post = community.add_post(db, com.id, f"Claim number {i} about the moon landing.")
        market_id = market.open_market(db, post)
        market.submit_offer(
            db,
            market_id,
            informer,
            classification="misleading",
            text=f"DECISIVE evidence {i}",
            bid=2,
            price=10,
        )
        report = close_market(db, market_id, judge, force=True)
        assert report.inspections[0].bought
        posts.append(post)
        reveals.append(
            int(db.execute("SELECT id FROM reveals WHERE market_id = ?", [market_id]).fetchone()[0])
        )
    people = [community.create_account(db, f"reader{j}") for j in range(readers)]
    return Notes(com.id, informers, people, reveals, posts)


def _rate_all(db: Database, notes: Notes, reveal_id: int, level: str) -> None:
    for reader in notes.readers:
        ratings.rate(db, reveal_id, reader, level, surface="cli")


def _camps(db: Database, notes: Notes, slanted: list[int]) -> None:
    """The readers are two camps: each of these notes is liked by one camp only. Without such
    disagreement a one-factor model cannot tell a camp's taste from a note's quality."""
    for k, reveal_id in enumerate(slanted):
        for j, reader in enumerate(notes.readers):
            level = "helpful" if j % 2 == k % 2 else "not_helpful"
            ratings.rate(db, reveal_id, reader, level, surface="cli")


def test_rate_change_and_show(db: Database) -> None:
    notes = _buy_notes(db, count=1)
    note, reader = notes.reveals[0], notes.readers[0]
    first = ratings.rate(
        db, note, reader, "somewhat_helpful", tags=["clear", "missing_key_points"], surface="web"
    )
    assert first.changed == "new" and first.tags == ("helpful:clear", "not_helpful:missing_key_points")
    changed = ratings.rate(db, note, reader, "not_helpful", tags=["incorrect"], surface="discord")
    assert changed.changed == "changed" and changed.rated_at == first.rated_at
    assert ratings.rating_of(db, note, reader) | {"rated_at": 0, "updated_at": 0} == {
        "level": "not_helpful",
        "tags": ["not_helpful:incorrect"],
        "surface": "discord",
        "rated_at": 0,
        "updated_at": 0,
    }
    assert db.execute("SELECT COUNT(*) FROM ratings").fetchone()[0] == 1  # one per reader per note


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("unknown note", NotFound, "no published note 999"),
        ("own note", Forbidden, "cannot rate its own note"),
        ("banned rater", Forbidden, "banned"),
        ("double rating", Conflict, "already rated note"),
        ("invalid level", ValidationError, "rating level must be one of"),
        ("tag of the other set", ValidationError, "does not fit a helpful rating"),
        ("unknown surface", ValidationError, "surface must be one of"),
        ("hidden note", Conflict, r"is hidden \(readers rated it not helpful"),
        ("unpublished note", Conflict, "note 1 was unpublished by a moderator; it can"),
        ("bad id", ValidationError, "note id must be a positive whole number"),
    ],
)
def test_refusals_change_nothing(db: Database, case: str, error: type[Exception], message: str) -> None:
    notes = _buy_notes(db, count=1)
    note, reader = notes.reveals[0], notes.readers[0]
    moderator = community.create_account(db, "moderator")
    community.grant(db, moderator, notes.community_id, "moderator")
    ratings.rate(db, note, notes.readers[1], "helpful", surface="web")
    args: dict[str, object] = {"reveal_id": note, "account_id": reader, "level": "helpful", "surface": "web"}
    if case == "unknown note":
        args["reveal_id"] = 999
    elif case == "own note":
        args["account_id"] = notes.informers[0]
    elif case == "banned rater":
        moderation.ban(db, moderator, reader, notes.community_id, "spam")
    elif case == "double rating":
        args["account_id"] = notes.readers[1]
    elif case == "invalid level":
        args["level"] = "very_helpful"
    elif case == "tag of the other set":
        args["tags"] = ["incorrect"]
    elif case == "unknown surface":
        args["surface"] = "fax"
    elif case == "hidden note":
        statuses.hide(db, note, notes.community_id, statuses.hide_reason(-0.5, 0.1, 8), now=1.0, detail={})
    elif case == "unpublished note":  # a moderator's reason is for the audit log, never for raters
        moderation.unpublish(db, moderator, note, "private: see ticket 77")
    elif case == "bad id":
        args["reveal_id"] = "1; DROP TABLE ratings"
    before = snapshot(db)
    with pytest.raises(error, match=message):
        ratings.rate(db, **args)  # type: ignore[arg-type]
    assert snapshot(db) == before


def test_statuses_history_hiding_and_track_records(db: Database) -> None:
    notes = _buy_notes(db, count=9)
    good, bad, unrated, *slanted = notes.reveals
    _camps(db, notes, slanted)
    _rate_all(db, notes, good, "helpful")
    _rate_all(db, notes, bad, "not_helpful")
    report = bridging.score_db(db, PARAMS, now=1000.0)
    assert report.notes == 9 and report.hidden == [bad]
    rows = {r["reveal_id"]: r for r in db.query("SELECT * FROM note_statuses")}
    assert (rows[good]["status"], rows[bad]["status"], rows[unrated]["status"]) == (
        "helpful",
        "not_helpful",
        "needs_more_ratings",
    )
    assert rows[good]["ratings"] == 12 and rows[unrated]["ratings"] == 0 and rows[good]["scored_at"] == 1000.0
    assert rows[good]["intercept"] > 0.4 > rows[bad]["intercept"]
    assert {rows[r]["status"] for r in slanted} == {"needs_more_ratings"}  # one camp alone: no status
    history = list(db.query("SELECT reveal_id, previous_status, status FROM note_status_history ORDER BY id"))
    assert {(h["reveal_id"], h["previous_status"], h["status"]) for h in history} == {
        (good, None, "helpful"),
        (bad, None, "not_helpful"),
        (unrated, None, "needs_more_ratings"),
    } | {(r, None, "needs_more_ratings") for r in slanted}
    # Hidden everywhere, with the reason, and audited; nothing hands it out or retrieves it again.
    hidden = db.execute(
        "SELECT unpublished_at, unpublish_reason, hidden_by FROM reveals WHERE id = ?", [bad]
    ).fetchone()
    assert hidden[0] == 1000.0 and "readers rated it not helpful" in hidden[1] and hidden[2] == "readers"
    assert (
        db.execute("SELECT COUNT(*) FROM documents WHERE kind = 'reveal' AND ref_id = ?", [bad]).fetchone()[0]
        == 0
    )
    audit = db.execute("SELECT action, target, actor_id FROM audit_log WHERE action = 'note.hide'").fetchall()
    assert audit == [("note.hide", f"reveal:{bad}", None)]
    # Track records: helpful = right, not helpful = wrong, no status = no verdict yet.
    assert records.track_record(db, notes.informers[0]) == TrackRecord(1, 0)
    assert records.track_record(db, notes.informers[1]) == TrackRecord(0, 1)
    assert records.track_record(db, notes.informers[2]) == TrackRecord(0, 0)
    assert records.community_track_record(db, notes.community_id) == TrackRecord(1, 1)
    # A second pass that changes nothing adds no history; a change is recorded with its previous status.
    bridging.score_db(db, PARAMS, now=2000.0)
    assert db.execute("SELECT COUNT(*) FROM note_status_history").fetchone()[0] == 9
    _rate_all(db, notes, unrated, "helpful")
    bridging.score_db(db, PARAMS, now=3000.0)
    last = db.execute(
        "SELECT previous_status, status FROM note_status_history ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert tuple(last) == ("needs_more_ratings", "helpful")


@pytest.mark.parametrize("at_wrong", [2, 0])
def test_an_undecided_note_is_hidden_for_its_authors_record(db: Database, at_wrong: int) -> None:
    """Rule 8: a note still needing ratings is hidden once its author has at least
    ``hide_undecided_author_wrong`` wrong notes and more wrong than right; 0 turns it off."""
    # Informer 0 lies: two notes rejected, one liked, two undecided, and one on a post a moderator
    # resolved against it. Informer 1 has one rejected note and one undecided; informer 2 has two
    # liked, two rejected and one undecided.
    authors = [0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3]
    notes = _buy_notes(db, count=len(authors), authors=authors)
    by = {k: [r for r, a in zip(notes.reveals, authors, strict=True) if a == k] for k in range(4)}
    liar_bad, liar_bad2, liar_good, liar_slanted, liar_unrated, liar_resolved = by[0]
    once_bad, once_unrated = by[1]
    *mostly_good, mostly_bad, mostly_bad2, mostly_unrated = by[2]
    for reveal_id in (liar_bad, liar_bad2, once_bad, mostly_bad, mostly_bad2):
        _rate_all(db, notes, reveal_id, "not_helpful")
    for reveal_id in (liar_good, *mostly_good):
        _rate_all(db, notes, reveal_id, "helpful")
    _camps(db, notes, [liar_slanted, *by[3]])  # informer 3: one camp likes each of its notes
    market.resolve_post(db, notes.posts[notes.reveals.index(liar_resolved)], "not_misleading")
    settings = BridgingSettings(hide_undecided_author_wrong=at_wrong)

    report = bridging.score_db(db, settings, now=1000.0)

    assert records.track_record(db, notes.informers[0]) == TrackRecord(1, 3)
    assert records.track_record(db, notes.informers[2]) == TrackRecord(2, 2)
    assert sorted(report.hidden or []) == sorted([liar_bad, liar_bad2, once_bad, mostly_bad, mostly_bad2])
    shown = {int(r[0]) for r in db.execute("SELECT id FROM reveals WHERE unpublished_at IS NULL")}
    if at_wrong == 0:
        assert report.hidden_for_author == []
        assert {liar_slanted, liar_unrated} <= shown
        return
    assert report.hidden_for_author == [liar_slanted, liar_unrated]
    # Shown: the liar's note readers liked, its note the moderator's resolution decides, every note
    # of the others (one wrong is not enough; as many wrong as right is not more wrong than right).
    assert {liar_good, liar_resolved, once_unrated, mostly_unrated, *mostly_good, *by[3]} <= shown
    assert not {liar_slanted, liar_unrated} & shown
    reason, hidden_by = db.execute(
        "SELECT unpublish_reason, hidden_by FROM reveals WHERE id = ?", [liar_slanted]
    ).fetchone()
    assert hidden_by == "readers" and reason == (
        "its author's track record has more wrong notes than right (1 right, 3 wrong),"
        " and readers have not decided this one (12 ratings)"
    )
    audit = db.execute(
        "SELECT json_extract(detail, '$.rule'), json_extract(detail, '$.wrong') FROM audit_log"
        " WHERE action = 'note.hide' AND target = ?",
        [f"reveal:{liar_unrated}"],
    ).fetchall()
    assert audit == [("author_record", 3)]
    assert db.execute("SELECT status FROM note_statuses WHERE reveal_id = ?", [liar_unrated]).fetchone() == (
        "needs_more_ratings",
    )
    before = snapshot(db)
    with pytest.raises(Conflict, match=r"is hidden \(its author's track record"):
        ratings.rate(db, liar_unrated, notes.readers[0], "helpful", surface="web")
    assert snapshot(db) == before
    again = bridging.score_db(db, settings, now=2000.0)  # hidden once, audited once
    assert again.hidden_for_author == []
    assert db.execute("SELECT COUNT(*) FROM audit_log WHERE action = 'note.hide'").fetchone()[0] == 7
    # A discredit is a wrong verdict too (as in records.track_record): informer 1's one wrong note
    # and one discredited offer (a sub-market's verdict, set on its counter here) hide its note.
    db.execute("UPDATE informer_records SET discredited = 1 WHERE informer_id = ?", [notes.informers[1]])
    assert bridging.score_db(db, settings, now=3000.0).hidden_for_author == [once_unrated]


def test_a_moderators_resolution_overrides_the_status(db: Database) -> None:
    notes = _buy_notes(db, count=9)
    helpful_but_wrong, rejected_but_right, _, *slanted = notes.reveals
    _camps(db, notes, slanted)
    _rate_all(db, notes, helpful_but_wrong, "helpful")
    _rate_all(db, notes, rejected_but_right, "not_helpful")
    bridging.score_db(db, PARAMS)
    # Every note says "misleading". The moderator says the first post is not: the note was wrong
    # though readers liked it. The second post is misleading, but readers rejected the note: wrong.
    market.resolve_post(db, notes.posts[0], "not_misleading")
    market.resolve_post(db, notes.posts[1], "misleading")
    assert records.track_record(db, notes.informers[0]) == TrackRecord(0, 1)
    assert records.track_record(db, notes.informers[1]) == TrackRecord(0, 1)
    market.resolve_post(db, notes.posts[2], "misleading")  # unrated, classification matches: right
    assert records.track_record(db, notes.informers[2]) == TrackRecord(1, 0)


def test_held_payments_pay_return_or_release(db: Database) -> None:
    notes = _buy_notes(db, hold_hours=24, count=9)
    paid_when_helpful, returned_when_rejected, released_at_end, *slanted = notes.reveals
    assert all(ledger.balance(db, ledger.wallet(i)) == 98 for i in notes.informers)  # bid charged, price held
    held = dict(db.execute("SELECT reveal_id, amount FROM held_payments WHERE settled_at IS NULL").fetchall())
    assert held == dict.fromkeys(notes.reveals, 10)
    _camps(db, notes, slanted)
    assert ledger.check(db).ok
    pool_before = ledger.balance(db, ledger.pool(notes.community_id))
    _rate_all(db, notes, paid_when_helpful, "helpful")
    _rate_all(db, notes, returned_when_rejected, "not_helpful")
    opened = float(db.execute("SELECT MIN(held_at) FROM held_payments").fetchone()[0])
    report = bridging.score_db(db, PARAMS, now=opened + 3600)
    assert (report.holds_paid, report.holds_returned) == (1, 1)
    assert ledger.balance(db, ledger.wallet(notes.informers[0])) == 108
    assert ledger.balance(db, ledger.wallet(notes.informers[1])) == 98
    assert ledger.balance(db, ledger.pool(notes.community_id)) == pool_before + 10
    assert ledger.balance(db, ledger.wallet(notes.informers[2])) == 98  # still held
    bridging.score_db(db, PARAMS, now=opened + 25 * 3600)  # the hold ended: paid
    assert ledger.balance(db, ledger.wallet(notes.informers[2])) == 108
    assert all(ledger.balance(db, ledger.wallet(i)) == 108 for i in notes.informers[3:])
    assert db.execute("SELECT COUNT(*) FROM held_payments WHERE settled_at IS NULL").fetchone()[0] == 0
    again = bridging.score_db(db, PARAMS, now=opened + 26 * 3600)  # idempotent
    assert (again.holds_paid, again.holds_returned) == (0, 0)
    assert ledger.check(db).ok
    # ledger check names a hold whose escrow disagrees with it.
    db.execute("UPDATE held_payments SET settled_at = NULL WHERE reveal_id = ?", [released_at_end])
    problems = ledger.check(db)
    assert not problems.ok and problems.held_mismatches == [
        ledger.held(
            int(
                db.execute(
                    "SELECT offer_id FROM held_payments WHERE reveal_id = ?", [released_at_end]
                ).fetchone()[0]
            )
        )
    ]
    assert "held payments" in " ".join(problems.problems())


def test_without_a_hold_the_price_is_paid_at_purchase(db: Database) -> None:
    notes = _buy_notes(db, count=1)
    assert ledger.balance(db, ledger.wallet(notes.informers[0])) == 108
    assert db.execute("SELECT COUNT(*) FROM held_payments").fetchone()[0] == 0


def test_sub_notes_cannot_be_rated(db: Database) -> None:
    notes = _buy_notes(db, count=1)
    db.execute(
        "UPDATE markets SET parent_offer_id = 1 WHERE id = (SELECT market_id FROM reveals WHERE id = ?)",
        [notes.reveals[0]],
    )
    with pytest.raises(NotFound, match="no published note"):
        ratings.rate(db, notes.reveals[0], notes.readers[0], "helpful", surface="web")


# The rule before issue 13, verbatim but for the rating columns (helpful 0/1 became a level).
_OLD_RIGHT = (
    "r.classification = p.resolution AND NOT COALESCE("
    "(SELECT SUM(g.level = 'not_helpful') > SUM(g.level != 'not_helpful') FROM ratings g"
    " WHERE g.reveal_id = r.id), 0)"
)


def test_without_statuses_a_resolved_post_counts_as_before(db: Database) -> None:
    """``simulate --resolution label`` runs no scorer: every resolved note must count exactly as
    under the old rule, so that run's report is unchanged."""
    import random

    rng = random.Random(7)
    notes = _buy_notes(db, count=12, readers=5)
    for reveal_id, post in zip(notes.reveals, notes.posts, strict=True):
        for reader in rng.sample(notes.readers, rng.randint(0, 5)):
            ratings.rate(db, reveal_id, reader, rng.choice(["helpful", "not_helpful"]), surface="sim")
        if rng.random() < 0.8:
            market.resolve_post(db, post, rng.choice(["misleading", "not_misleading"]))
    for informer in notes.informers:
        old = db.execute(
            f"SELECT COALESCE(SUM({_OLD_RIGHT}), 0), COALESCE(SUM(NOT ({_OLD_RIGHT})), 0) FROM reveals r"
            " JOIN posts p ON p.id = r.post_id WHERE p.resolution IS NOT NULL AND r.informer_id = ?",
            [informer],
        ).fetchone()
        assert records.track_record(db, informer) == TrackRecord(int(old[0]), int(old[1]))
    counted = [records.track_record(db, i) for i in notes.informers]
    assert sum(t.right + t.wrong for t in counted) >= 5 and any(t.wrong for t in counted)  # exercised


def test_rewards_follow_a_held_payment(db: Database) -> None:
    """The reward export reads what reached the wallet: nothing while the price is held (and the row
    is not final), the price once the hold releases it, nothing when readers' verdict returned it."""
    from notebazaar.pipeline import rewards

    notes = _buy_notes(db, hold_hours=24, count=9)
    kept, rejected, *slanted = notes.reveals
    offer_of = dict(db.execute("SELECT id, offer_id FROM reveals").fetchall())

    def row(reveal_id: int) -> dict[str, object]:
        return next(r for r in rewards.offer_rewards(db) if r["offer_id"] == offer_of[reveal_id])

    assert (row(kept)["paid"], row(kept)["final"], row(kept)["reward"]) == (0, False, -2)
    _camps(db, notes, slanted)
    _rate_all(db, notes, rejected, "not_helpful")
    opened = float(db.execute("SELECT MIN(held_at) FROM held_payments").fetchone()[0])
    bridging.score_db(db, PARAMS, now=opened + 3600)
    assert (row(rejected)["paid"], row(rejected)["final"], row(rejected)["reward"]) == (0, True, -2)
    bridging.score_db(db, PARAMS, now=opened + 25 * 3600)  # the hold ended
    assert (row(kept)["paid"], row(kept)["final"], row(kept)["reward"]) == (10, True, 8)
    # The dashboard and /api/me count the same: the returned price was never earned.
    from notebazaar.web.queries import earnings

    rejected_earnings = {"paid": 0, "attention_charges": 2, "net": -2, "notes_bought": 1}
    assert earnings(db, notes.informers[1]) == rejected_earnings
    assert earnings(db, notes.informers[0])["paid"] == 10
    assert ledger.check(db).ok


def test_a_verdict_after_the_hold_ended_does_not_take_the_price_back(db: Database) -> None:
    """Readers reject the note only after its hold ended, and the scorer first runs then: the end of
    the hold decides, and the informer is paid."""
    notes = _buy_notes(db, hold_hours=24, count=9)
    late, *slanted = notes.reveals[:1] + notes.reveals[2:]
    _camps(db, notes, slanted)
    _rate_all(db, notes, late, "not_helpful")
    opened = float(db.execute("SELECT MIN(held_at) FROM held_payments").fetchone()[0])
    report = bridging.score_db(db, PARAMS, now=opened + 25 * 3600)
    status = db.execute("SELECT status FROM note_statuses WHERE reveal_id = ?", [late]).fetchone()[0]
    assert status == "not_helpful"
    assert ledger.balance(db, ledger.wallet(notes.informers[0])) == 108
    assert report.holds_returned == 0
    assert ledger.check(db).ok
