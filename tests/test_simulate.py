"""``notebazaar simulate`` end to end on the real climate-fever claims, through click's CliRunner: the
report's exact keys and sane values, the plot, determinism for a seed, the informers' private
knowledge staying out of the state folder, the ledger, and clean refusals of bad input."""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from notebazaar.cli import main
from notebazaar.pipeline.claims import load_claims
from notebazaar.pipeline.simulate import INFORMER_TYPES, SIM_MARKET
from notebazaar.pipeline.validation import strip_controls
from tests.conftest import CLAIMS

pytestmark = pytest.mark.usefixtures("quiet_logging_and_one_torch_thread")

LIMIT = 25
SEED = 1
REPORT_KEYS = {
    "claims",
    "judge",
    "logloss_prior",
    "logloss_final",
    "brier_prior",
    "brier_final",
    "coverage",
    "purchase_precision",
    "spend_per_post",
    "profit_per_offer",
    "injection_success",
    "mislabeled_bought_share",
    "resolution",
    "judge_calls",
    "judge_errors",
    "no_weight",
    "seconds",
    "markets_per_second",
}
TIMING_KEYS = {"seconds", "markets_per_second"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Run:
    folder: Path
    db_path: Path
    out: Path
    result: Result

    @property
    def report(self) -> dict[str, Any]:
        return json.loads(self.out.read_text(encoding="utf-8"))


def simulate(folder: Path, *extra: str, claims: Path = CLAIMS, limit: str = str(LIMIT)) -> Run:
    db_path = folder / "state" / "sim.db"
    out = folder / "out" / "report.json"
    args = ["simulate", "--claims", str(claims), "--db", str(db_path), "--limit", limit]
    args += ["--seed", str(SEED), "--out", str(out), *extra]
    return Run(folder, db_path, out, CliRunner().invoke(main, args))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    done = simulate(tmp_path_factory.mktemp("sim"))
    assert done.result.exit_code == 0, done.result.output
    return done


def test_report_has_exactly_the_documented_keys_and_sane_values(run: Run) -> None:
    report = run.report
    assert set(report) == REPORT_KEYS
    assert report["claims"] == LIMIT and report["judge"] == "local"
    for key in ("logloss_prior", "logloss_final"):
        assert 0 < report[key] < 5 and math.isfinite(report[key])
    for key in ("brier_prior", "brier_final", "coverage", "purchase_precision"):
        assert 0 <= report[key] <= 1, key
    assert 0 <= report["spend_per_post"] <= SIM_MARKET.budget_per_market
    assert report["profit_per_offer"] and set(report["profit_per_offer"]) <= set(INFORMER_TYPES)
    assert all(math.isfinite(v) for v in report["profit_per_offer"].values())
    assert report["injection_success"] == 0.0
    assert 0 <= report["mislabeled_bought_share"] <= 1 and report["resolution"] == "label"
    assert report["judge_errors"] == {} and report["judge_calls"] >= LIMIT  # one prior per market at least
    assert report["seconds"] > 0
    assert report["markets_per_second"] == pytest.approx(LIMIT / report["seconds"], rel=1e-2)
    assert "logloss_prior" in run.result.output  # the table printed


def test_report_agrees_with_the_database(run: Run) -> None:
    report = run.report
    with sqlite3.connect(run.db_path) as conn:
        markets = conn.execute(
            "SELECT COUNT(*), SUM(budget) FROM markets WHERE status = 'settled'"
        ).fetchone()
        resolved = conn.execute("SELECT COUNT(*) FROM posts WHERE resolution IS NOT NULL").fetchone()[0]
        paid = conn.execute("SELECT COALESCE(SUM(price), 0) FROM reveals").fetchone()[0]
    assert markets[0] == LIMIT and resolved == LIMIT
    assert report["spend_per_post"] == pytest.approx(paid / LIMIT)


def test_a_plot_is_written_beside_the_report(run: Run) -> None:
    plot = run.out.with_suffix(".png")
    data = plot.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 10_000  # two panels with lines and legends, not an empty canvas
    assert data[12:16] == b"IHDR"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_private_knowledge_stays_out_of_the_state_folder(run: Run) -> None:
    """Only revealed notes' text may reach the state folder; the reference corpus stays empty."""
    with sqlite3.connect(run.db_path) as conn:
        revealed = [r[0] for r in conn.execute("SELECT text FROM reveals")]
        posts = [r[0] for r in conn.execute("SELECT text FROM posts")]
        references = conn.execute("SELECT COUNT(*) FROM documents WHERE kind = 'reference'").fetchone()[0]
        documents = [r[0] for r in conn.execute("SELECT text FROM documents")]
    assert references == 0
    public = revealed + posts
    assert set(documents) <= set(public)  # the index only ever embeds public text
    secrets = {
        strip_controls(ev.text)
        for claim in load_claims(CLAIMS, limit=LIMIT)
        for ev in claim.evidence
        if len(ev.text) >= 20
    }
    secrets = {s for s in secrets if not any(s in text for text in public)}
    assert len(secrets) >= 50, len(secrets)
    files = _files(run.db_path.parent)
    assert {"sim.db", "index.faiss", "index.json", "index.stamps.npz", "notebazaar.log"} <= set(files)
    assert revealed  # the search is not blind: a revealed note is found in the database file
    assert any(revealed[0].encode() in data for name, data in files.items() if name.startswith("sim.db"))
    leaks = [
        (name, secret[:40])
        for secret in secrets
        for name, data in files.items()
        if secret.encode("utf-8") in data or secret.encode("utf-16-le") in data
    ]
    assert leaks == []


def test_no_injection_is_bought_and_the_ledger_checks(run: Run) -> None:
    assert run.report["injection_success"] == 0.0
    checked = CliRunner().invoke(main, ["ledger", "check", "--db", str(run.db_path)])
    assert checked.exit_code == 0, checked.output
    assert checked.output.strip().endswith("ok")


def test_a_second_run_into_the_same_db_is_refused(run: Run, tmp_path: Path) -> None:
    before = run.db_path.read_bytes()
    out = tmp_path / "again.json"
    result = CliRunner().invoke(
        main,
        ["simulate", "--claims", str(CLAIMS), "--db", str(run.db_path), "--limit", "2", "--out", str(out)],
    )
    assert result.exit_code != 0
    assert "already holds a simulation" in result.output and "fresh --db" in result.output
    assert not out.exists() and run.db_path.read_bytes() == before


def test_a_malformed_claims_file_is_a_clean_error(tmp_path: Path) -> None:
    good = CLAIMS.read_text(encoding="utf-8").splitlines()[0]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(f"{good}\n{{'id': 'single quotes'}}\n", encoding="utf-8")
    result = simulate(tmp_path, claims=bad, limit="5")
    assert result.result.exit_code == 1
    assert "bad.jsonl line 2" in result.result.output and "Traceback" not in result.result.output
    assert not result.out.exists()
    assert not result.db_path.exists()  # nothing was set up: a refused run leaves no database behind


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_a_limit_below_one_is_refused(tmp_path: Path, limit: str) -> None:
    result = simulate(tmp_path, limit=limit)
    assert result.result.exit_code != 0
    assert "--limit must be at least 1" in result.result.output
    assert not result.out.exists()


def test_the_same_seed_gives_the_same_report(run: Run, tmp_path: Path) -> None:
    again = simulate(tmp_path)
    assert again.result.exit_code == 0, again.result.output
    first, second = run.report, again.report
    assert {k: v for k, v in first.items() if k not in TIMING_KEYS} == {
        k: v for k, v in second.items() if k not in TIMING_KEYS
    }


def test_a_claims_drafts_do_not_depend_on_what_happened_before(tmp_path: Path) -> None:
    """Runs that differ only in recursion (or the judge) are paired: every claim sees the same
    informers offer the same notes, so their figures differ by what the market did, not by luck.
    Only prices may differ, since informers learn them from their own sales."""
    from notebazaar.pipeline.config import Settings
    from notebazaar.pipeline.judge.simple import SimpleJudge
    from notebazaar.pipeline.simulate import Simulation

    claims = load_claims(CLAIMS, limit=6)
    fresh = Simulation(claims, tmp_path / "a.db", Settings(), judge_factory=lambda db: SimpleJudge())
    busy = Simulation(
        claims, tmp_path / "b.db", Settings(), judge_factory=lambda db: SimpleJudge(), recursion=True
    )
    try:
        for i in range(3):
            busy.run_claim(i, claims[i])
        assert busy.state.offers  # it did trade: the comparison is not between two idle runs

        def drafts(sim: Simulation) -> list[tuple[object, ...]]:
            return [(d.kind, d.informer, d.classification, d.text, d.bid) for d in sim.drafts(4, claims[4])]

        assert drafts(fresh) == drafts(busy) and drafts(fresh)
        assert drafts(fresh) == drafts(fresh)  # and drawing them again draws the same
    finally:
        fresh.close()
        busy.close()
