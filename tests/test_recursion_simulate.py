"""``notebazaar simulate --recursion on|off``: the two extra report keys, debunkers at work in
sub-markets through the real pipeline, the ledger, and no sub-note of an unbought offer on disk."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from notebazaar.cli import main
from tests.conftest import CLAIMS
from tests.test_simulate import REPORT_KEYS

pytestmark = pytest.mark.usefixtures("quiet_logging_and_one_torch_thread")

LIMIT = 30
EXTRA = {"subnote_purchases", "misleading_bought_share"}


def _run(folder: Path, *extra: str) -> tuple[dict[str, object], Path]:
    db_path = folder / "state" / "sim.db"
    out = folder / "out" / "report.json"
    args = ["simulate", "--claims", str(CLAIMS), "--db", str(db_path), "--limit", str(LIMIT), "--seed", "3"]
    result = CliRunner().invoke(main, [*args, "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text(encoding="utf-8")), db_path


@pytest.mark.slow
def test_recursion_on_reports_sub_markets_and_keeps_the_ledger(tmp_path: Path) -> None:
    report, db_path = _run(tmp_path, "--recursion", "on")
    assert set(report) == REPORT_KEYS | EXTRA
    assert isinstance(report["subnote_purchases"], int) and report["subnote_purchases"] >= 0
    assert 0.0 <= float(report["misleading_bought_share"]) <= 1.0  # type: ignore[arg-type]
    with sqlite3.connect(db_path) as conn:
        subs = conn.execute(
            "SELECT COUNT(*), MAX(depth) FROM markets WHERE parent_offer_id IS NOT NULL"
        ).fetchone()
        unsettled = conn.execute("SELECT COUNT(*) FROM markets WHERE status != 'settled'").fetchone()[0]
        held = conn.execute("SELECT COUNT(*) FROM offers WHERE outcome = 'held'").fetchone()[0]
        keys = conn.execute("SELECT COUNT(*) FROM offer_keys").fetchone()[0]
        sub_bought = conn.execute(
            "SELECT COUNT(*) FROM offers o JOIN markets m ON m.id = o.market_id"
            " WHERE m.parent_offer_id IS NOT NULL AND o.status = 'bought'"
        ).fetchone()[0]
        hidden = [
            r[0]
            for r in conn.execute(
                "SELECT o.id FROM offers o JOIN markets m ON m.id = o.market_id"
                " WHERE o.outcome = 'shredded_with_parent'"
            )
        ]
        shown = conn.execute(
            "SELECT COUNT(*) FROM reveals WHERE offer_id IN (SELECT value FROM json_each(?))",
            [json.dumps(hidden)],
        ).fetchone()[0]
    assert subs[0] > 0 and subs[1] == 1  # sub-markets were opened, one level deep (the default)
    assert unsettled == 0 and held == 0 and keys == 0
    assert sub_bought == report["subnote_purchases"]
    assert shown == 0  # a sub-note shredded with its offer was never revealed
    assert "debunker" in report["profit_per_offer"]  # type: ignore[operator]
    checked = CliRunner().invoke(main, ["ledger", "check", "--db", str(db_path)])
    assert checked.exit_code == 0 and checked.output.strip().endswith("ok")


@pytest.mark.slow
def test_recursion_off_adds_the_keys_and_opens_nothing(tmp_path: Path) -> None:
    report, db_path = _run(tmp_path, "--recursion", "off")
    assert set(report) == REPORT_KEYS | EXTRA
    assert report["subnote_purchases"] == 0
    assert "debunker" not in report["profit_per_offer"]  # type: ignore[operator]
    with sqlite3.connect(db_path) as conn:
        assert (
            conn.execute("SELECT COUNT(*) FROM markets WHERE parent_offer_id IS NOT NULL").fetchone()[0] == 0
        )
        assert conn.execute("SELECT COUNT(*) FROM offers WHERE teaser IS NOT NULL").fetchone()[0] == 0


def test_a_bad_recursion_value_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--claims",
            str(CLAIMS),
            "--db",
            str(tmp_path / "s.db"),
            "--out",
            str(tmp_path / "r.json"),
            "--recursion",
            "maybe",
        ],
    )
    assert result.exit_code != 0 and "maybe" in result.output
    assert not (tmp_path / "r.json").exists()
