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
from notebazaar.pipeline.config import RecursionSettings
from notebazaar.pipeline.db import WRAP_MIGRATION, open_db
from notebazaar.pipeline.settlement import close_due, close_market
from tests.test_core_helpers import ScriptedJudge, make_market

SCRIPT = {"BUY": 0.9}
UNSURE_ASKS = RecursionSettings(
    enabled=True, uncertain_band=0.5, max_depth=1, max_breadth=2, budget_share=0.3
)


@pytest.fixture
def sealed(monkeypatch: pytest.MonkeyPatch) -> list[sealing.Sealed]:
    """Every offer sealed during the test, its key in the clear (as only the sealing process holds
    it) and its ciphertext."""
    seen: list[sealing.Sealed] = []
    real_seal = sealing.seal

    def seal(content: sealing.NoteContent, **kwargs: bytes) -> sealing.Sealed:
        seen.append(real_seal(content, **kwargs))
        return seen[-1]

    monkeypatch.setattr(market, "seal", seal)
    return seen


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
    db: Database, sealed: list[sealing.Sealed]
) -> None:
    folder = _db_file(db).parent
    _, market_id, informers = make_market(db, slots=2)
    post_id = int(db["markets"].get(market_id)["post_id"])
    _offers(db, market_id, informers, ["BUY this one", "a note that moves nobody", "never read"])
    captured_keys = [s.key for s in sealed]
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
    orphan = tmp_path / "nb.db-post-77.key"  # no market: a transaction that never committed
    orphan.write_bytes(os.urandom(32))
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))
    pending = tmp_path / "nb.db-post-78.key"  # no market yet: one being opened with its first offer
    pending.write_bytes(os.urandom(32))
    stray = tmp_path / "nb.db-post-9.key.0a1b2c3d.tmp"
    stray.write_bytes(b"half")
    fresh = tmp_path / "nb.db-post-9.key.4e5f6a7b.tmp"
    fresh.write_bytes(b"being written")
    os.utime(stray, (time.time() - 3600, time.time() - 3600))

    assert sorted(market_keys.sweep(db)) == sorted([settled_post, 77])

    assert not leftover.exists() and not stray.exists() and not orphan.exists()
    assert fresh.exists() and pending.exists()  # another process may be writing them now
    assert market_keys.key_file(db, open_post).is_file()  # type: ignore[union-attr]
    db.close()


def test_a_database_in_memory_keeps_its_market_keys_in_memory() -> None:
    db = open_db(":memory:")
    _, market_id, informers = make_market(db, slots=1, informers=1)
    _offers(db, market_id, informers, ["BUY"])
    assert market_keys.key_file(db, 1) is None
    report = close_market(db, market_id, ScriptedJudge(dict(SCRIPT)), force=True)
    assert [i.reason for i in report.inspections] == ["bought"]


def test_a_key_left_by_a_process_that_died_after_settling_goes_on_the_next_close_or_pass(
    tmp_path: Path,
) -> None:
    db = open_db(tmp_path / "nb.db")
    _, market_id, informers = make_market(db, slots=1, informers=1)
    _offers(db, market_id, informers, ["BUY"])
    path = market_keys.key_file(db, int(db["markets"].get(market_id)["post_id"]))
    assert path is not None
    kept = path.read_bytes()
    close_market(db, market_id, ScriptedJudge(dict(SCRIPT)), force=True)
    path.write_bytes(kept)  # the process died between the settlement's commit and the deletion

    assert close_market(db, market_id, ScriptedJudge(dict(SCRIPT)), force=True).already_settled
    assert not path.exists()  # closing it again deletes it
    path.write_bytes(kept)
    assert close_due(db, ScriptedJudge(dict(SCRIPT))) == []
    assert not path.exists()  # and so does the worker's next pass, with nothing due
    db.close()


def test_a_close_that_does_not_settle_the_post_leaves_no_old_page_of_what_it_shredded(
    db: Database, sealed: list[sealing.Sealed]
) -> None:
    _, market_id, informers = make_market(db, slots=1, informers=2, budget=200)
    # UNSURE is worth buying only if its informer can be trusted: the market asks a sub-market.
    market.submit_offer(
        db, market_id, informers[0], classification="misleading", text="UNSURE", bid=9, price=8
    )
    market.submit_offer(
        db, market_id, informers[1], classification="misleading", text="never read", bid=3, price=8
    )
    judge = ScriptedJudge({"UNSURE": 0.7})
    ciphertexts = [s.ciphertext for s in sealed]

    report = close_market(db, market_id, judge, force=True, recursion_settings=UNSURE_ASKS)

    assert report.waiting_on  # paused: the post's market key lives on
    assert db.execute("SELECT outcome FROM offers WHERE id = 2").fetchone()[0] == "not_inspected"
    files = _state_files(_db_file(db).parent)
    assert not any(ciphertexts[1] in data for data in files.values())  # its old pages are gone too
    assert any(ciphertexts[0] in data for data in files.values())  # the waiting offer is still sealed


def test_keys_an_older_version_stored_in_the_clear_are_wrapped_on_upgrade(tmp_path: Path) -> None:
    db = open_db(tmp_path / "nb.db")
    _, market_id, informers = make_market(db, slots=2)
    offers = _offers(db, market_id, informers[:2], ["BUY one", "BUY two"])
    post_id = int(db["markets"].get(market_id)["post_id"])
    clear = []
    for offer_id in offers:  # as an older version stored them
        stored = db.execute("SELECT key FROM offer_keys WHERE offer_id = ?", [offer_id]).fetchone()[0]
        clear.append(market_keys.unwrap(db, post_id, stored))
        db.execute("UPDATE offer_keys SET key = ? WHERE offer_id = ?", [clear[-1], offer_id])
    market_keys.destroy(db, post_id)
    db.execute("DELETE FROM _sqlite_migrations WHERE name = ?", [WRAP_MIGRATION])
    db.close()

    db = open_db(tmp_path / "nb.db")  # the upgrade

    stored = [r[0] for r in db.execute("SELECT key FROM offer_keys ORDER BY offer_id")]
    assert [len(k) for k in stored] == [40, 40]
    assert [market_keys.unwrap(db, post_id, k) for k in stored] == clear
    files = _state_files(tmp_path)
    assert not any(key in data for key in clear for data in files.values())
    report = close_market(db, market_id, ScriptedJudge(dict(SCRIPT)), force=True)
    # Both opened and read (the second says what the first did: worth nothing more).
    assert [i.reason for i in report.inspections] == ["bought", "worth_less_than_price"]
    db.close()
