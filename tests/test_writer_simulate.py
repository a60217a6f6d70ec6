"""``simulate --writers on``: a learning writer and its fixed twin take part through the market's
ordinary offer path; the report's ``writer_profit_per_offer`` has exactly the issue's shape and
agrees with the database; without the flag (or with ``off``) the report is unchanged."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from notebazaar.cli import main
from notebazaar.pipeline.claims import load_claims
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.judge.simple import SimpleJudge
from notebazaar.pipeline.rewards import offer_rewards
from notebazaar.pipeline.simulate import Simulation
from notebazaar.pipeline.validation import strip_controls
from notebazaar.writer.simulated import SimulatedWriters
from tests.conftest import CLAIMS
from tests.test_simulate import REPORT_KEYS, TIMING_KEYS

pytestmark = [pytest.mark.usefixtures("quiet_logging_and_one_torch_thread"), pytest.mark.slow]

LIMIT = 16


def _run(folder: Path, *extra: str) -> dict[str, Any]:
    out = folder / "out" / "report.json"
    args = [
        "simulate",
        "--claims",
        str(CLAIMS),
        "--db",
        str(folder / "state" / "sim.db"),
        "--limit",
        str(LIMIT),
    ]
    result = CliRunner().invoke(main, [*args, "--seed", "3", "--judge", "simple", "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def with_writers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("writers")
    return folder, _run(folder, "--writers", "on")


def test_the_report_has_writer_profit_per_offer_exactly_as_the_issue_says(
    with_writers: tuple[Path, dict[str, Any]],
) -> None:
    folder, report = with_writers
    shape = report["writer_profit_per_offer"]
    assert set(shape) == {"learning", "fixed"}
    for writer in ("learning", "fixed"):
        assert set(shape[writer]) == {"first_quarter", "last_quarter"}
        assert all(isinstance(v, float) for v in shape[writer].values())
    assert set(report) == REPORT_KEYS | {"writer_profit_per_offer", "writer_offers"}
    assert (folder / "out" / "report.png").read_bytes().startswith(b"\x89PNG")

    # The figures agree with the market's own rows: profit = paid - charged over each quarter's claims.
    conn = sqlite3.connect(folder / "state" / "sim.db")
    conn.row_factory = sqlite3.Row
    handles = {"learning": "sim_writer_learning", "fixed": "sim_writer_fixed"}
    quarter = LIMIT // 4
    for writer, handle in handles.items():
        assert conn.execute(
            "SELECT 1 FROM writers w JOIN accounts a ON a.id = w.account_id WHERE handle = ?", [handle]
        ).fetchone()
        for name, posts in (
            ("first_quarter", range(1, quarter + 1)),
            ("last_quarter", range(LIMIT - quarter + 1, LIMIT + 1)),
        ):
            rows = conn.execute(
                "SELECT COALESCE(SUM(CASE WHEN o.status = 'bought' THEN o.price ELSE 0 END)"
                " - SUM(COALESCE(o.charge, 0)), 0), COUNT(*) FROM offers o"
                " JOIN accounts a ON a.id = o.informer_id"
                " JOIN markets m ON m.id = o.market_id"
                f" WHERE a.handle = ? AND m.post_id IN ({','.join('?' * len(posts))})",
                [handle, *posts],
            ).fetchone()
            assert report["writer_offers"][writer][name] == rows[1]
            expected = rows[0] / rows[1] if rows[1] else 0.0
            assert shape[writer][name] == pytest.approx(expected)
    offered = conn.execute(
        "SELECT COUNT(*) FROM offers o JOIN accounts a ON a.id = o.informer_id"
        " WHERE a.handle LIKE 'sim_writer_%'"
    ).fetchone()[0]
    assert offered > 0  # they did take part
    # Their private corpus (every claim's evidence) reaches the state folder only as revealed notes.
    revealed = {r[0] for r in conn.execute("SELECT text FROM reveals")}
    conn.close()
    secrets = {
        strip_controls(ev.text)
        for c in load_claims(CLAIMS, limit=LIMIT)
        for ev in c.evidence
        if len(ev.text) > 30
    }
    secrets -= revealed
    data = b"".join(p.read_bytes() for p in (folder / "state").iterdir() if p.is_file())
    assert secrets and not [s for s in secrets if s.encode() in data]


def test_writers_off_leaves_the_report_as_it_was(
    tmp_path: Path, with_writers: tuple[Path, dict[str, Any]]
) -> None:
    off = _run(tmp_path / "off", "--writers", "off")
    default = _run(tmp_path / "default")
    assert set(off) == set(default) == REPORT_KEYS
    assert {k: v for k, v in off.items() if k not in TIMING_KEYS} == {
        k: v for k, v in default.items() if k not in TIMING_KEYS
    }
    assert not {"writer_learning", "writer_fixed"} & set(default["profit_per_offer"])


def test_writers_do_not_change_what_the_other_informers_draw(tmp_path: Path) -> None:
    claims = load_claims(CLAIMS, limit=6)
    plain = Simulation(claims, tmp_path / "a.db", Settings(), judge_factory=lambda db: SimpleJudge())
    busy = Simulation(
        claims,
        tmp_path / "b.db",
        Settings(),
        judge_factory=lambda db: SimpleJudge(),
        writer_factory=SimulatedWriters(),
    )
    try:
        for i in range(3):
            busy.run_claim(i, claims[i])
        assert sum(busy.state.writer_offers["learning"]) + sum(busy.state.writer_offers["fixed"]) > 0

        def drafts(sim: Simulation) -> list[tuple[object, ...]]:
            return [(d.kind, d.classification, d.text, d.bid) for d in sim.drafts(4, claims[4])]

        assert drafts(plain) == drafts(busy)
        rows = list(offer_rewards(busy.db, informer_id=busy.writer_accounts["learning"]))
        assert all(r["final"] for r in rows)  # what the learning writer learned from was settled
    finally:
        plain.close()
        busy.close()
