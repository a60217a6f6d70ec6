"""The rating and bridging commands, through click's CliRunner: ``bench bridging``'s keys,
``bridging score`` on Community Notes' files, ``ratings import-cn`` / ``export-cn`` / ``score`` /
``add``, and ``simulate --resolution ratings``."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from notebazaar.cli import main
from notebazaar.pipeline.cnformat import NOTE_COLUMNS, RATING_COLUMNS, STATUS_COLUMNS
from tests.conftest import CLAIMS, SHARED_DATA

CN_SYNTH = SHARED_DATA.parent / "tools" / "cn_synth.py"
needs_synth = pytest.mark.skipif(not CN_SYNTH.is_file(), reason="needs ../shared/tools/cn_synth.py")


def _invoke(*args: str) -> dict:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def _synth(folder: Path, raters: int = 150, notes: int = 120, per_note: int = 20) -> Path:
    subprocess.run(
        [
            sys.executable,
            str(CN_SYNTH),
            "--raters",
            str(raters),
            "--notes",
            str(notes),
            "--ratings-per-note",
            str(per_note),
            "--seed",
            "4",
            "--out",
            str(folder),
        ],
        check=True,
        capture_output=True,
    )
    return folder


def _tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_bench_bridging_reports_its_keys(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    shown = _invoke(
        "bench",
        "bridging",
        "--notes",
        "600",
        "--ratings-per-note",
        "20",
        "--raters",
        "300",
        "--out",
        str(out),
        "--db",
        str(tmp_path / "x.db"),
    )
    report = json.loads(out.read_text())
    assert report == shown
    assert {
        "notes",
        "ratings",
        "seconds",
        "ratings_per_second",
        "peak_rss_mb",
        "spearman_intercept_vs_quality",
    } <= set(report)
    assert report["notes"] == 600 and report["ratings"] >= 600 * 15
    assert report["ratings_per_second"] == pytest.approx(report["ratings"] / report["seconds"], rel=0.01)
    assert report["peak_rss_mb"] > 0 and report["spearman_intercept_vs_quality"] >= 0.85
    assert not (tmp_path / "x.db").exists()  # no database: only the log beside where it would be


@needs_synth
def test_bridging_score_writes_one_line_per_note(tmp_path: Path) -> None:
    data = _synth(tmp_path / "cn")
    out = tmp_path / "scored.tsv"
    summary = _invoke(
        "bridging",
        "score",
        "--cn-notes",
        str(data / "notes-00000.tsv"),
        "--cn-ratings",
        str(data / "ratings"),
        "--out",
        str(out),
        "--db",
        str(tmp_path / "log.db"),
    )
    rows = _tsv(out)
    assert list(rows[0]) == ["noteId", "intercept", "factor", "status", "ratings"]
    assert len(rows) == 120 == summary["notes"]
    assert {r["status"] for r in rows} <= {"helpful", "not_helpful", "needs_more_ratings"}
    assert all(int(r["ratings"]) >= 0 for r in rows)
    single = _invoke(
        "bridging",
        "score",
        "--cn-notes",
        str(data / "notes-00000.tsv"),
        "--cn-ratings",
        str(data / "ratings" / "ratings-00000.tsv"),
        "--out",
        str(tmp_path / "again.tsv"),
    )
    assert single["helpful"] == summary["helpful"]  # a file or its folder: the same scores
    assert (tmp_path / "again.tsv").read_text() == out.read_text()


def test_bridging_score_refuses_a_file_without_the_columns(tmp_path: Path) -> None:
    notes = tmp_path / "notes.tsv"
    notes.write_text("noteId\tsummary\n1\thello\n")
    ratings = tmp_path / "ratings.tsv"
    ratings.write_text("noteId\n1\n")
    result = CliRunner().invoke(
        main,
        [
            "bridging",
            "score",
            "--cn-notes",
            str(notes),
            "--cn-ratings",
            str(ratings),
            "--out",
            str(tmp_path / "o.tsv"),
        ],
    )
    assert (
        result.exit_code == 1 and "lacks the column(s)" in result.output and "Traceback" not in result.output
    )
    assert not (tmp_path / "o.tsv").exists()


@needs_synth
def test_import_score_export_round_trip(tmp_path: Path) -> None:
    data = _synth(tmp_path / "cn")
    db = str(tmp_path / "state" / "cn.db")
    files = ("--notes", str(data / "notes-00000.tsv"), "--ratings", str(data / "ratings"))
    first = _invoke("ratings", "import-cn", *files, "--db", db)
    given = len(_tsv(data / "ratings" / "ratings-00000.tsv"))
    assert first["notes"] == 120 and first["ratings"] + first["skipped_own_ratings"] == given
    again = _invoke("ratings", "import-cn", *files, "--db", db)
    assert again["notes"] == 0 and again["ratings"] == 0  # keyed by Community Notes' ids
    scored = _invoke("ratings", "score", "--db", db)
    assert scored["notes"] == 120 and scored["helpful"] > 0 and scored["not_helpful"] > 0
    out = tmp_path / "export"
    counts = _invoke("ratings", "export-cn", "--db", db, "--out", str(out))
    notes = _tsv(out / "notes-00000.tsv")
    ratings = _tsv(out / "ratings" / "ratings-00000.tsv")
    history = _tsv(out / "noteStatusHistory-00000.tsv")
    assert list(notes[0]) == list(NOTE_COLUMNS) and list(ratings[0]) == list(RATING_COLUMNS)
    assert list(history[0]) == list(STATUS_COLUMNS)
    assert counts["notes"] == 120 and counts["ratings"] == first["ratings"]
    original = {r["noteId"] for r in _tsv(data / "notes-00000.tsv")}
    assert {n["noteId"] for n in notes} == original  # imported notes keep their noteId
    assert {r["helpfulnessLevel"] for r in ratings} <= {"HELPFUL", "SOMEWHAT_HELPFUL", "NOT_HELPFUL"}
    assert sum(h["currentStatus"] == "CURRENTLY_RATED_HELPFUL" for h in history) == scored["helpful"]
    # What we export, Community Notes' formats read back: the same scores.
    direct = _invoke(
        "bridging",
        "score",
        "--cn-notes",
        str(out / "notes-00000.tsv"),
        "--cn-ratings",
        str(out / "ratings"),
        "--out",
        str(tmp_path / "s.tsv"),
    )
    assert (direct["helpful"], direct["not_helpful"]) == (scored["helpful"], scored["not_helpful"])


def test_ratings_add_refuses_cleanly(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    _invoke("account", "create", "ann", "--db", db)
    result = CliRunner().invoke(main, ["ratings", "add", "5", "helpful", "--rater", "ann", "--db", db])
    assert result.exit_code == 1 and "Error: no published note 5" in result.output
    result = CliRunner().invoke(main, ["ratings", "add", "5", "great", "--rater", "ann", "--db", db])
    assert result.exit_code == 2 and "great" in result.output


@pytest.mark.slow
@pytest.mark.usefixtures("quiet_logging_and_one_torch_thread")
def test_simulate_with_ratings_as_the_only_truth(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    args = [
        "simulate",
        "--claims",
        str(CLAIMS),
        "--db",
        str(tmp_path / "s" / "sim.db"),
        "--limit",
        "12",
        "--resolution",
        "ratings",
        "--coordinated-raters",
        "0.2",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["resolution"] == "ratings" and report["coordinated_raters"] == 0.2
    assert 0 <= report["rating_status_accuracy"] <= 1 and 0 <= report["misleading_shown_share"] <= 1
    assert 0 <= report["hidden_for_author"] <= report["hidden_notes"]
    import sqlite3

    with sqlite3.connect(tmp_path / "s" / "sim.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM posts WHERE resolution IS NOT NULL").fetchone()[0] == 0
        reveals = conn.execute("SELECT COUNT(*) FROM reveals").fetchone()[0]
        assert conn.execute("SELECT COUNT(*) FROM note_statuses").fetchone()[0] == reveals
        assert conn.execute("SELECT COUNT(DISTINCT surface) FROM ratings").fetchone()[0] <= 1
    refused = CliRunner().invoke(
        main,
        [
            "simulate",
            "--claims",
            str(CLAIMS),
            "--db",
            str(tmp_path / "t" / "sim.db"),
            "--limit",
            "2",
            "--coordinated-raters",
            "0.2",
            "--out",
            str(out),
        ],
    )
    assert refused.exit_code == 1 and "only with --resolution ratings" in refused.output
