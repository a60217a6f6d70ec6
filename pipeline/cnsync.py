"""Moving ratings between the market's database and Community Notes' TSV formats
(``notebazaar ratings import-cn`` / ``export-cn``).

Import: each Community Notes post (``tweetId``) becomes a post in the community (platform ``cn``),
each note a revealed note on it (a settled market with no budget and an offer bought for 0
credits: no credit moves), its author and raters accounts found or created by their participant
ids (identities on platform ``cn``), and each rating a rating from surface ``import``. Importing the
same files again adds nothing twice (posts, notes and ratings are keyed by Community Notes' ids).

Export: our revealed top-level notes as ``notes-00000.tsv``, their ratings as
``ratings/ratings-00000.tsv`` and their statuses as ``noteStatusHistory-00000.tsv``, with
participant ids ``nb-<account id>`` (an imported note or participant keeps its Community Notes id).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from notebazaar.pipeline import cnformat
from notebazaar.pipeline.community import account_for_identity, add_post, create_community, get_community
from notebazaar.pipeline.config import MarketSettings
from notebazaar.pipeline.db import write
from notebazaar.pipeline.errors import NotFound

PLATFORM = "cn"


@dataclass
class ImportReport:
    notes: int = 0
    ratings: int = 0
    skipped_own_ratings: int = 0
    skipped_unknown_notes: int = 0


def import_cn(db: Database, notes_path: Path, ratings_path: Path, *, community: str = "cn") -> ImportReport:
    """Load Community Notes notes and ratings into ``community`` (created if absent). One transaction."""
    report = ImportReport()
    notes = list(cnformat.read_notes(notes_path))  # parse everything before writing anything
    ratings = list(cnformat.read_ratings(cnformat.Path(ratings_path)))
    try:
        com = get_community(db, community)
    except NotFound:
        # Its markets are imported as settled records (no budget, nothing to inspect) and its pool is
        # never funded, so the default market settings spend nothing.
        com = create_community(db, community, name="Community Notes import", settings=MarketSettings())
    accounts: dict[str, int] = {}

    def account(participant: str) -> int:
        if participant not in accounts:
            accounts[participant] = account_for_identity(db, PLATFORM, participant, participant[:16])
        return accounts[participant]

    with write(db):
        reveal_of: dict[str, int] = {}
        for note in notes:
            existing = db.execute(
                "SELECT reveal_id FROM cn_notes WHERE note_id = ?", [note.note_id]
            ).fetchone()
            if existing:
                reveal_of[note.note_id] = int(existing[0])
                continue
            reveal_of[note.note_id] = _import_note(db, com.id, note, account(note.author_id))
            report.notes += 1
        authors = {
            r: int(a)
            for r, a in db.execute(
                "SELECT c.note_id, r.informer_id FROM cn_notes c JOIN reveals r ON r.id = c.reveal_id"
            )
        }
        rows = []
        for rating in ratings:
            reveal_id = reveal_of.get(rating.note_id)
            if reveal_id is None:
                report.skipped_unknown_notes += 1
                continue
            rater = account(rating.rater_id)
            if authors.get(rating.note_id) == rater:
                report.skipped_own_ratings += 1
                continue
            at = rating.created_at_millis / 1000.0
            rows.append((reveal_id, rater, rating.level, json.dumps(list(rating.tags)), "import", at, at))
        before = db.execute("SELECT COUNT(*) FROM ratings").fetchone()[0]
        db.conn.executemany(
            "INSERT OR IGNORE INTO ratings (reveal_id, account_id, level, tags, surface, rated_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        report.ratings = db.execute("SELECT COUNT(*) FROM ratings").fetchone()[0] - before
    return report


def _import_note(db: Database, community_id: int, note: cnformat.CnNote, author: int) -> int:
    at = note.created_at_millis / 1000.0
    post_id = add_post(
        db,
        community_id,
        f"Community Notes post {note.tweet_id}",
        platform=PLATFORM,
        external_id=note.tweet_id,
        now=at,
    )
    market = db.execute(
        "SELECT id FROM markets WHERE post_id = ? AND parent_offer_id IS NULL", [post_id]
    ).fetchone()
    if market is None:
        cursor = db.execute(
            "INSERT INTO markets (post_id, community_id, depth, status, attention_slots, reserve,"
            " price_of_information, auction, budget, opened_at, closes_at, closed_at, settled_at)"
            " VALUES (?, ?, 0, 'settled', 1, 0, 0, 'gsp', 0, ?, ?, ?, ?)",
            [post_id, community_id, at, at, at, at],
        )
        market_id = int(cursor.lastrowid)  # type: ignore[arg-type]
    else:
        market_id = int(market[0])
    commitment = hashlib.sha256(f"cn:{note.note_id}".encode()).hexdigest()
    cursor = db.execute(
        "INSERT INTO offers (market_id, informer_id, status, bid, price, commitment, submitted_at, outcome)"
        " VALUES (?, ?, 'bought', 0, 0, ?, ?, 'bought')",
        [market_id, author, commitment, at],
    )
    offer_id = int(cursor.lastrowid)  # type: ignore[arg-type]
    cursor = db.execute(
        "INSERT INTO reveals (offer_id, market_id, post_id, informer_id, classification, text, sources,"
        " price, revealed_at) VALUES (?, ?, ?, ?, ?, ?, '[]', 0, ?)",
        [offer_id, market_id, post_id, author, note.classification, note.summary or "(no text)", at],
    )
    reveal_id = int(cursor.lastrowid)  # type: ignore[arg-type]
    db.execute("INSERT INTO cn_notes (note_id, reveal_id) VALUES (?, ?)", [note.note_id, reveal_id])
    return reveal_id


def _participant(db: Database) -> dict[int, str]:
    """Account id -> participant id: an imported participant keeps its Community Notes id."""
    out = {int(a): f"nb-{a}" for (a,) in db.execute("SELECT id FROM accounts")}
    for account_id, external in db.execute(
        "SELECT account_id, external_id FROM identities WHERE platform = ?", [PLATFORM]
    ):
        out[int(account_id)] = str(external)
    return out


def export_cn(db: Database, out_dir: Path) -> dict[str, int]:
    """Write notes, ratings and statuses of revealed top-level notes in Community Notes' formats."""
    who = _participant(db)
    note_id = {int(r): str(n) for n, r in db.execute("SELECT note_id, reveal_id FROM cn_notes")}
    notes = db.execute(
        "SELECT r.id, r.informer_id, r.revealed_at, p.external_id, p.id, r.classification, r.sources, r.text"
        " FROM reveals r JOIN markets m ON m.id = r.market_id JOIN posts p ON p.id = r.post_id"
        " WHERE m.parent_offer_id IS NULL ORDER BY r.id"
    ).fetchall()
    ids = {int(n[0]) for n in notes}

    def nid(reveal_id: int) -> str:
        return note_id.get(reveal_id, str(reveal_id))

    counts = {
        "notes": cnformat.write_tsv(
            out_dir / "notes-00000.tsv",
            cnformat.NOTE_COLUMNS,
            [
                (
                    nid(int(r[0])),
                    who[int(r[1])],
                    int(r[2] * 1000),
                    r[3] if r[3] is not None else r[4],
                    cnformat.CLASSIFICATION_TO_CN[r[5]],
                    int(bool(json.loads(r[6]))),
                    r[7],
                    0,
                )
                for r in notes
            ],
        )
    }
    tag_columns = {tag: column for column, tag in cnformat.TAG_COLUMNS.items()}
    rating_rows = []
    for reveal_id, account_id, level, tags, updated_at in db.execute(
        "SELECT reveal_id, account_id, level, tags, updated_at FROM ratings ORDER BY reveal_id, account_id"
    ):
        if int(reveal_id) not in ids:
            continue
        given = set(json.loads(tags))
        row = {
            "noteId": nid(int(reveal_id)),
            "raterParticipantId": who[int(account_id)],
            "createdAtMillis": int(updated_at * 1000),
            "version": 2,
            "agree": 0,
            "disagree": 0,
            "helpful": int(level == "helpful"),
            "notHelpful": int(level == "not_helpful"),
            "helpfulnessLevel": cnformat.LEVEL_TO_CN[level],
            "ratedOnTweetId": "",
        }
        for tag, column in tag_columns.items():
            row[column] = int(tag in given)
        rating_rows.append(tuple(row[c] for c in cnformat.RATING_COLUMNS))
    counts["ratings"] = cnformat.write_tsv(
        out_dir / "ratings" / "ratings-00000.tsv", cnformat.RATING_COLUMNS, rating_rows
    )
    statuses = dict(
        (int(r), (s, t)) for r, s, t in db.execute("SELECT reveal_id, status, scored_at FROM note_statuses")
    )
    status_rows = []
    for r in notes:
        status, at = statuses.get(int(r[0]), ("needs_more_ratings", None))
        cn_status = cnformat.STATUS_TO_CN[status]
        decided = status != "needs_more_ratings"
        millis = int(at * 1000) if at is not None else ""
        status_rows.append(
            (
                nid(int(r[0])),
                who[int(r[1])],
                int(r[2] * 1000),
                millis,
                cn_status,
                millis if decided else "",
                cn_status if decided else "",
            )
        )
    counts["statuses"] = cnformat.write_tsv(
        out_dir / "noteStatusHistory-00000.tsv", cnformat.STATUS_COLUMNS, status_rows
    )
    counts["exported_at"] = int(time.time())
    return counts
