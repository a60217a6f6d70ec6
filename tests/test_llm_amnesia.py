"""Amnesia on the LLM path: for an unbought note neither the prompt nor the completion reaches any
log (captured at DEBUG, the openai, httpx2 and httpcore2 loggers included), and the judge keeps no
state between calls."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from notebazaar.pipeline import prompts
from notebazaar.pipeline.config import OpenAISettings
from notebazaar.pipeline.judge import Context, JudgeError, NoteView, PostView
from notebazaar.pipeline.judge.llm import LLMJudge
from tests.fake_openai import FakeOpenAI, Reply, answer, blocks, malformed

POST = PostView(1, 1, "The mayor says the new tram line will open in June.")
NOTE_SECRET = "zq-secret-note-7731"
COMPLETION_SECRET = "zq-secret-completion-4410"
NOTE = NoteView(9, 2, "misleading", f"The tram depot permit {NOTE_SECRET} is still pending at the ministry.")
LOGGERS = ("", "openai", "openai._base_client", "httpx2", "httpcore2", "pipeline")


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def _judge(server: FakeOpenAI) -> LLMJudge:
    settings = OpenAISettings(base_url=server.base_url, max_retries=1, timeout_seconds=2)
    return LLMJudge(settings, prompts.packaged_prompt())


def test_no_prompt_or_completion_in_any_log(server: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    server.script(
        # worth nothing: a small move, the note would not be bought
        answer(p_after=0.52, span="The tram depot permit", rationale=f"Weak {COMPLETION_SECRET}."),
        Reply(status=429, headers={"retry-after-ms": "5"}),
        malformed(f'{{"p_after": 0.9, "span": "{COMPLETION_SECRET}'),
        Reply(content=f'{{"p_after": 0.9, "span": "{COMPLETION_SECRET}", "rationale": "x"}}'),
    )
    judge = _judge(server)
    verdict = judge.inspect(POST, Context(), NOTE, 0.5)
    assert verdict.p_after == pytest.approx(0.52)
    for reason in ("malformed_answer", "span_not_in_note"):
        with pytest.raises(JudgeError, match=reason):
            judge.inspect(POST, Context(), NOTE, 0.5)
    assert NOTE_SECRET in blocks(server.requests[0])["NOTE"]  # the note did go to the model

    names = {r.name for r in caplog.records}
    assert {"openai._base_client", "httpx2"} <= names  # the transport logged at DEBUG/INFO...
    assert any(r.name.startswith("httpcore2") for r in caplog.records)
    for record in caplog.records:  # ...but never the note, the prompt or the completion
        text = record.getMessage() + (record.exc_text or "")
        for secret in (NOTE_SECRET, COMPLETION_SECRET, "p_after", "TASK: INSPECT", "<<<BEGIN"):
            assert secret not in text, (record.name, secret)
    assert any("tokens" in r.getMessage() for r in caplog.records)  # token counts may be logged


def test_judge_keeps_no_state_between_calls(server: FakeOpenAI) -> None:
    other = NoteView(
        10, 3, "misleading", "The ministry's register lists the depot permit as approved in May."
    )
    server.script(
        answer(p_after=0.6, span="The tram depot permit", rationale="r"),
        answer(p_after=0.6, span="The ministry's register lists", rationale="r"),
    )
    judge = _judge(server)
    before = dict(vars(judge))
    judge.inspect(POST, Context(), NOTE, 0.5)
    after_first = dict(vars(judge))
    judge.inspect(POST, Context(), other, 0.5)
    assert vars(judge) == before == after_first  # same attributes, same objects: nothing added
    _, second = server.requests
    assert len(second["messages"]) == 2  # no history: a system and a user message, nothing else
    assert NOTE_SECRET not in str(second)  # the first note did not leak into the second call
    assert NOTE_SECRET not in repr(vars(judge)) and NOTE_SECRET not in repr(vars(judge._client))
    assert len(judge._client._client.cookies) == 0  # no cookie jar state either
