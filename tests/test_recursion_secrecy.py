"""Recursion and secrecy: nothing from the sub-market of an unbought offer (nor the offer itself)
reaches any file of the state folder, the CLI's outputs or the web app, while its informers are
paid; a crash anywhere across the pause pays nothing twice; surfaces list sub-markets."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlite_utils import Database

from notebazaar.cli import main
from notebazaar.pipeline import ledger, market
from notebazaar.pipeline.config import RecursionSettings, Settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.judge import Context, NoteView, PostView, Verdict
from notebazaar.pipeline.judge.simple import SimpleJudge
from notebazaar.pipeline.settlement import close_market
from notebazaar.web.app import create_app
from tests.test_core_helpers import ScriptedJudge, make_market, restore_logging  # noqa: F401

ON = RecursionSettings(enabled=True, uncertain_band=0.5, max_depth=1, max_breadth=2, budget_share=0.3)
SCRIPT = {"UNSURE": 0.7, "SURE": 0.95, "DEBUNK": 0.9, "VOUCH": 0.1}


def _found(needle: str, blobs: dict[str, bytes]) -> list[str]:
    return [
        f"{name} ({enc})"
        for name, data in blobs.items()
        for enc in ("utf-8", "utf-16-le", "utf-16-be")
        if needle.encode(enc) in data
    ]


def _offer(
    db: Database, market_id: int, informer: int, text: str, *, price: int = 8, source: str = "x"
) -> int:
    return market.submit_offer(
        db,
        market_id,
        informer,
        classification="misleading",
        text=text,
        sources=[source],
        bid=4,
        price=price,
        teaser="public teaser",
    ).offer_id


@pytest.mark.usefixtures("restore_logging")
def test_unbought_offer_and_its_sub_notes_leave_no_trace(debug_log: Path) -> None:
    folder = debug_log.parent
    db_path = folder / "nb.db"
    db = open_db(db_path)
    _, market_id, informers = make_market(db, budget=200, informers=4)
    canary = {
        k: f"CANARY{k}{uuid.uuid4().hex}" for k in ("parent", "parentsrc", "debunk", "debunksrc", "weak")
    }
    parent = _offer(db, market_id, informers[0], f"UNSURE {canary['parent']}", source=canary["parentsrc"])
    bought_text = f"SURE the archive shows it BOUGHT{uuid.uuid4().hex}"
    _offer(db, market_id, informers[3], bought_text, price=5)
    judge = ScriptedJudge(SCRIPT)
    sub_id = close_market(db, market_id, judge, force=True, recursion_settings=ON).waiting_on[0]
    debunker, weak = informers[1], informers[2]
    wallet_before = ledger.balance(db, ledger.wallet(debunker))
    debunk = _offer(db, sub_id, debunker, f"DEBUNK {canary['debunk']}", price=10, source=canary["debunksrc"])
    _offer(db, sub_id, weak, f"filler {canary['weak']}", price=3)  # inspected, not bought
    # while the parent is undecided, the bought sub-note is paid but nowhere in plaintext
    close_market(db, sub_id, judge, force=True, recursion_settings=ON)
    assert ledger.balance(db, ledger.wallet(debunker)) > wallet_before
    report = close_market(db, market_id, judge, force=True, recursion_settings=ON)
    decided = {i.offer_id: i.bought for i in report.inspections}
    assert decided[parent] is False and sum(decided.values()) == 1
    assert ledger.balance(db, ledger.wallet(debunker)) == wallet_before - 4 + 10 + (4 - 4)
    assert (
        db.execute("SELECT outcome FROM offers WHERE id = ?", [debunk]).fetchone()[0]
        == "shredded_with_parent"
    )
    assert ledger.check(db).ok
    post_id = market.get_market(db, market_id)["post_id"]
    db.close()

    runner = CliRunner()
    outputs = {}
    for args in (["export", "revealed"], ["market", "show", str(market_id)], ["market", "show", str(sub_id)]):
        result = runner.invoke(main, [*args, "--db", str(db_path)])
        assert result.exit_code == 0, result.output
        outputs[" ".join(args)] = result.output.encode()
    assert bought_text.encode() in outputs["export revealed"]  # the search is not blind

    app = create_app(db_path, Settings(), judge=SimpleJudge(), key="test-secret-key", start_worker=False)
    with TestClient(app) as client:
        for path in (f"/posts/{post_id}", f"/api/posts/{post_id}", "/", "/api/posts"):
            response = client.get(path)
            assert response.status_code == 200, path
            outputs[path] = response.content
        assert b"sub-market-" in outputs[f"/posts/{post_id}"]  # the sub-market is listed
        assert b"public teaser" in outputs[f"/posts/{post_id}"]

    for handler in logging.getLogger().handlers:
        handler.flush()
    files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    assert {"nb.db", "debug.log"} <= files.keys()
    assert _found(bought_text, {k: v for k, v in files.items() if k.startswith("nb.db")})
    leaks = {kind: _found(text, files | outputs) for kind, text in canary.items()}
    assert leaks == {kind: [] for kind in canary}


class CrashingJudge(ScriptedJudge):
    """Dies (like a killed process) on its n-th inspection, once."""

    def __init__(self, crash_at: int) -> None:
        super().__init__(dict(SCRIPT))
        self.crash_at = crash_at
        self.calls = 0

    def inspect(self, post: PostView, context: Context, note: NoteView, p_before: float) -> Verdict:
        self.calls += 1
        if self.calls == self.crash_at:
            raise RuntimeError("killed")
        return super().inspect(post, context, note, p_before)


@pytest.mark.parametrize("crash_at", [1, 2, 3, 4, 5])
def test_a_crash_across_the_pause_pays_nothing_twice(db: Database, crash_at: int) -> None:
    _, market_id, informers = make_market(db, budget=200, informers=4)
    parent = _offer(db, market_id, informers[0], "UNSURE a")
    _offer(db, market_id, informers[1], "SURE b", price=5)
    judge = CrashingJudge(crash_at)

    def settle(mid: int) -> None:
        for _ in range(10):
            try:
                report = close_market(db, mid, judge, force=True, recursion_settings=ON)
            except RuntimeError:
                continue  # the process died; a restarted one closes again
            for sub_id in report.waiting_on:
                if not db.execute("SELECT 1 FROM offers WHERE market_id = ?", [sub_id]).fetchone():
                    _offer(db, sub_id, informers[2], "DEBUNK c", price=10)
                    _offer(db, sub_id, informers[3], "filler d", price=4)
                settle(sub_id)
            if not report.waiting_on:
                return
        raise AssertionError("did not settle")

    settle(market_id)
    close_market(db, market_id, judge, force=True, recursion_settings=ON)  # and once more: no-op
    assert all(m["status"] == "settled" for m in db["markets"].rows)
    keys = [r[0] for r in db.execute("SELECT idempotency_key FROM ledger_transactions")]
    assert len(keys) == len(set(keys))
    purchases = db.execute("SELECT COUNT(*) FROM ledger_transactions WHERE kind = 'purchase'").fetchone()[0]
    assert purchases == db.execute("SELECT COUNT(*) FROM offers WHERE status = 'bought'").fetchone()[0]
    assert db.execute("SELECT status FROM offers WHERE id = ?", [parent]).fetchone()[0] == "shredded"
    assert db.execute("SELECT COUNT(*) FROM offer_keys").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM inspections").fetchone()[0] == 4
    assert ledger.check(db).ok
