"""``notebazaar writer`` end to end against a real notebazaar server (uvicorn on loopback, started
here): it lists open markets, offers sealed notes with an Idempotency-Key, logs notes and salts in
its own state folder, reads its rewards after the markets settle, learns, and exports preference
pairs; the community's writer cap refuses what is over it; ``--source openai`` drafts notes with a
loopback OpenAI-compatible server."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from click.testing import CliRunner, Result

from notebazaar.cli import main
from notebazaar.pipeline import community, market, rewards
from notebazaar.pipeline.config import MarketSettings, Settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.judge.simple import SimpleJudge
from notebazaar.pipeline.sealing import NoteContent, commitment
from notebazaar.pipeline.settlement import close_market
from notebazaar.web import auth
from notebazaar.web.app import create_app
from notebazaar.writer.log import LOG_FILE
from notebazaar.writer.runner import MarketApi
from tests.fake_openai import FakeOpenAI, answer
from tests.web_fixtures import fast_hashing_fixture  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("quiet_logging_and_one_torch_thread")

POSTS = (
    "The city council voted to ban gas stoves in every existing home next month.",
    "Arctic sea ice has grown every single year since 2012, satellites show.",
    "A new bridge across the river opens to traffic on Monday morning.",
)
PASSAGES = (
    {
        "text": "The council voted only on new homes from next year; existing homes keep gas stoves.",
        "source": "https://example.org/council",
    },
    {
        "text": "Satellites show Arctic sea ice declining since 2012, with record lows in summer.",
        "source": "https://example.org/nsidc",
    },
    {
        "text": "The river bridge opens to traffic on Monday morning, the transport office said.",
        "source": "https://example.org/bridge",
    },
    {
        "text": "Gas stoves in existing homes are not affected by the council vote.",
        "source": "council minutes",
    },
    {"text": "Arctic sea ice extent is not growing; 2012 was a record low.", "source": "ice report"},
    {"text": "Bananas are rich in potassium.", "source": "a cookbook"},
)


@dataclass
class Server:
    url: str
    db_path: Path
    community_id: int
    writer: int
    token: str
    markets: list[int]

    def db(self) -> Any:
        return open_db(self.db_path, migrate=False)


def _serve(app: Any) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(20)


def _world(db_path: Path, *, cap: int = 50) -> tuple[int, int, str, list[int]]:
    db = open_db(db_path)
    try:
        settings = MarketSettings(
            attention_slots=3,
            reserve=2,
            price_of_information=100,
            budget_per_market=200,
            writer_offers_per_day=cap,
        )
        com = community.create_community(db, "town", settings=settings)
        reader = community.create_account(db, "reader")
        community.mint(db, reader, 5_000)
        community.fund_pool(db, com.id, reader, 4_000)
        writer = community.create_account(db, "bot")
        community.grant(db, writer, com.id, "informer")
        community.mint(db, writer, 500)
        token = auth.create_token(db, writer, "writer")
        markets = [market.open_market(db, community.add_post(db, com.id, text)) for text in POSTS]
        return com.id, writer, token, markets
    finally:
        db.close()


@pytest.fixture
def server(tmp_path: Path, fast_hashing: None) -> Iterator[Server]:
    db_path = tmp_path / "market" / "market.db"
    com_id, writer, token, markets = _world(db_path)
    app = create_app(db_path, Settings(), judge=SimpleJudge(), key="writer-test", start_worker=False)
    for url in _serve(app):
        yield Server(url, db_path, com_id, writer, token, markets)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "passages.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PASSAGES), encoding="utf-8")
    return path


def _writer(server: Server, state: Path, *args: str, token: str | None = None, **env: str) -> Result:
    argv = ["writer", "--server", server.url, "--state", str(state), "--rounds", "1", "--interval", "0.01"]
    environment = {"NOTEBAZAAR_WRITER_TOKEN": token or server.token, **env}
    return CliRunner().invoke(main, [*argv, *args], env=environment)


def _notes(state: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(state / LOG_FILE) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM notes ORDER BY offer_id")]


def test_the_writer_offers_reads_its_rewards_learns_and_exports(
    server: Server, corpus: Path, tmp_path: Path
) -> None:
    state = tmp_path / "writer-state"
    first = _writer(server, state, "--source", "corpus", str(corpus))
    assert first.exit_code == 0, first.output
    notes = _notes(state)
    assert notes and {n["market_id"] for n in notes} == set(server.markets)  # a note for every market
    db = server.db()
    try:
        assert community.is_writer(db, server.writer)  # it declared itself
        offers = {int(o["id"]): o for o in db["offers"].rows_where("informer_id = ?", [server.writer])}
        assert set(offers) == {n["offer_id"] for n in notes}
        for note in notes:  # the market holds our commitment; our note and salt open it
            content = NoteContent(note["classification"], note["text"], tuple(json.loads(note["sources"])))
            assert commitment(content, note["salt"]) == offers[note["offer_id"]]["commitment"]
            assert note["reward"] is None  # not settled yet
        # The market's state folder never holds the writer's salts; its log never the notes' text.
        market_files = b"".join(p.read_bytes() for p in server.db_path.parent.iterdir() if p.is_file())
        assert not any(n["salt"].encode() in market_files for n in notes)
        for market_id in server.markets:
            close_market(db, market_id, SimpleJudge(), force=True)
        expected = {r["offer_id"]: r["reward"] for r in rewards.offer_rewards(db, informer_id=server.writer)}
    finally:
        db.close()
    assert any(v > 0 for v in expected.values())  # some of its notes sold

    second = _writer(server, state, "--source", "corpus", str(corpus))
    assert second.exit_code == 0, second.output
    assert {n["offer_id"]: n["reward"] for n in _notes(state)} == expected  # every reward learned
    assert "rewarded" in second.output
    assert (state / "writer.log").is_file()

    out = tmp_path / "export" / "pairs.jsonl"
    exported = CliRunner().invoke(
        main, ["writer", "export-preferences", "--state", str(state), "--out", str(out)]
    )
    assert exported.exit_code == 0, exported.output
    pairs = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    records = [json.loads(x) for x in (out.parent / "rewards.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == len(expected)
    assert all(set(r) == {"prompt", "completion", "label", "reward"} for r in records)
    assert all(set(p) == {"prompt", "chosen", "rejected"} for p in pairs)


def test_the_community_cap_refuses_a_new_writers_extra_offers(
    tmp_path: Path, corpus: Path, fast_hashing: None
) -> None:
    db_path = tmp_path / "capped" / "market.db"
    _, writer, token, markets = _world(db_path, cap=2)
    app = create_app(db_path, Settings(), judge=SimpleJudge(), key="writer-test", start_worker=False)
    for url in _serve(app):
        srv = Server(url, db_path, 0, writer, token, markets)
        result = _writer(srv, tmp_path / "state", "--source", "corpus", str(corpus))
        assert result.exit_code == 0, result.output  # a refusal skips the offer, not the round
        assert len(_notes(tmp_path / "state")) == 2
        log = (tmp_path / "state" / "writer.log").read_text(encoding="utf-8")
        assert "refused an offer (400)" in log


def test_the_writer_refuses_bad_setups_cleanly(server: Server, corpus: Path, tmp_path: Path) -> None:
    no_token = CliRunner().invoke(
        main,
        ["writer", "--source", "corpus", str(corpus), "--server", server.url],
        env={"NOTEBAZAAR_WRITER_TOKEN": ""},
    )
    assert no_token.exit_code == 1 and "set NOTEBAZAAR_WRITER_TOKEN" in no_token.output
    bad = _writer(server, tmp_path / "s1", "--source", "corpus", str(corpus), token="nb_wrong")
    assert bad.exit_code == 1 and "401" in bad.output and "Traceback" not in bad.output
    no_source = _writer(server, tmp_path / "s2")
    assert no_source.exit_code == 1 and "--source corpus FILE" in no_source.output
    no_log = CliRunner().invoke(
        main,
        [
            "writer",
            "export-preferences",
            "--state",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "p.jsonl"),
        ],
    )
    assert no_log.exit_code == 1 and "holds no writer log" in no_log.output

    # A state folder belongs to one server and account.
    state = tmp_path / "s3"
    assert _writer(server, state, "--source", "corpus", str(corpus)).exit_code == 0
    db = server.db()
    try:
        other = community.create_account(db, "bot2")
        community.grant(db, other, server.community_id, "informer")
        token = auth.create_token(db, other, "writer")
    finally:
        db.close()
    mixed = _writer(server, state, "--source", "corpus", str(corpus), token=token)
    assert mixed.exit_code == 1 and "belongs to account" in mixed.output


def test_submissions_carry_an_idempotency_key() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(201, json={"offer_id": 1, "commitment": "c", "salt": "s"})

    api = MarketApi("http://server", "tok", transport=httpx2.MockTransport(handler))
    api.submit(7, {"classification": "misleading", "text": "t", "bid": 2, "price": 3}, "writer-1-2-abc")
    api.close()
    assert seen[0].headers["Idempotency-Key"] == "writer-1-2-abc"
    assert seen[0].headers["Authorization"] == "Bearer tok" and seen[0].url.path == "/api/posts/7/offers"


def test_source_openai_drafts_notes_with_a_model(server: Server, corpus: Path, tmp_path: Path) -> None:
    with FakeOpenAI(
        default=answer(classification="misleading", note="Existing homes keep their gas stoves.")
    ) as fake:
        result = _writer(
            server,
            tmp_path / "state",
            "--source",
            "openai",
            "--corpus",
            str(corpus),
            OPENAI_API_KEY="sk-test",
            NOTEBAZAAR_WRITER__OPENAI__BASE_URL=fake.base_url,
        )
        assert result.exit_code == 0, result.output
        assert fake.requests, "the model was never asked"
        for body in fake.requests:
            assert body["response_format"] == {"type": "json_object"} and body["max_tokens"] > 0
        assert fake.authorizations[0] == "Bearer sk-test"
    notes = _notes(tmp_path / "state")
    assert notes and {n["text"] for n in notes} == {"Existing homes keep their gas stoves."}
    assert {n["classification"] for n in notes} == {"misleading"}
