"""``notebazaar corpus add FILE --db PATH``: JSONL and plain text into documents and the index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from notebazaar.cli import main
from notebazaar.index import corpus
from notebazaar.index.embed import Embedder, get_embedder
from notebazaar.index.retrieval import INDEX_FILE, Retriever
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.db import open_db


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return get_embedder()


@pytest.fixture
def db_file(tmp_path: Path, embedder: Embedder) -> Path:
    return tmp_path / "state" / "nb.db"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def documents(db_file: Path) -> list[dict[str, object]]:
    db = open_db(db_file)
    try:
        return list(db.query("SELECT * FROM documents ORDER BY id"))
    finally:
        db.close()


def search(db_file: Path, text: str, **kwargs: object) -> list[str]:
    db = open_db(db_file)
    try:
        return [h.text for h in Retriever(db, db_file.parent, Settings().index).search(text, **kwargs)]
    finally:
        db.close()


def test_jsonl_corpus_is_added_and_indexed(tmp_path: Path, db_file: Path) -> None:
    file = tmp_path / "refs.jsonl"
    lines = [
        {
            "text": "Sea level rose about 20 cm between 1901 and 2018.",
            "title": "IPCC AR6",
            "source": "ipcc.ch",
        },
        {"text": "Measles vaccine is 97% effective after two doses.", "url": "https://www.cdc.gov/measles"},
        {"text": "  The Great Wall of China is not visible from the Moon with the naked eye.  "},
    ]
    file.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    result = run("corpus", "add", str(file), "--db", str(db_file))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"added": 3}
    rows = documents(db_file)
    assert [(r["kind"], r["community_id"], r["ref_id"]) for r in rows] == [("reference", None, None)] * 3
    assert (rows[0]["title"], rows[0]["source"]) == ("IPCC AR6", "ipcc.ch")
    assert rows[1]["source"] == "https://www.cdc.gov/measles"
    assert rows[2]["text"] == "The Great Wall of China is not visible from the Moon with the naked eye."
    assert (db_file.parent / INDEX_FILE).is_file()
    assert search(db_file, "how effective are measles shots", k=1) == [lines[1]["text"]]

    again = run("corpus", "add", str(file), "--db", str(db_file))
    assert json.loads(again.stdout) == {"added": 0}  # the same passages are not added twice
    assert len(documents(db_file)) == 3


def test_plain_text_corpus_one_passage_per_paragraph(tmp_path: Path, db_file: Path) -> None:
    file = tmp_path / "facts.txt"
    file.write_text(
        "The Eiffel Tower is about 330 metres tall\nand was finished in 1889.\n\n  \n"
        "Honey found in Egyptian tombs was still edible.\r\n\r\n\n",
        encoding="utf-8",
    )
    result = run("corpus", "add", str(file), "--db", str(db_file), "--community", "local")
    assert result.exit_code != 0 and "no community" in result.output
    assert not db_file.parent.joinpath(INDEX_FILE).exists()

    result = run("corpus", "add", str(file), "--db", str(db_file))
    assert json.loads(result.stdout) == {"added": 2}
    rows = documents(db_file)
    assert [r["text"] for r in rows] == [
        "The Eiffel Tower is about 330 metres tall and was finished in 1889.",
        "Honey found in Egyptian tombs was still edible.",
    ]
    assert {r["source"] for r in rows} == {"facts.txt"}
    assert search(db_file, "height of the Eiffel tower", k=1) == [rows[0]["text"]]


def test_community_corpus(tmp_path: Path, db_file: Path) -> None:
    assert run("community", "create", "local", "--db", str(db_file)).exit_code == 0
    file = tmp_path / "local.txt"
    file.write_text("The town library opens at 9 on weekdays.", encoding="utf-8")
    assert json.loads(
        run("corpus", "add", str(file), "--db", str(db_file), "--community", "local").stdout
    ) == {"added": 1}
    (row,) = documents(db_file)
    assert row["community_id"] is not None


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"title": "no text"}', '"text" must be a non-empty string'),
        ('{"text": "   "}', '"text" must be a non-empty string'),
        ('{"text": "ok", "title": 5}', "'title' must be a string"),
    ],
)
def test_malformed_jsonl_line_is_named_and_nothing_is_added(
    tmp_path: Path, db_file: Path, line: str, problem: str
) -> None:
    file = tmp_path / "bad.jsonl"
    good = json.dumps({"text": "A valid passage."})
    file.write_text(f"{good}\n{good.replace('valid', 'second')}\n{line}\n{good}\n", encoding="utf-8")
    result = run("corpus", "add", str(file), "--db", str(db_file))
    assert result.exit_code == 1
    assert f"bad.jsonl line 3: {problem}" in result.output
    assert documents(db_file) == []
    assert not (db_file.parent / INDEX_FILE).exists()


def test_empty_and_undecodable_files_are_refused(tmp_path: Path, db_file: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n", encoding="utf-8")
    assert "holds no passages" in run("corpus", "add", str(empty), "--db", str(db_file)).output
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"ok\xff\xfe")
    assert "not UTF-8" in run("corpus", "add", str(binary), "--db", str(db_file)).output
    assert documents(db_file) == []


def test_large_file_shows_progress(tmp_path: Path, db_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus, "PROGRESS_MIN", 2)
    file = tmp_path / "many.jsonl"
    file.write_text("\n".join(json.dumps({"text": f"Fact number {i} about rivers."}) for i in range(5)))
    result = run("corpus", "add", str(file), "--db", str(db_file))
    assert json.loads(result.stdout) == {"added": 5}
    assert "embedding passages" in result.stderr
