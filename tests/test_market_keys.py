"""Market keys (pipeline/market_keys.py): an offer key never reaches the database in the clear, and
a settled post's market key is deleted, so no file left in the state folder can open a shredded
note, with no checkpoint of the WAL."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
from sqlite_utils import Database

from notebazaar.pipeline import ledger, market, market_keys, sealing
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.settlement import close_market
from tests.test_core_helpers import ScriptedJudge, make_market

SCRIPT = {"BUY": 0.9}


@pytest.fixture
def captured_keys(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every offer key sealed during the test, in the clear (as only the sealing process holds it)."""
    keys: list[bytes] = []
    real_seal = sealing.seal

    def seal(content: sealing.NoteContent, **kwargs: bytes) -> sealing.Sealed:
        sealed = real_seal(content, **kwargs)
        keys.append(sealed.key)
        return sealed

    monkeypatch.setattr(market, "seal", seal)
    return keys


def _offers(db: Database, market_id: int, informers: list[int], texts: list[str]) -> list[int]:
    return [
        market.submit_offer(db, market_id, i, classification="misleading", text=t, bid=5, price=10).offer_id
        for i, t in zip(informers, texts, strict=True)
    ]


def _db_file(db: Database) -> Path:
    return Path(db.execute("PRAGMA database_list").fetchone()[2])


def _state_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_offer_keys_are_wrapped_and_a_settled_post_leaves_nothing_that_opens_them(
    db: Database, captured_keys: list[bytes]
) -> None:
    folder = _db_file(db).parent
    _, market_id, informers = make_market(db, slots=2)
    post_id = int(db["markets"].get(market_id)["post_id"])
    _offers(db, market_id, informers, ["BUY this one", "a note that moves nobody", "never read"])
    path = market_keys.key_file(db, post_id)
    assert path is not None and path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = [r[0] for r in db.execute("SELECT key FROM offer_keys ORDER BY offer_id")]
    assert [len(k) for k in stored] == [40, 40, 40]
    assert [market_keys.unwrap(db, post_id, k) for k in stored] == captured_keys
    for raw in captured_keys:  # in no page of the database or the WAL, even while the market is open
        assert not any(raw in data for data in _state_files(folder).values())

    close_market(db, market_id, ScriptedJudge(dict(SCRIPT)), force=True)

    assert db["markets"].get(market_id)["status"] == "settled"
    assert not path.exists()
    wal = folder / f"{_db_file(db).name}-wal"
    assert wal.stat().st_size > 0  # no checkpoint emptied it: the market key's deletion is enough
    assert [market_keys.unwrap(db, post_id, k) for k in stored] == [None, None, None]
    for raw in captured_keys:
        assert not any(raw in data for data in _state_files(folder).values())


def test_a_key_stored_in_the_clear_by_an_older_version_still_opens(db: Database) -> None:
    _, market_id, informers = make_market(db, slots=1, informers=1)
    (offer_id,) = _offers(db, market_id, informers, ["BUY: an offer sealed before market keys"])
    post_id = int(db["markets"].get(market_id)["post_id"])
    wrapped = db.execute("SELECT key FROM offer_keys WHERE offer_id = ?", [offer_id]).fetchone()[0]
    clear = market_keys.unwrap(db, post_id, wrapped)
    db.execute("UPDATE offer_keys SET key = ? WHERE offer_id = ?", [clear, offer_id])
    market_keys.destroy(db, post_id)  # that version wrote no market key

    report = close_market(db, market_id, ScriptedJudge(dict(SCRIPT)), force=True)

    assert [i.reason for i in report.inspections] == ["bought"]


def test_a_lost_market_key_shreds_the_winners_and_refunds_their_bids(db: Database) -> None:
    _, market_id, informers = make_market(db, slots=2)
    offers = _offers(db, market_id, informers, ["BUY", "BUY too", "not read"])
    post_id = int(db["markets"].get(market_id)["post_id"])
    before = {i: ledger.balance(db, ledger.wallet(i)) for i in informers}
    market_keys.destroy(db, post_id)

    report = close_market(db, market_id, ScriptedJudge(dict(SCRIPT)), force=True)

    assert report.inspections == []
    # Each winner left the auction unread, and the next took its slot, until none was left.
    assert [db["offers"].get(o)["outcome"] for o in offers] == ["undecryptable"] * 3
    assert all(ledger.balance(db, ledger.wallet(i)) == before[i] + 5 for i in informers)
    assert ledger.check(db).ok


def test_sweep_deletes_what_a_dead_process_left_and_keeps_open_markets_keys(tmp_path: Path) -> None:
    db = open_db(tmp_path / "nb.db")
    _, settled_id, informers = make_market(db, slug="settled", slots=1, informers=1)
    _offers(db, settled_id, informers, ["BUY"])
    _, open_id, others = make_market(db, slug="open", slots=1, informers=1)
    _offers(db, open_id, others, ["BUY"])
    settled_post = int(db["markets"].get(settled_id)["post_id"])
    open_post = int(db["markets"].get(open_id)["post_id"])
    leftover = market_keys.key_file(db, settled_post)
    assert leftover is not None
    kept = leftover.read_bytes()
    close_market(db, settled_id, ScriptedJudge(dict(SCRIPT)), force=True)
    leftover.write_bytes(kept)  # as if the process died between the commit and the deletion
    stray = tmp_path / "nb.db-post-9.key.0a1b2c3d.tmp"
    stray.write_bytes(b"half")
    fresh = tmp_path / "nb.db-post-9.key.4e5f6a7b.tmp"
    fresh.write_bytes(b"being written")
    os.utime(stray, (time.time() - 3600, time.time() - 3600))

    assert market_keys.sweep(db) == [settled_post]

    assert not leftover.exists() and not stray.exists()
    assert fresh.exists()  # another process may be writing it now
    assert market_keys.key_file(db, open_post).is_file()  # type: ignore[union-attr]
    db.close()


def test_a_database_in_memory_keeps_its_market_keys_in_memory() -> None:
    db = open_db(":memory:")
    _, market_id, informers = make_market(db, slots=1, informers=1)
    _offers(db, market_id, informers, ["BUY"])
    assert market_keys.key_file(db, 1) is None
    report = close_market(db, market_id, ScriptedJudge(dict(SCRIPT)), force=True)
    assert [i.reason for i in report.inspections] == ["bought"]
