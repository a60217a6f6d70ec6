"""The LLM judge against loopback servers that behave like the real local ones, quirks included:
llama-cpp-python's server (HTTP 500 on a json_schema response format, json_object only) and
llama.cpp's llama-server (a degenerate model runs a string to the end of the context unless
``max_tokens`` stops it, and a grammar bounds strings only if the schema does). Also: time caps,
no retry of a deterministic answer, a cacheable prompt, cheap datamarking, and `judge check`."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from notebazaar.cli import main
from notebazaar.pipeline import prompts
from notebazaar.pipeline.config import OpenAISettings
from notebazaar.pipeline.judge import Context, JudgeError, NoteView, PostView
from notebazaar.pipeline.judge.check import PROBE_NOTE
from notebazaar.pipeline.judge.llm import MAX_SPAN_CHARS, LLMJudge
from tests.fake_openai import FakeOpenAI, Reply, answer, blocks, count_tokens, runaway, slow

POST = PostView(1, 1, "The council never passed the 2024 budget, they just spent the money.")
NOTE_TEXT = "The council minutes of 3 May 2024 show the budget passed by 7 votes to 2 (item 4.1)."
NOTE = NoteView(11, 2, "misleading", NOTE_TEXT, ("https://example.org/minutes",), 10)
EVIDENCE = "The council minutes of 3 May 2024 show the budget passed"


def judge_for(server: FakeOpenAI, **overrides: object) -> LLMJudge:
    config: dict[str, object] = {"base_url": server.base_url, "model": "m", "timeout_seconds": 5.0}
    config.update(overrides)
    return LLMJudge(OpenAISettings(**config), prompts.packaged_prompt())  # type: ignore[arg-type]


def fmt(body: dict) -> str:
    return str((body.get("response_format") or {}).get("type", "none"))


def quoting_model(body: dict) -> Reply:
    """A model that follows the prompt: quotes the note's evidence (or answers a prior)."""
    if "TASK: PRIOR" in body["messages"][1]["content"]:
        return answer(p=0.4)
    note = blocks(body)["NOTE"]
    return answer(p_after=0.9, span=note[: min(len(note), 60)], rationale="The minutes record the vote.")


def test_llama_cpp_python_refuses_json_schema_and_the_judge_falls_back_once() -> None:
    with FakeOpenAI(quoting_model, flavour="llama_cpp_python") as server:
        judge = judge_for(server)
        first = judge.inspect(POST, Context(), NOTE, 0.5)
        second = judge.inspect(POST, Context(), NOTE, 0.5)
        assert first.p_after == pytest.approx(0.9) and second.p_after == pytest.approx(0.9)
        # json_schema got HTTP 500 once; json_object (with the schema beside it) is remembered.
        assert [fmt(b) for b in server.requests] == ["json_schema", "json_object", "json_object"]
        assert (
            server.requests[1]["response_format"]["schema"]["properties"]["span"]["maxLength"]
            == MAX_SPAN_CHARS
        )
        assert judge.support.format == "json_object" and judge.support.refused == ["json_schema"]


def test_every_request_caps_completion_tokens_and_bounds_every_field() -> None:
    with FakeOpenAI(quoting_model) as server:
        judge_for(server, max_tokens=200).inspect(POST, Context(), NOTE, 0.5)
        [body] = server.requests
    assert body["max_tokens"] == 200
    schema = body["response_format"]["json_schema"]["schema"]
    props = schema["properties"]
    assert props["p_after"]["minimum"] == 0 and props["p_after"]["maximum"] == 1
    assert props["span"]["maxLength"] == MAX_SPAN_CHARS and props["rationale"]["maxLength"] > 0
    assert schema["additionalProperties"] is False and set(schema["required"]) == set(props)


RUNAWAY = runaway(
    '{"p_after": 0.9, "span": "', loop="the council the council ", closing='", "rationale": "r"}'
)


def test_llama_server_runaway_is_stopped_by_max_tokens_within_the_cap() -> None:
    # A degenerate model on a slow CPU server: without a cap it would write 4,000 tokens (8 s here).
    with FakeOpenAI(RUNAWAY, flavour="llama_server", n_ctx=4096, seconds_per_token=0.002) as server:
        judge = judge_for(server, max_tokens=64, response_format="none")
        started = time.monotonic()
        with pytest.raises(JudgeError) as caught:
            judge.inspect(POST, Context(), NOTE, 0.5)
        elapsed = time.monotonic() - started
    assert caught.value.reason == "answer_truncated"
    assert caught.value.tokens > 64  # the failed inspection records what it spent (prompt + 64)
    assert elapsed < 2.0 and len(server.requests) == 1  # cut at 64 tokens, and not retried


def test_llama_server_grammar_bounds_the_runaway_string_to_the_schema() -> None:
    with FakeOpenAI(RUNAWAY, flavour="llama_server", seconds_per_token=0.0) as server:
        with pytest.raises(JudgeError) as caught:
            judge_for(server).inspect(POST, Context(), NOTE, 0.5)
        [body] = server.requests
    # The grammar closed the span at its maxLength: a complete answer, refused by the span check.
    assert fmt(body) == "json_schema" and caught.value.reason == "span_not_in_note"


def test_a_huge_prior_is_a_counted_failure_not_a_probability() -> None:
    with FakeOpenAI(Reply(content='{"p": 1e15}'), flavour="llama_server") as server:
        with pytest.raises(JudgeError) as caught:
            judge_for(server).prior(POST, Context())
        assert caught.value.reason == "probability_out_of_range" and len(server.requests) == 1


def _trickling() -> Reply:
    reply = answer(p_after=0.9, span=EVIDENCE, rationale="r")
    reply.trickle = 0.05  # a byte every 50 ms: every read arrives well within the read timeout
    return reply


@pytest.mark.parametrize(
    "reply, read_timeout",
    [(slow(5.0, answer(p_after=0.9, span=EVIDENCE, rationale="r")), 60.0), (_trickling(), 5.0)],
    ids=["silent", "trickling"],
)
def test_an_inspection_never_outlasts_its_cap_and_a_timeout_is_not_retried(
    reply: Reply, read_timeout: float
) -> None:
    # A server silent for 5 s, or one sending a byte every 50 ms (which no read timeout stops):
    # only the inspection's own wall-clock cap ends either.
    with FakeOpenAI(reply) as server:
        judge = judge_for(server, timeout_seconds=read_timeout, inspection_seconds=1.0, max_retries=3)
        started = time.monotonic()
        with pytest.raises(JudgeError) as caught:
            judge.inspect(POST, Context(), NOTE, 0.5)
        elapsed = time.monotonic() - started
        assert caught.value.reason == "timeout" and elapsed < 2.0
        assert len(server.requests) == 1  # the same prompt would be as slow again


def test_a_malformed_answer_is_not_retried() -> None:
    with FakeOpenAI(Reply(content="Sure! The note is decisive.")) as server:
        with pytest.raises(JudgeError) as caught:
            judge_for(server, max_retries=3).inspect(POST, Context(), NOTE, 0.5)
        assert caught.value.reason == "malformed_answer" and len(server.requests) == 1


def test_plain_json_is_parsed_from_the_text_when_no_format_is_taken() -> None:
    text = f'Here is my answer:\n```json\n{{"p_after": 0.8, "span": "{EVIDENCE}", "rationale": "r"}}\n```'
    with FakeOpenAI(Reply(content=text)) as server:
        verdict = judge_for(server, response_format="none").inspect(POST, Context(), NOTE, 0.5)
        assert "response_format" not in server.requests[0]
    assert verdict.p_after == pytest.approx(0.8)


def test_the_fixed_prompt_is_a_prefix_the_server_cache_reuses() -> None:
    other = NoteView(12, 3, "misleading", "The city's budget register lists the 2024 budget as adopted.")
    with FakeOpenAI(quoting_model, flavour="llama_server") as server:
        judge = judge_for(server)
        judge.inspect(POST, Context(), NOTE, 0.5)
        judge.inspect(POST, Context(), other, 0.5)
        first, second = server.requests
    system = first["messages"][0]["content"]
    assert system == second["messages"][0]["content"]
    assert re.search(r"[0-9a-f]{16}", system) is None  # no per-call token in the system message
    # What llama.cpp's prompt cache would reuse of the second call: the whole system prompt at least.
    shared = count_tokens(system)
    total = count_tokens("".join(m["content"] for m in second["messages"]))
    assert shared / total > 0.7


def test_datamarking_costs_a_mark_per_line_not_per_word() -> None:
    long_note = NoteView(13, 2, "misleading", " ".join([NOTE_TEXT] * 6))
    with FakeOpenAI(quoting_model) as server:
        judge_for(server).inspect(POST, Context(), long_note, 0.5)
        user = server.requests[0]["messages"][1]["content"]
    block = user.split(" NOTE>>>\n")[1].split("\n<<<END")[0]
    assert count_tokens(block) <= count_tokens(long_note.text) + 2 * (block.count("\n") + 1)


@pytest.mark.parametrize("flavour", ["llama_server", "llama_cpp_python"])
def test_judge_check_passes_against_both_servers(flavour: str, tmp_path: Path) -> None:
    with FakeOpenAI(quoting_model, flavour=flavour) as server:
        result = CliRunner().invoke(
            main,
            ["judge", "check", "--judge", "openai", "--db", str(tmp_path / "x.db")],
            env={"NOTEBAZAAR_JUDGE__OPENAI__BASE_URL": server.base_url},
        )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.splitlines()[0])
    assert (
        report["ok"] is True
        and report["prior"] == pytest.approx(0.4)
        and report["p_after"] == pytest.approx(0.9)
    )
    assert report["tokens"] > 0 and report["seconds"] >= report["inspection_seconds"] >= 0
    expected = "json_object" if flavour == "llama_cpp_python" else "json_schema"
    assert report["response_format"] == expected
    assert report["refused_formats"] == (["json_schema"] if flavour == "llama_cpp_python" else [])
    assert PROBE_NOTE.text[:60] in json.dumps(server.requests[-1])  # the canned probe was sent


def test_judge_check_fails_with_the_reason_when_the_judge_cannot_work(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        url = server.base_url  # nothing listens once it stops
    result = CliRunner().invoke(
        main,
        ["judge", "check", "--judge", "openai", "--db", str(tmp_path / "x.db")],
        env={"NOTEBAZAAR_JUDGE__OPENAI__BASE_URL": url, "NOTEBAZAAR_JUDGE__OPENAI__MAX_RETRIES": "0"},
    )
    assert result.exit_code == 1
    assert "the judge cannot work: prior: connection_error" in result.output
    assert json.loads(result.stdout.splitlines()[0])["ok"] is False


def test_judge_check_of_the_embedded_judge(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["judge", "check", "--judge", "local", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.splitlines()[0])
    assert report["ok"] is True and report["judge"] == "local" and report["p_after"] > report["prior"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "malformed_answer"),  # a proxy's page, sent as 200
        (b"[1, 2, 3]", "malformed_answer"),
        (b'{"choices": [{"finish_reason": "stop"}]}', "malformed_answer"),
        (b'{"choices": [{"message": {"role": "assistant", "content": ["a", "list"]}}]}', "malformed_answer"),
    ],
)
def test_a_200_that_is_not_a_chat_completion_is_a_counted_judge_error(body: bytes, reason: str) -> None:
    """Whatever a server or a proxy in front of it answers, the judge fails with a reason (counted
    in judge_errors) and never with a raw exception that would leave the market unsettled."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings = OpenAISettings(
            base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", model="m", timeout_seconds=5.0
        )
        judge = LLMJudge(settings, prompts.packaged_prompt())
        with pytest.raises(JudgeError) as caught:
            judge.inspect(POST, Context(), NOTE, 0.5)
        assert caught.value.reason == reason
    finally:
        server.shutdown()
        server.server_close()


def test_usage_without_a_total_counts_zero_tokens() -> None:
    reply = answer(p_after=0.9, span=EVIDENCE, rationale="The minutes record the vote.")

    def no_total(body: dict) -> Reply:
        return reply

    with FakeOpenAI(no_total) as server:
        original = server._completion

        def completion(body: dict, r: Reply) -> dict:
            out = original(body, r)
            del out["usage"]["total_tokens"]
            return out

        server._completion = completion  # type: ignore[method-assign]
        verdict = judge_for(server).inspect(POST, Context(), NOTE, 0.5)
        assert verdict.tokens == 0
