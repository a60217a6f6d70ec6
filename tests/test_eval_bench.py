"""``notebazaar eval`` (shadow evaluation of judge configurations) and ``notebazaar bench`` through
click's CliRunner: report keys, two prompts side by side, the live database untouched, the LLM judge
against the loopback fake server, and the benchmark's figures and clean-up."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from notebazaar.cli import main
from notebazaar.pipeline import prompts
from notebazaar.pipeline.db import open_db
from tests.conftest import CLAIMS
from tests.fake_openai import FakeOpenAI, Reply, answer, blocks, schema_name, user_message

QUALITY_KEYS = (
    "claims",
    "logloss_prior",
    "logloss_final",
    "brier_prior",
    "brier_final",
    "coverage",
    "purchase_precision",
    "spend_per_post",
)
LIVE_TABLES = (
    "communities",
    "accounts",
    "posts",
    "markets",
    "offers",
    "inspections",
    "reveals",
    "outbox",
    "ledger_accounts",
    "ledger_transactions",
    "ledger_entries",
    "documents",
    "audit_log",
)

pytestmark = pytest.mark.usefixtures("quiet_logging_and_one_torch_thread")


def counts(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(db_path) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in LIVE_TABLES}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def live_db(tmp_path: Path) -> Path:
    path = tmp_path / "live" / "notebazaar.db"
    open_db(path).close()
    return path


# --- eval -------------------------------------------------------------------------------------------


def test_eval_one_prompt_on_a_fresh_db_is_shadow_only(tmp_path: Path) -> None:
    db_path = live_db(tmp_path)
    before = counts(db_path)
    out = tmp_path / "eval.json"
    result = invoke(
        "eval",
        "--claims",
        str(CLAIMS),
        "--db",
        str(db_path),
        "--prompt",
        "v1",
        "--limit",
        "10",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    for key in QUALITY_KEYS:
        assert key in report, key
    assert report["claims"] == 10 and report["judge"] == "local"
    assert 0 <= report["coverage"] <= 1 and 0 <= report["purchase_precision"] <= 1
    assert report["logloss_prior"] > 0 and 0 <= report["brier_final"] <= 1
    assert len(report["runs"]) == 1 and report["runs"][0]["prompt"] == "v1"
    assert {k: report["runs"][0][k] for k in QUALITY_KEYS} == {k: report[k] for k in QUALITY_KEYS}
    assert "logloss_final" in result.output and "v1" in result.output
    # Shadow mode: no community, market, post or credit appeared in the live database...
    assert counts(db_path) == before
    # ...only the default prompt (version 1) was seeded.
    db = open_db(db_path)
    try:
        versions = prompts.list_versions(db, community_id=None)
        assert [v["version"] for v in versions] == [1]
    finally:
        db.close()
    # And no shadow state was left beside the live database.
    names = {p.name for p in db_path.parent.iterdir()}
    assert names <= {"notebazaar.db", "notebazaar.db-wal", "notebazaar.db-shm", "notebazaar.log"}, names


def test_eval_two_prompts_side_by_side(tmp_path: Path) -> None:
    db_path = live_db(tmp_path)
    before = counts(db_path)
    candidate = tmp_path / "candidate.md"
    candidate.write_text(prompts.packaged_prompt() + "\nBe strict about sources.\n", encoding="utf-8")
    out = tmp_path / "eval.json"
    result = invoke(
        "eval",
        "--claims",
        str(CLAIMS),
        "--db",
        str(db_path),
        "--prompt",
        "v1",
        "--prompt",
        str(candidate),
        "--limit",
        "5",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert [r["prompt"] for r in report["runs"]] == ["v1", "candidate.md"]
    assert all(r["claims"] == 5 for r in report["runs"])
    header = next(line for line in result.output.splitlines() if "metric" in line)
    assert "v1" in header and "candidate.md" in header
    assert counts(db_path) == before


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("v99", "no version 99"),
        ("nowhere/prompt.md", "neither a prompt id"),
        ("4242", "4242"),
    ],
)
def test_eval_a_bad_prompt_spec_is_a_clean_error(tmp_path: Path, spec: str, problem: str) -> None:
    db_path = live_db(tmp_path)
    before = counts(db_path)
    out = tmp_path / "eval.json"
    result = invoke(
        "eval", "--claims", str(CLAIMS), "--db", str(db_path), "--prompt", spec, "--out", str(out)
    )
    assert result.exit_code == 1, result.output
    assert problem in result.output and "Traceback" not in result.output
    assert not out.exists() and counts(db_path) == before


def test_eval_refuses_three_prompts_and_a_zero_limit(tmp_path: Path) -> None:
    db_path = live_db(tmp_path)
    out = tmp_path / "eval.json"
    base = ["eval", "--claims", str(CLAIMS), "--db", str(db_path), "--out", str(out)]
    three = invoke(*base, "--prompt", "v1", "--prompt", "v1", "--prompt", "v1")
    assert three.exit_code != 0 and "two to compare" in three.output
    zero = invoke(*base, "--prompt", "v1", "--limit", "0")
    assert zero.exit_code != 0 and "--limit must be at least 1" in zero.output
    assert not out.exists()


def model(body: dict[str, Any]) -> Reply:
    """A well-behaved model: a fixed prior; for a note, a fixed verdict in the note's direction,
    quoting the note's first sentence (at least 12 characters, copied verbatim)."""
    if schema_name(body) == "PriorAnswer":
        return answer(p=0.4)
    note = blocks(body)["NOTE"]
    found = re.search(r"classified: (\w+)\.", user_message(body))
    misleading = bool(found) and found.group(1) == "misleading"
    span = note[: max(40, note.find(". ") + 1)].strip() if len(note) > 40 else note
    return answer(
        p_after=0.8 if misleading else 0.2,
        span=span,
        rationale="The quoted passage bears directly on the claim in the post.",
    )


def test_eval_with_the_openai_judge_against_the_fake_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path = live_db(tmp_path)
    before = counts(db_path)
    out = tmp_path / "eval.json"
    with FakeOpenAI(default=model) as server:
        monkeypatch.setenv("NOTEBAZAAR_JUDGE__OPENAI__BASE_URL", server.base_url)
        monkeypatch.setenv("NOTEBAZAAR_JUDGE__OPENAI__MAX_RETRIES", "0")
        result = invoke(
            "eval",
            "--claims",
            str(CLAIMS),
            "--db",
            str(db_path),
            "--prompt",
            "v1",
            "--judge",
            "openai",
            "--limit",
            "5",
            "--out",
            str(out),
        )
        requests = list(server.requests)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["judge"] == "openai" and report["claims"] == 5
    names = [schema_name(r) for r in requests]
    assert names.count("PriorAnswer") == 5  # one prior per market
    assert "InspectionAnswer" in names
    # The fake's verdicts (0.4 -> 0.8 or 0.2) are big enough to buy notes, so the judge did decide.
    assert report["spend_per_post"] > 0
    assert report["logloss_prior"] == pytest.approx(sum(-math.log(0.4 if y else 0.6) for y in _labels(5)) / 5)
    assert counts(db_path) == before


def _labels(n: int) -> list[int]:
    from notebazaar.pipeline.claims import load_claims

    return [int(c.misleading) for c in load_claims(CLAIMS, limit=n)]


# --- bench ------------------------------------------------------------------------------------------


def test_bench_reports_consistent_positive_figures_and_cleans_up(tmp_path: Path) -> None:
    db_path = tmp_path / "state" / "notebazaar.db"
    out = tmp_path / "bench.json"
    result = invoke(
        "bench", "--db", str(db_path), "--out", str(out), "--markets", "3", "--offers", "4", "--repeats", "1"
    )
    assert result.exit_code == 0, result.output
    bench = json.loads(out.read_text(encoding="utf-8"))
    for key in (
        "embed_per_second",
        "markets_per_second",
        "embeds_per_market",
        "pipeline_vs_embed_ratio",
        "ledger_transfers_per_second",
    ):
        assert isinstance(bench[key], float | int) and bench[key] > 0, key
    expected = bench["markets_per_second"] * bench["embeds_per_market"] / bench["embed_per_second"]
    assert bench["pipeline_vs_embed_ratio"] == pytest.approx(expected, rel=1e-9)
    latency = bench["decision_latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"]
    model = bench["decision_model_ms"]  # the model's part of each close, timed at the embedder
    assert 0 < model["p50"] <= model["p99"] <= latency["p99"]
    assert len(model["slowest_closes"]) == len(model["in_slowest_closes"]) == 1
    assert 0 < model["in_slowest_closes"][0] < model["slowest_closes"][0]  # the slowest close, and
    assert model["slowest_closes"][0] >= round(latency["p99"], 1) - 0.1  # no close is slower
    # Each market embeds at least its post and the inspected notes (4 slots): the counter is real.
    assert bench["embeds_per_market"] >= 2
    assert bench["markets"] == 3 and bench["offers_per_market"] == 4 and bench["repeats"] == 1
    # The market's own work: the same markets again, every text's vector replayed, none missed.
    own = bench["market_own_ms"]
    assert own["texts_not_replayed"] == 0
    assert own["close_p50"] > 0 and own["per_market"] > own["close_p50"]  # a market holds its close
    assert not (db_path.parent / "bench").exists()
    assert "embed_per_second" in result.output


def test_bench_refuses_zero_sizes(tmp_path: Path) -> None:
    db_path = tmp_path / "state" / "notebazaar.db"
    out = tmp_path / "bench.json"
    for flag in ("--markets", "--offers", "--repeats"):
        result = invoke("bench", "--db", str(db_path), "--out", str(out), flag, "0")
        assert result.exit_code != 0 and "must be at least 1" in result.output
    assert not out.exists()


def test_bench_profile_says_where_the_market_time_goes(tmp_path: Path) -> None:
    db_path = tmp_path / "state" / "notebazaar.db"
    out = tmp_path / "bench.json"
    result = invoke(
        "bench", "--db", str(db_path), "--out", str(out), "--markets", "2", "--offers", "3", "--repeats", "1",
        "--profile",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    profile = json.loads(out.read_text(encoding="utf-8"))["profile"]
    assert profile["markets"] == 2
    assert 0 < profile["seconds_besides_the_model"] < profile["seconds_profiled"]
    assert profile["seconds_waiting_for_the_model"] > 0  # the model ran, out of the profile's sight
    wheres = {g["where"] for g in profile["by_where"]}
    assert any(w.startswith("sqlite3") for w in wheres) and "notebazaar.pipeline.settlement" in wheres
    assert not any("torch" in f["function"] for f in profile["top_functions"])
    text = (tmp_path / "bench.profile.txt").read_text(encoding="utf-8")
    # The report names settlement among where the time goes (which functions make the top list
    # depends on the machine's load).
    assert "Where the market's own time goes" in text and "notebazaar.pipeline.settlement" in text
    assert (tmp_path / "bench.profile.prof").stat().st_size > 0
    assert not (db_path.parent / "bench").exists()


@pytest.mark.slow
@pytest.mark.timeout(1200)  # four processes each load the model: minutes on a loaded 2-core machine
def test_bench_scale_writes_one_row_per_size(tmp_path: Path) -> None:
    db_path = tmp_path / "state" / "notebazaar.db"
    out = tmp_path / "scale.json"
    result = invoke(
        "bench", "--scale", "--sizes", "40,120", "--markets", "1", "--offers", "2",
        "--db", str(db_path), "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert list(report) == ["scale"]
    assert [r["posts"] for r in report["scale"]] == [40, 120]
    for row in report["scale"]:
        assert list(row) == ["posts", "latency_ms_p50", "latency_ms_p99", "inspection_ms", "peak_rss_mb"]
        assert 0 < row["latency_ms_p50"] <= row["latency_ms_p99"] and row["inspection_ms"] > 0
        assert row["peak_rss_mb"] > 50  # the model is in there
    assert not (db_path.parent / "scale").exists()


def test_bench_scale_refuses_bad_sizes(tmp_path: Path) -> None:
    db_path = tmp_path / "state" / "notebazaar.db"
    out = tmp_path / "scale.json"
    for sizes in ("0", "ten", ""):
        result = invoke("bench", "--scale", "--sizes", sizes, "--db", str(db_path), "--out", str(out))
        assert result.exit_code != 0 and "--sizes" in result.output
    assert not out.exists()
