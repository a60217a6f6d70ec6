"""``corpus add`` limits (passage size, file size, binary files) and ``simulate`` refusals: evidence
of only stop words runs (and its private corpus still searches), and a refused run leaves no new
database behind."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from notebazaar.cli import main
from notebazaar.pipeline.claims import load_claims
from notebazaar.pipeline.simulate import PrivateCorpus
from tests.test_core_helpers import restore_logging  # noqa: F401

pytestmark = pytest.mark.usefixtures("restore_logging")


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _simulate(claims: Path, db: Path, out: Path) -> Result:
    return _run("simulate", "--claims", str(claims), "--judge", "simple", "--db", str(db), "--out", str(out))


def _refused(result: Result, message: str) -> None:
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.output.startswith("Error: ") and message in result.output, result.output


def _documents(db: Path) -> int:
    shown = _run("export", "revealed", "--db", str(db))  # the database exists and opens
    assert shown.exit_code == 0
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "huge.txt",
            "word " * 5_000,
            "huge.txt paragraph 1: the passage is 24,999 characters; the limit is 20,000",
        ),
        (
            "huge.jsonl",
            json.dumps({"text": "ok"}) + "\n" + json.dumps({"text": "x" * 20_001}) + "\n",
            "huge.jsonl line 2: the passage is 20,001 characters",
        ),
        ("binary.txt", b"PK\x03\x04\x00\x00 a zip file, not text", "binary.txt holds a NUL byte at offset 4"),
    ],
)
def test_corpus_add_refuses_huge_passages_and_binary_files(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    db = tmp_path / "nb.db"
    assert _run("community", "create", "core", "--db", str(db)).exit_code == 0
    file = tmp_path / name
    if isinstance(content, bytes):
        file.write_bytes(content)
    else:
        file.write_text(content, encoding="utf-8")
    _refused(_run("corpus", "add", str(file), "--db", str(db)), message)
    assert _documents(db) == 0  # nothing half-added


def test_corpus_add_refuses_a_file_over_the_size_limit_before_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTEBAZAAR_INDEX__MAX_CORPUS_FILE_BYTES", "2048")
    db = tmp_path / "nb.db"
    file = tmp_path / "big.txt"
    file.write_text("A fine sentence about the sea.\n\n" * 100, encoding="utf-8")
    _refused(_run("corpus", "add", str(file), "--db", str(db)), "big.txt is 3,200 bytes; the limit is 2,048")


STOP_WORDS = {
    "id": "stop-1",
    "post": "It is what it is.",
    "label": "misleading",
    "evidence": [
        {"text": "It is what it is.", "stance": "refutes"},
        {"text": "and the", "stance": "supports"},
    ],
}


def test_a_private_corpus_of_only_stop_words_still_searches(tmp_path: Path) -> None:
    claims_file = tmp_path / "stop.jsonl"
    claims_file.write_text(json.dumps(STOP_WORDS) + "\n", encoding="utf-8")
    corpus = PrivateCorpus(load_claims(claims_file))  # used to raise "empty vocabulary"
    found = corpus.nearest("It is what it is.")  # without the stop-word list, words are words again
    assert [ev.text for _, ev in found] == [ev.text for _, ev in corpus.items]


def test_simulate_on_stop_words_runs(tmp_path: Path) -> None:
    claims_file = tmp_path / "stop.jsonl"
    claims_file.write_text(json.dumps(STOP_WORDS) + "\n", encoding="utf-8")
    out = tmp_path / "sim" / "report.json"
    result = _simulate(claims_file, tmp_path / "sim" / "sim.db", out)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["claims"] == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [("\n\n", "holds no claims"), ('{"id": "x"}\n', "line 1: missing 'post'")],
)
def test_a_refused_simulation_leaves_no_database_behind(tmp_path: Path, content: str, message: str) -> None:
    claims_file = tmp_path / "claims.jsonl"
    claims_file.write_text(content, encoding="utf-8")
    folder = tmp_path / "sim"
    result = _simulate(claims_file, folder / "sim.db", folder / "report.json")
    _refused(result, message)
    assert not folder.exists()  # no database, no log, no folder


def test_a_refused_simulation_keeps_an_existing_database(tmp_path: Path) -> None:
    claims_file = tmp_path / "stop.jsonl"
    claims_file.write_text(json.dumps(STOP_WORDS) + "\n", encoding="utf-8")
    db = tmp_path / "sim" / "sim.db"
    assert _simulate(claims_file, db, tmp_path / "sim" / "r1.json").exit_code == 0
    before = sorted(p.name for p in db.parent.iterdir())
    _refused(_simulate(claims_file, db, tmp_path / "sim" / "r2.json"), "already holds a simulation")
    assert sorted(p.name for p in db.parent.iterdir()) == before
