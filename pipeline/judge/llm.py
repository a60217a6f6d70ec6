"""The LLM judge: any OpenAI-compatible Chat Completions server (OpenAI, vLLM, llama.cpp's
``llama-server``, llama-cpp-python's server, Ollama).

One stateless call per question: a system message (the community's versioned prompt, the same text
on every call, so a server's prompt cache can reuse it) and one user message (this call's delimiter
token and datamark first, then the task and the spotlighted data). No conversation history, no
cache, no log of prompts or completions; only token counts and reasons are logged. The model
answers in JSON at temperature 0, and the code then checks the answer (see
:meth:`LLMJudge.inspect`): the model estimates, code decides.

Real servers differ, and this judge copes with each (see docs/judge-llm.md):

* the answer format: a bounded JSON schema (``response_format: json_schema``) where the server
  takes one; a server that refuses it (llama-cpp-python answers HTTP 500) gets ``json_object``
  with the schema beside it, and one that refuses that gets plain JSON, parsed from the text. What
  the server took is remembered for the judge's lifetime, so the refusal costs one call, once;
* runaway answers: every request caps its completion (``max_tokens``) and every schema field is
  bounded (strings by length, probabilities to [0, 1]); an answer cut at the cap is refused as
  ``answer_truncated`` and not retried (temperature 0: it would run away again);
* time: one inspection, every attempt and wait included, gets at most ``inspection_seconds``, a
  hard cap: the requests run on an event loop (:func:`_event_loop`) under ``asyncio.timeout``,
  which cancels a request at the deadline even while a server trickles bytes (httpx's timeouts
  are per read, so a blocking request could outlast any of them). A timeout is not retried;
  transport failures (refused connection, 429, 502-504) are, with backoff.

Failures of any kind raise :class:`~notebazaar.pipeline.judge.JudgeError` with a short reason and
the tokens the failed call spent; the offer is then not bought and the market still settles.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import threading
import time
from collections.abc import Coroutine
from string import Template
from typing import Any, TypeVar

import openai
import pydantic
from pydantic import BaseModel, ConfigDict
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
)

from notebazaar.pipeline.config import OpenAISettings
from notebazaar.pipeline.judge import Context, JudgeError, NoteView, PostView, TrackRecord, Verdict
from notebazaar.pipeline.judge.spotlight import (
    Region,
    Spotlight,
    find_span,
    has_instructions,
    instruction_regions,
    overlaps,
    sanitize,
)
from notebazaar.pipeline.rules import clamp

log = logging.getLogger(__name__)

# Local servers (llama.cpp, vLLM, Ollama) ignore the key but the client wants one.
PLACEHOLDER_KEY = "sk-no-key-required"
REQUIRED_PLACEHOLDERS = ("token", "mark")
# What the placeholders read as in the system message: the same words on every call, so the whole
# system message is a stable prefix; this call's values open the user message.
STABLE_NAMES = {"token": "CODE", "mark": "MARK"}
MAX_NOTE_CHARS = 8_000  # after sanitizing; submission limits are far lower, this guards the judge
MIN_SPAN_CHARS = 12  # a shorter "quote" (a word or two) can be found in almost any note
MAX_SPAN_CHARS = 300  # the schema's bound; a longer span is still checked, never trusted
MAX_RATIONALE_CHARS = 300
# A post alone never convinces a reader beyond these: the prior is read from text its author wrote,
# and an extreme prior would make any correcting note look enormously informative.
PRIOR_MIN, PRIOR_MAX = 0.1, 0.9
# Answer formats, most constrained first (``[judge.openai] response_format = "auto"`` tries them in
# this order and keeps the first the server takes).
FORMATS = ("json_schema", "json_object", "none")
# Statuses with which a server refuses a response format it does not take (llama-cpp-python: 500).
_FORMAT_REFUSALS = frozenset({400, 415, 422, 500, 501})
_TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})

AnswerT = TypeVar("AnswerT", bound=BaseModel)
T = TypeVar("T")


class InspectionAnswer(BaseModel):
    """The judge's answer to an INSPECT task (bounds are checked in code, each with its reason)."""

    model_config = ConfigDict(extra="ignore")
    p_after: float
    span: str
    rationale: str


class PriorAnswer(BaseModel):
    """The judge's answer to a PRIOR task."""

    model_config = ConfigDict(extra="ignore")
    p: float


def _probability_field(what: str) -> dict[str, Any]:
    return {"type": "number", "minimum": 0, "maximum": 1, "description": what}


def _text_field(what: str, max_chars: int) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_chars, "description": what}


def _object(name: str, properties: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "strict": True,
        "schema": {
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        },
    }


# Every field bounded: a grammar-constrained server (llama.cpp) cannot run a string past its
# length or a probability out of [0, 1], and one that ignores the bounds is checked in code.
SCHEMAS: dict[type[BaseModel], dict[str, Any]] = {
    InspectionAnswer: _object(
        "InspectionAnswer",
        {
            "p_after": _probability_field("P(post is misleading) after the note, strictly between 0 and 1"),
            "span": _text_field(
                "The shortest verbatim quote of the note that carries its evidence, or ''", MAX_SPAN_CHARS
            ),
            "rationale": _text_field(
                "One or two sentences for readers on why the note helps", MAX_RATIONALE_CHARS
            ),
        },
    ),
    PriorAnswer: _object(
        "PriorAnswer", {"p": _probability_field("P(post is misleading) before any new note, in (0, 1)")}
    ),
}
ANSWER_LINES = {
    InspectionAnswer: 'Answer with one JSON object: {"p_after": <number in [0, 1]>, "span": "<quote of at'
    f' most {MAX_SPAN_CHARS} characters>", "rationale": "<at most {MAX_RATIONALE_CHARS} characters>"}}.',
    PriorAnswer: 'Answer with one JSON object: {"p": <number in [0, 1]>}.',
}


class ServerSupport:
    """What the server was found to take: the answer format that worked, learned on the first
    call that got an answer and kept for the judge's lifetime. Shared by the judge's threads."""

    def __init__(self, configured: str) -> None:
        self._lock = threading.Lock()
        self.configured = configured
        self.format: str | None = None if configured == "auto" else configured
        self.refused: list[str] = []

    def formats(self) -> tuple[str, ...]:
        """The formats to try, in order: the one that worked, or every one from the most constrained."""
        with self._lock:
            if self.format is not None:
                return (self.format,)
            return tuple(f for f in FORMATS if f not in self.refused)

    def learned(self, fmt: str, refused: list[str]) -> None:
        with self._lock:
            if self.configured == "auto":
                self.format = fmt
            self.refused = [f for f in FORMATS if f in refused or f in self.refused]

    def __repr__(self) -> str:
        return f"ServerSupport(format={self.format!r}, refused={self.refused!r})"


class _FormatRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _transient(exc: BaseException) -> bool:
    """Worth another attempt: the server was unreachable or busy. Never a timeout (the same prompt
    would run as slowly again) and never an answer, however malformed (temperature 0)."""
    if isinstance(exc, openai.APITimeoutError):
        return False
    if isinstance(exc, openai.APIConnectionError):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code in _TRANSIENT_STATUSES


def check_prompt(text: str) -> list[str]:
    """Problems that stop ``text`` from serving as the judge's prompt (empty list if none).

    The prompt must name this call's delimiter token (``$token``) and datamark (``$mark``), or the
    model cannot tell data from instructions. Moderator tools can call this before saving.
    """
    template = Template(text)
    problems = []
    if not template.is_valid():
        problems.append("the prompt has a '$' that is not a placeholder; write '$$' for a dollar sign")
    names = set(template.get_identifiers())
    for name in REQUIRED_PLACEHOLDERS:
        if name not in names:
            problems.append(f"the prompt must contain the placeholder ${name}")
    return problems


def _record_line(track: TrackRecord) -> str:
    line = f"Its informer's record on resolved posts: {track.right} right, {track.wrong} wrong."
    if track.discredited:
        line += f" ({track.discredited} of the wrong ones: offers a sub-market found unreliable.)"
    return line


class LLMJudge:
    """A judge backed by an OpenAI-compatible model. Safe to share between threads: besides its
    settings, its prompt and the HTTP client it holds only :class:`ServerSupport` (which answer
    format the server takes), never anything about a note."""

    def __init__(
        self,
        settings: OpenAISettings,
        prompt_text: str,
        *,
        http_client: Any | None = None,
        name: str = "openai",
    ) -> None:
        problems = check_prompt(prompt_text)
        if problems:
            raise ValueError("judge prompt is unusable: " + "; ".join(problems))
        self.name = name
        self.model = settings.model
        self.settings = settings
        self._system = Template(prompt_text).safe_substitute(STABLE_NAMES)
        self.support = ServerSupport(settings.response_format)
        self._client = openai.AsyncOpenAI(
            base_url=settings.base_url,
            api_key=os.environ.get(settings.api_key_env) or PLACEHOLDER_KEY,
            timeout=settings.timeout_seconds,
            max_retries=0,  # retries are ours (``_call``): transport failures only, within the deadline
            http_client=http_client,
        )

    def __repr__(self) -> str:
        return f"LLMJudge(name={self.name!r}, model={self.model!r})"

    # -- the two questions -------------------------------------------------------------------

    def prior(self, post: PostView, context: Context) -> float:
        """P(misleading) from the post and the notes already bought, in one stateless call.

        A post that itself carries instruction-like text (its author could steer the prior), or is
        too long to mark, gets the neutral 0.5 without a call. A failed call raises
        :class:`JudgeError`: settlement then starts the market from 0.5 and records the reason.
        The answer is kept within [0.1, 0.9].
        """
        text = sanitize(post.text)
        if instruction_regions(text) or len(text) > MAX_NOTE_CHARS:
            log.info("post %s: prior fixed at 0.5 (post not eligible for a model prior)", post.id)
            return 0.5
        try:
            spot = Spotlight.fresh([text, *(n.text for n in context.bought)])
        except ValueError:
            return 0.5
        answer, tokens = self._ask(spot, self._prior_message(spot, post, context), PriorAnswer)
        p = _probability(answer.p, tokens)
        log.info("post %s: prior from model (%s tokens)", post.id, tokens)
        return min(PRIOR_MAX, max(PRIOR_MIN, p))

    def inspect(self, post: PostView, context: Context, note: NoteView, p_before: float) -> Verdict:
        """P(misleading) after the note, checked in code. Raises JudgeError with a reason on refusal.

        Checks, in order (each refusal names its reason):

        1. the answer parses, is not a refusal, was not cut short, and p_after is a probability
           (``malformed_answer``, ``refused``, ``answer_truncated``, ``probability_out_of_range``);
        2. a non-empty span is a verbatim quote of the note (``span_not_in_note``), long enough to
           mean something (``span_too_short``), and neither reads as an instruction itself nor lies
           in an instruction-like region of the note (``span_is_instruction``);
        3. the rationale is not lifted from an instruction-like region, as when a model echoes a
           fake JSON answer planted in the note (``answer_copied_from_note``);
        4. the note (or its sources) holds no instruction-like region at all
           (``note_contains_instructions``): an obedient model could quote an innocent sentence
           of such a note, so the note itself is refused.

        Then p_after is clamped to [0.01, 0.99]. An empty span means "no evidence": p_after is set
        to p_before, whatever number the model gave. A model that read the note's evidence as
        pointing against the note's own classification (it moved the reader the other way) is not
        a failure but a judgement: the note gets no weight, with the reason code
        ``contradicts_classification`` (:attr:`Verdict.no_weight`).
        """
        text = sanitize(note.text)
        sources = tuple(sanitize(s) for s in note.sources)
        if not text:
            raise JudgeError("empty_note")
        if len(text) + sum(len(s) for s in sources) > MAX_NOTE_CHARS:
            raise JudgeError("note_too_long")
        try:
            spot = Spotlight.fresh([post.text, text, *sources, *(n.text for n in context.bought)])
        except ValueError:
            raise JudgeError("unmarkable_note") from None
        answer, tokens = self._ask(
            spot, self._inspect_message(spot, post, context, note, text, sources, p_before), InspectionAnswer
        )
        p_model = _probability(answer.p_after, tokens)
        regions = instruction_regions(text)
        span = sanitize(spot.unmark(answer.span))
        rationale = sanitize(spot.unmark(answer.rationale))[:MAX_RATIONALE_CHARS]
        try:
            if span:
                _check_span(span, text, regions)
            if _copied_from(rationale, text, regions):
                raise JudgeError("answer_copied_from_note")
            if regions or has_instructions(note.text) or any(has_instructions(s) for s in note.sources):
                raise JudgeError("note_contains_instructions")
        except JudgeError as exc:
            raise JudgeError(exc.reason, tokens) from None
        p_before = clamp(p_before)
        p_after = clamp(p_model) if span else p_before
        log.info("offer %s inspected (%s tokens)", note.offer_id, tokens)
        if (note.classification == "misleading" and p_after < p_before) or (
            note.classification == "not_misleading" and p_after > p_before
        ):
            return Verdict(
                p_before,
                p_before,
                tokens=tokens,
                extra={"model_p_after": p_model},
                no_weight="contradicts_classification",
            )
        return Verdict(
            p_before=p_before,
            p_after=p_after,
            rationale=rationale if span else "",
            span=span,
            tokens=tokens,
            extra={"model_p_after": p_model},
        )

    # -- building the call -------------------------------------------------------------------

    def _shown_notes(self, spot: Spotlight, context: Context) -> list[str]:
        if not context.bought:
            return ["Notes already shown to readers: none."]
        parts = [f"Notes already shown to readers: {len(context.bought)}."]
        for i, shown in enumerate(context.bought, start=1):
            parts.append(f"Shown note {i} (classified {shown.classification}):")
            parts.append(spot.wrap(f"SHOWN_NOTE_{i}", shown.text))
        return parts

    def _prior_message(self, spot: Spotlight, post: PostView, context: Context) -> str:
        parts = [_call_line(spot), "TASK: PRIOR", *_subject(spot, post), *self._shown_notes(spot, context)]
        return "\n\n".join([*parts, ANSWER_LINES[PriorAnswer]])

    def _inspect_message(
        self,
        spot: Spotlight,
        post: PostView,
        context: Context,
        note: NoteView,
        text: str,
        sources: tuple[str, ...],
        p_before: float,
    ) -> str:
        parts = [
            _call_line(spot),
            "TASK: INSPECT",
            f"p_before: {clamp(p_before):.3f}",
            *_subject(spot, post),
            *self._shown_notes(spot, context),
            f"The note under inspection is classified: {note.classification}.",
            _record_line(note.track),
            spot.wrap("NOTE", text),
        ]
        if sources:
            parts.append(spot.wrap("SOURCES", "\n".join(sources)))
        parts.append(ANSWER_LINES[InspectionAnswer])
        return "\n\n".join(parts)

    def _ask(self, spot: Spotlight, user: str, schema: type[AnswerT]) -> tuple[AnswerT, int]:
        """One answer, in the most constrained format the server takes. Nothing is logged but the
        failure reason; exceptions are re-raised without their context, whose text may quote the
        completion."""
        messages = [{"role": "system", "content": self._system}, {"role": "user", "content": user}]
        deadline = time.monotonic() + self.settings.inspection_seconds
        formats = self.support.formats()
        refused: list[str] = []
        tokens = 0
        for i, fmt in enumerate(formats):
            try:
                completion = _on_event_loop(
                    self._call(messages, fmt, schema, deadline, last=i == len(formats) - 1)
                )
            except _FormatRefused as exc:
                log.warning("the judge's server refused response_format %s (HTTP %s)", fmt, exc.status)
                refused.append(fmt)
                continue
            if not isinstance(getattr(completion, "choices", None), list):
                raise JudgeError("malformed_answer")  # not a chat completion (an HTML page, say)
            self.support.learned(fmt, refused)
            usage = getattr(completion, "usage", None)
            tokens = int(getattr(usage, "total_tokens", 0) or 0)
            return _parse(completion, schema, tokens), tokens
        raise JudgeError("format_refused")  # unreachable: the last format is never skipped

    async def _call(
        self,
        messages: list[dict[str, str]],
        fmt: str,
        schema: type[BaseModel],
        deadline: float,
        *,
        last: bool,
    ) -> Any:
        """One request in format ``fmt``, retried on transport failures only, never past ``deadline``:
        it runs on the judges' event loop (:func:`_on_event_loop`), which cancels it at the deadline."""
        kwargs: dict[str, Any] = {}
        if fmt == "json_schema":
            kwargs["response_format"] = {"type": "json_schema", "json_schema": SCHEMAS[schema]}
        elif fmt == "json_object":  # llama-cpp-python reads the schema beside it; others ignore it
            kwargs["response_format"] = {"type": "json_object", "schema": SCHEMAS[schema]["schema"]}
        budget = deadline - time.monotonic()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_retries + 1) | stop_before_delay(max(0.0, budget)),
            wait=wait_exponential(multiplier=0.5, max=8),
            retry=retry_if_exception(_transient),
            reraise=True,
        )
        reason = ""
        try:
            async with asyncio.timeout(max(0.0, budget)):  # the hard cap, trickling servers included
                async for attempt in retrying:
                    with attempt:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise JudgeError("timeout")  # the inspection's time is spent
                        return await self._client.chat.completions.create(
                            model=self.model,
                            messages=messages,  # type: ignore[arg-type]
                            temperature=0,
                            max_tokens=self.settings.max_tokens,
                            timeout=min(self.settings.timeout_seconds, left),
                            **kwargs,
                        )
        except (TimeoutError, openai.APITimeoutError):
            reason = "timeout"
        except openai.RateLimitError:
            reason = "rate_limited"
        except openai.APIConnectionError:
            reason = "connection_error"
        except openai.APIStatusError as exc:
            if not last and exc.status_code in _FORMAT_REFUSALS:
                raise _FormatRefused(exc.status_code) from None  # try the next, less constrained format
            reason = f"http_{exc.status_code}"
        except openai.OpenAIError:
            reason = "client_error"
        except ValueError:  # a 200 whose body is not JSON: the client's decoder gives up
            reason = "malformed_answer"
        raise JudgeError(reason or "timeout") from None


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _event_loop() -> asyncio.AbstractEventLoop:
    """The event loop every LLM judge's requests run on: one, on a daemon thread, started on first
    use. Judges are called from plain threads (settlement, the worker, the bots' executors); running
    each request here lets ``asyncio.timeout`` cancel it at its deadline, and lets one client's
    connection pool serve every thread."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="llm-judge-loop", daemon=True).start()
        return _loop


def _on_event_loop(request: Coroutine[Any, Any, T]) -> T:
    """Run ``request`` on the judges' event loop and wait for its result in this thread."""
    return asyncio.run_coroutine_threadsafe(request, _event_loop()).result()


def _call_line(spot: Spotlight) -> str:
    """This call's spotlight values: first in the user message, after the stable system prompt."""
    return f"This call: CODE = {spot.token}, MARK = {spot.mark}"


def _parse(completion: Any, schema: type[AnswerT], tokens: int) -> AnswerT:
    """The answer in a completion: the first JSON object in the model's words, in any format."""
    if not completion.choices:
        raise JudgeError("malformed_answer", tokens)
    choice = completion.choices[0]
    message = getattr(choice, "message", None)
    if message is None or not isinstance(getattr(message, "content", None), str | None):
        raise JudgeError("malformed_answer", tokens)
    if getattr(message, "refusal", None):
        raise JudgeError("refused", tokens)
    if choice.finish_reason == "length":
        raise JudgeError("answer_truncated", tokens)
    if choice.finish_reason == "content_filter":
        raise JudgeError("content_filter", tokens)
    content = message.content or ""
    start = content.find("{")
    if start < 0:
        raise JudgeError("malformed_answer", tokens)
    try:
        obj, _ = json.JSONDecoder().raw_decode(content[start:])
        return schema.model_validate(obj)
    except (json.JSONDecodeError, pydantic.ValidationError, RecursionError):
        raise JudgeError("malformed_answer", tokens) from None


def _subject(spot: Spotlight, post: PostView) -> list[str]:
    """The thing judged: a post, or in a sub-market a note offered on a post. There "misleading"
    means the note is unreliable, and the model must be told so or it would judge the post again."""
    if post.about is None:
        return ["The post:", spot.wrap("POST", post.text)]
    return [
        "The subject is a NOTE offered on a post, not the post itself. Here P(misleading) means"
        " P(the note is unreliable: it would mislead a reader about the post). The post, then the"
        " note in question:",
        spot.wrap("POST", post.text),
    ]


def _probability(value: float, tokens: int = 0) -> float:
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise JudgeError("probability_out_of_range", tokens)
    return value


def _check_span(span: str, text: str, regions: list[Region]) -> None:
    hits = find_span(span, text)
    if not hits:
        raise JudgeError("span_not_in_note")
    if len(span) < min(MIN_SPAN_CHARS, len(text)):
        raise JudgeError("span_too_short")
    if instruction_regions(span) or any(overlaps(start, end, regions) for start, end in hits):
        raise JudgeError("span_is_instruction")


def _copied_from(rationale: str, text: str, regions: list[Region]) -> bool:
    """Whether the rationale repeats text from an instruction-like region (an echoed fake answer)."""
    if len(rationale) < MIN_SPAN_CHARS or not regions:
        return False
    return any(overlaps(start, end, regions) for start, end in find_span(rationale, text))
