"""Canary: the text of a note that was not bought is nowhere on disk after close.

Unique canary strings go into notes that are never inspected, inspected and rejected (worth less
than the price, or over budget), withdrawn and replaced. After close, the raw bytes of every file in
the database's folder (the database, its WAL and shared memory, the CLI's log, a DEBUG log of every
logger) are searched for them. The bought note's text must be found, so the search is real.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from notebazaar.cli import main
from notebazaar.pipeline import community, market
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.errors import ValidationError
from notebazaar.pipeline.settlement import close_market
from tests.test_core_helpers import ScriptedJudge, make_market, restore_logging  # noqa: F401


def _canary(kind: str) -> str:
    return f"CANARY{kind}{uuid.uuid4().hex}"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _found(needle: str, files: dict[str, bytes]) -> list[str]:
    hits = []
    for name, data in files.items():
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            if needle.encode(encoding) in data:
                hits.append(f"{name} ({encoding})")
    return hits


@pytest.mark.usefixtures("restore_logging")
def test_unbought_notes_leave_no_trace_on_disk(tmp_path: Path, debug_log: Path) -> None:
    folder = debug_log.parent
    db_path = folder / "nb.db"
    db = open_db(db_path)
    # k=3, reserve 2, budget 40: a bought note uses most of the budget.
    _, market_id, informers = make_market(db, slots=3, reserve=2, b=100, budget=40, informers=6)
    bought_text = f"PAYME the footage was broadcast live BOUGHT{uuid.uuid4().hex}"
    canaries = {
        kind: _canary(kind)
        for kind in (
            "pricey",
            "overbudget",
            "uninspected",
            "belowreserve",
            "withdrawn",
            "replaced",
            "source",
            "cliwithdrawn",
        )
    }

    def offer(i: int, text: str, bid: int, price: int, sources: tuple[str, ...] = ()) -> int:
        return market.submit_offer(
            db,
            market_id,
            informers[i],
            classification="misleading",
            text=text,
            sources=sources,
            bid=bid,
            price=price,
        ).offer_id

    offer(0, bought_text, 9, 30, ("https://example.org/live",))
    offer(1, f"PRICEY {canaries['pricey']}", 8, 900, (f"https://example.org/{canaries['source']}",))
    offer(2, f"REVERSE {canaries['overbudget']}", 7, 30)  # worth it, but the budget is spent
    offer(3, canaries["uninspected"], 6, 1)  # ranked 4th with k=3
    with pytest.raises(ValidationError, match="reserve"):  # under the reserve: refused, sealed in vain
        offer(4, canaries["belowreserve"], 1, 1)
    gone = offer(5, canaries["withdrawn"], 5, 1)
    market.withdraw_offer(db, gone, informers[5])
    old = offer(5, canaries["replaced"], 5, 1)
    market.replace_offer(
        db, old, informers[5], classification="misleading", text="plain replacement", bid=2, price=1
    )
    db.close()

    # One more, submitted and withdrawn through the CLI (which logs to notebazaar.log).
    note_file = tmp_path / "note.txt"
    note_file.write_text(canaries["cliwithdrawn"], encoding="utf-8")
    db = open_db(db_path)
    handle = community.get_account(db, informers[4])["handle"]
    db.close()
    runner = CliRunner()
    submitted = runner.invoke(
        main,
        [
            "offer",
            "submit",
            str(market_id),
            "--informer",
            handle,
            "--classification",
            "misleading",
            "--text-file",
            str(note_file),
            "--bid",
            "2",
            "--price",
            "1",
            "--db",
            str(db_path),
        ],
    )
    assert submitted.exit_code == 0, submitted.output
    offer_id = json.loads(submitted.stdout)["offer_id"]
    withdrawn = runner.invoke(
        main, ["offer", "withdraw", str(offer_id), "--informer", handle, "--db", str(db_path)]
    )
    assert withdrawn.exit_code == 0, withdrawn.output

    db = open_db(db_path)
    judge = ScriptedJudge({"PAYME": 0.95, "PRICEY": 0.02, "REVERSE": 0.3})
    report = close_market(db, market_id, judge, force=True)
    outcomes = {i.offer_id: i.reason for i in report.inspections}
    assert sorted(outcomes.values()) == ["bought", "over_budget", "worth_less_than_price"]
    assert len(judge.seen) == 3  # the judge did read the rejected notes' plaintext
    shown = runner.invoke(main, ["market", "show", str(market_id), "--db", str(db_path)])
    assert shown.exit_code == 0 and bought_text in shown.stdout
    db.close()
    for handler in logging.getLogger().handlers:
        handler.flush()

    files = _files(folder)
    assert {"nb.db", "notebazaar.log", "debug.log"} <= files.keys()
    assert f"market {market_id} settled".encode() in files["debug.log"]  # the log did record the close
    assert _found(bought_text, {k: v for k, v in files.items() if k.startswith("nb.db")}), "search is blind"
    leaks = {kind: _found(text, files) for kind, text in canaries.items()}
    assert leaks == {kind: [] for kind in canaries}
