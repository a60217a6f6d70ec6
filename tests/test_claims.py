"""The claims reader (the format of shared/data/README.md): what it accepts, and that every malformed
line is refused with an error naming the line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from notebazaar.pipeline.claims import Claim, Evidence, load_claims, read_claims
from notebazaar.pipeline.errors import ValidationError
from tests.conftest import CLAIMS

GOOD: dict[str, Any] = {
    "id": "cf-0",
    "post": "Global warming is driving polar bears toward extinction",
    "label": "accurate",
    "source": "climate-fever",
    "evidence": [
        {
            "id": "cf-0-1",
            "text": "Environmental impacts include the extinction of species.",
            "stance": "supports",
            "origin": "Global warming:14",
        },
        {"id": "cf-0-2", "text": "Polar bears live in the Arctic.", "stance": "irrelevant"},
    ],
}


def _line(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _write(tmp_path: Path, lines: list[str | bytes], name: str = "claims.jsonl") -> Path:
    path = tmp_path / name
    data = b"".join((x if isinstance(x, bytes) else x.encode("utf-8")) + b"\n" for x in lines)
    path.write_bytes(data)
    return path


def _other(i: int, **change: Any) -> dict[str, Any]:
    return {**GOOD, "id": f"cf-{i}", **change}


def test_reads_the_documented_format(tmp_path: Path) -> None:
    path = _write(tmp_path, [_line(GOOD), _line(_other(1, label="misleading", evidence=[]))])
    claims = load_claims(path)
    assert [c.id for c in claims] == ["cf-0", "cf-1"]
    first = claims[0]
    assert first == Claim(
        "cf-0",
        GOOD["post"],
        "accurate",
        (
            Evidence("cf-0-1", GOOD["evidence"][0]["text"], "supports", "Global warming:14"),
            Evidence("cf-0-2", "Polar bears live in the Arctic.", "irrelevant", ""),
        ),
        "climate-fever",
    )
    assert not first.misleading and first.helpful_stance == "supports"
    assert claims[1].misleading and claims[1].helpful_stance == "refutes" and claims[1].evidence == ()


def test_optional_fields_default(tmp_path: Path) -> None:
    minimal = {
        "id": 7,
        "post": "x is y",
        "label": "misleading",
        "evidence": [{"text": "t", "stance": "refutes"}],
    }
    (claim,) = load_claims(_write(tmp_path, [_line(minimal)]))
    assert claim.id == "7" and claim.source == ""
    assert claim.evidence == (Evidence("7-0", "t", "refutes", ""),)


def test_read_claims_streams_lazily(tmp_path: Path) -> None:
    """A bad line after the first N is not reached when only N are asked for (the file is streamed)."""
    path = _write(tmp_path, [_line(GOOD), _line(_other(1)), "{not json"])
    it = read_claims(path)
    assert next(it).id == "cf-0"
    assert [c.id for c in read_claims(path, limit=2)] == ["cf-0", "cf-1"]
    with pytest.raises(ValidationError, match="line 3"):
        list(read_claims(path))


def test_blank_lines_are_skipped_and_limit_counts_claims(tmp_path: Path) -> None:
    path = _write(tmp_path, ["", _line(GOOD), "   ", "\t", _line(_other(1)), "", _line(_other(2))])
    assert [c.id for c in load_claims(path)] == ["cf-0", "cf-1", "cf-2"]
    assert [c.id for c in load_claims(path, limit=2)] == ["cf-0", "cf-1"]
    assert [c.id for c in load_claims(path, limit=1)] == ["cf-0"]


def test_the_real_file(tmp_path: Path) -> None:
    claims = load_claims(CLAIMS, limit=5)
    assert len(claims) == 5
    assert len({c.id for c in claims}) == 5
    for claim in claims:
        assert claim.label in ("accurate", "misleading") and claim.post.strip()
        assert claim.evidence and all(
            e.stance in ("supports", "refutes", "irrelevant") for e in claim.evidence
        )
        assert all(e.text for e in claim.evidence)


BAD_LINES: list[tuple[str, str | bytes, str]] = [
    ("bad_json", '{"id": "cf-9", "post": ', "invalid JSON"),
    ("missing_id", _line({k: v for k, v in GOOD.items() if k != "id"}), "missing 'id'"),
    ("missing_post", _line({k: v for k, v in GOOD.items() if k != "post"}), "missing 'post'"),
    ("missing_label", _line({k: v for k, v in GOOD.items() if k != "label"}), "missing 'label'"),
    ("missing_evidence", _line({k: v for k, v in GOOD.items() if k != "evidence"}), "missing 'evidence'"),
    ("bad_label", _line(_other(9, label="true")), "label"),
    ("empty_post", _line(_other(9, post="   ")), "post"),
    ("post_not_text", _line(_other(9, post=12)), "post"),
    ("evidence_not_list", _line(_other(9, evidence={"text": "t"})), "evidence"),
    ("bad_stance", _line(_other(9, evidence=[{"text": "t", "stance": "agrees"}])), "stance"),
    ("missing_stance", _line(_other(9, evidence=[{"text": "t"}])), "stance"),
    ("evidence_without_text", _line(_other(9, evidence=[{"stance": "supports"}])), "text"),
    ("evidence_not_object", _line(_other(9, evidence=["t"])), "evidence 0"),
    ("invalid_utf8", b'{"id": "cf-9", "post": "caf\xe9", "label": "accurate", "evidence": []}', "UTF-8"),
    ("array", _line([GOOD]), "JSON object"),
    ("number", "42", "JSON object"),
    ("string", '"a claim"', "JSON object"),
]


@pytest.mark.parametrize(
    ("bad", "problem"), [(b, p) for _, b, p in BAD_LINES], ids=[i for i, _, _ in BAD_LINES]
)
def test_a_malformed_line_is_refused_naming_the_line(tmp_path: Path, bad: str | bytes, problem: str) -> None:
    path = _write(tmp_path, [_line(GOOD), "", _line(_other(1)), bad, _line(_other(2))])
    with pytest.raises(ValidationError) as caught:
        load_claims(path)
    message = str(caught.value)
    assert "claims.jsonl line 4" in message, message
    assert problem in message, message


def test_an_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    for lines in ([], ["", "  "]):
        path = _write(tmp_path, lines, name="empty.jsonl")
        with pytest.raises(ValidationError, match="holds no claims"):
            load_claims(path)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        load_claims(tmp_path / "nope.jsonl")
    with pytest.raises(ValidationError, match="does not exist"):
        load_claims(tmp_path)  # a folder is not a claims file
