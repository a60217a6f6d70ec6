"""Track records: what the market remembers about each informer, and about a community's informers.

The judges weigh a note by its author's record (:attr:`notebazaar.pipeline.judge.TrackRecord.reliability`);
this module is the one place that says what counts as a right or a wrong note (:func:`verdict`). A
revealed note on a post's own market counts once it has a verdict:

- **A moderator's resolution overrides** (``notebazaar post resolve``; the simulator's label with
  ``--resolution label``): on a resolved post a note is *right* when its classification matches
  the resolution and readers did not reject it, and *wrong* otherwise. Readers reject a note when
  its bridging status is *not helpful*, or, while it has no helpful / not-helpful status yet, when
  more of its ratings are *not helpful* than anything else (a note can be "right" yet decide
  nothing). A bridging status of *helpful* never rescues a note whose classification the
  resolution contradicts.
- **Otherwise the bridging status decides** (:mod:`notebazaar.pipeline.bridging`, stored in
  ``note_statuses``): *helpful* is right, *not helpful* is wrong, *needs more ratings* does not
  count yet. This is the market's truth in production, where posts resolve only when a moderator
  says so.
- An offer a sub-market *discredited* counts as wrong for its informer (not for the community):
  see :func:`track_record`.
- **An offer the judge read and did not buy** counts too, for its informer only, once its post is
  resolved (:func:`inspection_verdict`): *right* when the way it moved the judge (its inspection's
  ``p_after`` against ``p_before``, the only trace an unbought note leaves; for an offer given no
  weight, what it would have moved a reader to, as the judge recorded it: the embedded judge's
  ``record_below_stranger``) matches the resolution, *wrong* otherwise; an offer that moved the
  judge neither way (irrelevant, refused on credit or for its content, failed) does not count.
  Why: a record that changed only through bought notes locked an honest informer out for good
  after one unlucky first note (0 right, 1 wrong gives a reliability of 0.525, and no note of it was
  worth a price again), and it let a liar whose notes were read but not bought keep a stranger's
  trust. Readers' statuses never judge these offers (readers never saw them), and the newcomers'
  record stays each informer's first *revealed* note.
- Sub-notes (revealed from sub-markets) classify an offer, not the post: they never count.
- The *newcomers' record* of a community counts only each informer's first revealed note there
  (:func:`newcomer_track_record`): what the judge can say about a stranger.

**Maintained counters, not scans.** A judge reads records on every inspection, so reading one must
not grow with the community (a scan of every revealed note costs O(markets) per call). The records
are kept in ``informer_records`` and ``community_records`` (migration m060), and each revealed
note's current contribution in ``counted_notes``. They change only in the write transaction that
changes what they are computed from, through these call sites:

- a post's resolution (:func:`post_resolved`, from :func:`notebazaar.pipeline.market.resolve_post`);
- a note revealed (:func:`recount_note`, from :func:`notebazaar.pipeline.market.reveal`: a note
  revealed on an already resolved post counts at once);
- a rating or a bridging status written (:func:`recount_note`: the bridging scorer calls it in the
  transaction that writes ``note_statuses``; the simulator after its readers' ratings);
- a discredit (:func:`count_discredit`, when a sub-market settles);
- an offer read and not bought (:func:`recount_inspection`, from settlement: an offer read on an
  already resolved post counts at once; and from :func:`post_resolved`).

:func:`recount_note` recomputes one note's contribution from :func:`verdict` and applies only the
difference, so calling it again, or for a note whose inputs did not change, changes nothing. A change
of the rule is a change of :func:`verdict` plus a migration that calls :func:`recount` (which
rebuilds every counter from the tables); :func:`check` says whether the counters agree with a
recount.
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from notebazaar.pipeline import credit, rules
from notebazaar.pipeline.judge import TrackRecord

RIGHT = "right"
WRONG = "wrong"

# --- the rule ---------------------------------------------------------------------------------------


def verdict(db: Database, reveal_id: int) -> str | None:
    """What one revealed note counts as: :data:`RIGHT`, :data:`WRONG`, or None (no verdict yet: its
    post is not resolved and it has no helpful / not-helpful status; or it is a sub-note)."""
    row = db.execute(
        "SELECT r.classification, p.resolution, m.parent_offer_id IS NOT NULL, s.status, COALESCE("
        "(SELECT SUM(g.level = 'not_helpful') > SUM(g.level != 'not_helpful') FROM ratings g"
        " WHERE g.reveal_id = r.id), 0)"
        " FROM reveals r JOIN posts p ON p.id = r.post_id JOIN markets m ON m.id = r.market_id"
        " LEFT JOIN note_statuses s ON s.reveal_id = r.id WHERE r.id = ?",
        [reveal_id],
    ).fetchone()
    if row is None or row[2]:
        return None
    classification, resolution, _, status, rated_unhelpful = row
    if resolution is not None:  # a moderator's resolution overrides the status
        rejected = status == "not_helpful" or (status != "helpful" and bool(rated_unhelpful))
        return RIGHT if classification == resolution and not rejected else WRONG
    return {"helpful": RIGHT, "not_helpful": WRONG}.get(status or "")


def inspection_verdict(db: Database, inspection_id: int) -> tuple[int, str] | None:
    """(informer, :data:`RIGHT` or :data:`WRONG`) for one inspection of an offer that was not bought,
    or None: bought (its revealed note counts instead), on a sub-market, on a post not resolved, or
    the offer moved the judge neither way."""
    row = db.execute(
        "SELECT o.informer_id, i.p_before, i.p_after, i.bought, m.parent_offer_id IS NOT NULL,"
        " p.resolution FROM inspections i JOIN offers o ON o.id = i.offer_id"
        " JOIN markets m ON m.id = i.market_id JOIN posts p ON p.id = m.post_id WHERE i.id = ?",
        [inspection_id],
    ).fetchone()
    if row is None:
        return None
    informer_id, p_before, p_after, bought, on_sub_market, resolution = row
    if bought or on_sub_market or resolution is None or p_after == p_before:
        return None
    pointed = "misleading" if p_after > p_before else "not_misleading"
    return int(informer_id), RIGHT if pointed == resolution else WRONG


def is_discredit(prior: float | None, belief: float | None) -> bool:
    """A settled sub-market discredits the offer it is about when it learned the offer is more
    likely unreliable than not (distrust 1: :func:`notebazaar.pipeline.rules.distrust`)."""
    return prior is not None and belief is not None and belief >= rules.DISCREDITED and belief > prior


# --- the call sites ----------------------------------------------------------------------------------


def _add(db: Database, table: str, key: str, key_value: int, deltas: dict[str, int]) -> None:
    """Add ``deltas`` to one counter row, creating it if new (an upsert would check the CHECK
    constraints against the deltas themselves, which may be negative)."""
    if not any(deltas.values()):
        return
    changes = ", ".join(f"{column} = {column} + ?" for column in deltas)
    updated = db.execute(
        f"UPDATE {table} SET {changes} WHERE {key} = ?", [*deltas.values(), key_value]
    ).rowcount
    if not updated:
        columns = ", ".join([key, *deltas])
        marks = ", ".join("?" * (len(deltas) + 1))
        db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", [key_value, *deltas.values()])


def _delta(counted: str | None, sign: int) -> dict[str, int]:
    return {"notes_right": sign * (counted == RIGHT), "notes_wrong": sign * (counted == WRONG)}


def _is_first_note(db: Database, reveal_id: int, informer_id: int, community_id: int) -> bool:
    """Whether this is the informer's first revealed note on a post of the community (written while
    its author had no record there yet). Reveal ids only grow, so the answer never changes."""
    return (
        db.execute(
            "SELECT 1 FROM reveals f JOIN markets fm ON fm.id = f.market_id AND fm.parent_offer_id IS NULL"
            " JOIN posts fp ON fp.id = f.post_id"
            " WHERE f.informer_id = ? AND f.id < ? AND fp.community_id = ? LIMIT 1",
            [informer_id, reveal_id, community_id],
        ).fetchone()
        is None
    )


def recount_note(db: Database, reveal_id: int) -> None:
    """Bring one revealed note's contribution to its informer's and community's records in line with
    :func:`verdict`. Idempotent. Call inside the write transaction that changed one of its inputs
    (the post's resolution, the note's ratings or bridging status)."""
    credit.review(db, reveal_id)  # the same inputs say whether a stranger's note is still on credit
    new = verdict(db, reveal_id)
    old = db.execute("SELECT verdict FROM counted_notes WHERE reveal_id = ?", [reveal_id]).fetchone()
    old_verdict = old[0] if old else None
    if new == old_verdict:
        return
    informer_id, community_id = db.execute(
        "SELECT r.informer_id, p.community_id FROM reveals r JOIN posts p ON p.id = r.post_id WHERE r.id = ?",
        [reveal_id],
    ).fetchone()
    old_part, new_part = _delta(old_verdict, -1), _delta(new, +1)
    deltas = {column: old_part[column] + new_part[column] for column in old_part}
    _add(db, "informer_records", "informer_id", informer_id, deltas)
    if _is_first_note(db, reveal_id, informer_id, community_id):
        deltas |= {"newcomer_right": deltas["notes_right"], "newcomer_wrong": deltas["notes_wrong"]}
    _add(db, "community_records", "community_id", community_id, deltas)
    if new is None:
        db.execute("DELETE FROM counted_notes WHERE reveal_id = ?", [reveal_id])
    else:
        db.execute(
            "INSERT INTO counted_notes (reveal_id, verdict) VALUES (?, ?)"
            " ON CONFLICT (reveal_id) DO UPDATE SET verdict = excluded.verdict",
            [reveal_id, new],
        )


def post_resolved(
    db: Database, post_id: int, community_id: int, previous: str | None, resolution: str
) -> None:
    """A post's resolution was set (or changed) from ``previous``: count it in the community's
    resolved posts (the judge's base rate) and recount its revealed notes. Call inside the write
    transaction that updates the post."""
    deltas = {
        "resolved_posts": int(previous is None),
        "misleading_posts": int(resolution == "misleading") - int(previous == "misleading"),
    }
    _add(db, "community_records", "community_id", community_id, deltas)
    for (reveal_id,) in db.execute("SELECT id FROM reveals WHERE post_id = ?", [post_id]).fetchall():
        recount_note(db, int(reveal_id))
    for (inspection_id,) in db.execute(
        "SELECT i.id FROM inspections i JOIN markets m ON m.id = i.market_id"
        " WHERE m.post_id = ? AND m.parent_offer_id IS NULL AND i.bought = 0",
        [post_id],
    ).fetchall():
        recount_inspection(db, int(inspection_id))


def recount_inspection(db: Database, inspection_id: int) -> None:
    """Bring one unbought offer's contribution to its informer's record in line with
    :func:`inspection_verdict`. Idempotent. Call inside the write transaction that wrote the
    inspection or changed its post's resolution."""
    found = inspection_verdict(db, inspection_id)
    old = db.execute(
        "SELECT informer_id, verdict FROM counted_inspections WHERE inspection_id = ?", [inspection_id]
    ).fetchone()
    if (tuple(old) if old else None) == found:
        return
    if old is not None:
        _add(db, "informer_records", "informer_id", int(old[0]), _delta(old[1], -1))
    if found is None:
        db.execute("DELETE FROM counted_inspections WHERE inspection_id = ?", [inspection_id])
        return
    _add(db, "informer_records", "informer_id", found[0], _delta(found[1], +1))
    db.execute(
        "INSERT INTO counted_inspections (inspection_id, informer_id, verdict) VALUES (?, ?, ?)"
        " ON CONFLICT (inspection_id) DO UPDATE SET informer_id = excluded.informer_id,"
        " verdict = excluded.verdict",
        [inspection_id, *found],
    )


def count_discredit(db: Database, sub_market_id: int) -> None:
    """Count a settled sub-market's discredit (if it is one) against the informer of the offer it is
    about, once. Only offers on posts count (a sub-market about a sub-note discredits no informer's
    note on a post). Call inside the write transaction that settles the sub-market."""
    row = db.execute(
        "SELECT s.parent_offer_id, o.informer_id, s.prior, s.belief FROM markets s"
        " JOIN offers o ON o.id = s.parent_offer_id"
        " JOIN markets m ON m.id = o.market_id AND m.parent_offer_id IS NULL"
        " WHERE s.id = ? AND s.status = 'settled'",
        [sub_market_id],
    ).fetchone()
    if row is None or not is_discredit(row[2], row[3]):
        return
    inserted = db.execute(
        "INSERT OR IGNORE INTO discredits (sub_market_id, offer_id, informer_id) VALUES (?, ?, ?)",
        [sub_market_id, row[0], row[1]],
    ).rowcount
    if inserted:
        _add(db, "informer_records", "informer_id", int(row[1]), {"discredited": 1})


# --- reading -----------------------------------------------------------------------------------------


def discredited_offers(db: Database, informer_id: int) -> int:
    """The informer's offers on posts whose sub-market learned they are more likely unreliable
    than not (:func:`is_discredit`)."""
    row = db.execute(
        "SELECT discredited FROM informer_records WHERE informer_id = ?", [informer_id]
    ).fetchone()
    return int(row[0]) if row else 0


def track_record(db: Database, informer_id: int) -> TrackRecord:
    """Right and wrong among the informer's revealed notes with a verdict and its offers read and not
    bought on resolved posts (:func:`inspection_verdict`); its offers that sub-markets discredited
    count as wrong too.

    A discredited offer's note is shredded, so the post's resolution can never check it; the
    judgement is what the market learned about the informer, and forgetting it with the note would
    let a liar whom sub-markets keep catching stay a trusted newcomer for ever. Only the count is
    kept."""
    row = db.execute(
        "SELECT notes_right, notes_wrong, discredited FROM informer_records WHERE informer_id = ?",
        [informer_id],
    ).fetchone()
    if row is None:
        return TrackRecord()
    right, wrong, discredited = (int(x) for x in row)
    return TrackRecord(right, wrong + discredited, discredited)


def community_track_record(db: Database, community_id: int) -> TrackRecord:
    """Right and wrong among all the community's revealed notes with a verdict: the prior for a
    newcomer's reliability.

    Verdicts only (resolutions and readers' statuses), without discredits: those are the judge's own
    judgements, and letting them lower the trust the judge gives every newcomer is a feedback loop.
    A few early ones can leave it trusting nobody, and a judge that buys nothing learns nothing, so
    it never recovers."""
    row = db.execute(
        "SELECT notes_right, notes_wrong FROM community_records WHERE community_id = ?", [community_id]
    ).fetchone()
    return TrackRecord(int(row[0]), int(row[1])) if row else TrackRecord()


def newcomer_track_record(db: Database, community_id: int) -> TrackRecord:
    """Right and wrong among the first revealed note of each informer in the community, on
    resolved posts: how far the community's newcomers have proved trustworthy.

    The embedded judge starts an informer without a record of its own here, not at the community's
    overall record: established informers' notes say nothing about a stranger, and an account made
    for one offer (a mislabeler's, say) is a stranger every time. Ground truth only, like the
    community's record."""
    row = db.execute(
        "SELECT newcomer_right, newcomer_wrong FROM community_records WHERE community_id = ?",
        [community_id],
    ).fetchone()
    return TrackRecord(int(row[0]), int(row[1])) if row else TrackRecord()


def resolved_posts(db: Database, community_id: int) -> tuple[int, int]:
    """(misleading, resolved): the community's resolved posts, for the judge's base rate."""
    row = db.execute(
        "SELECT misleading_posts, resolved_posts FROM community_records WHERE community_id = ?",
        [community_id],
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


# --- rebuilding and checking -------------------------------------------------------------------------

_TABLES = ("counted_notes", "counted_inspections", "discredits", "informer_records", "community_records")


def _snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in _TABLES}


def recount(db: Database) -> None:
    """Rebuild every counter from the tables, through the same call sites as live updates (after a
    change of the rule, or to repair). Call inside a write transaction."""
    for table in _TABLES:
        db.execute(f"DELETE FROM {table}")
    db.execute(
        "INSERT INTO community_records (community_id, resolved_posts, misleading_posts)"
        " SELECT community_id, COUNT(*), SUM(resolution = 'misleading') FROM posts"
        " WHERE resolution IS NOT NULL GROUP BY community_id"
    )
    for (reveal_id,) in db.execute(
        "SELECT r.id FROM reveals r JOIN posts p ON p.id = r.post_id LEFT JOIN note_statuses s"
        " ON s.reveal_id = r.id WHERE p.resolution IS NOT NULL OR s.status IN ('helpful', 'not_helpful')"
    ).fetchall():
        recount_note(db, int(reveal_id))
    for (sub_market_id,) in db.execute(
        "SELECT id FROM markets WHERE parent_offer_id IS NOT NULL AND status = 'settled'"
    ).fetchall():
        count_discredit(db, int(sub_market_id))
    for (inspection_id,) in db.execute(
        "SELECT i.id FROM inspections i JOIN markets m ON m.id = i.market_id JOIN posts p ON p.id = m.post_id"
        " WHERE i.bought = 0 AND m.parent_offer_id IS NULL AND p.resolution IS NOT NULL"
    ).fetchall():
        recount_inspection(db, int(inspection_id))


def check(db: Database) -> list[str]:
    """The counter tables that disagree with a recount from scratch (empty when all agree). The
    recount runs in a savepoint that is rolled back, so nothing changes."""
    from notebazaar.pipeline.db import write

    kept = {t: {tuple(r) for r in rows if any(r[1:])} for t, rows in _snapshot(db).items()}
    found: dict[str, set[tuple[Any, ...]]] = {}

    class _Rollback(Exception):
        pass

    try:
        with write(db):
            recount(db)
            found = {t: {tuple(r) for r in rows if any(r[1:])} for t, rows in _snapshot(db).items()}
            raise _Rollback
    except _Rollback:
        pass
    return [t for t in _TABLES if kept[t] != found.get(t)]
