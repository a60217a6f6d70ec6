"""The LLM judge: any OpenAI-compatible Chat Completions server (OpenAI, vLLM, llama.cpp, Ollama).

One stateless call per inspection: a system message (the community's versioned prompt, with this
call's spotlight token and marker filled in) and one user message (the task and the spotlighted
data). No conversation history, no cache, no log of prompts or completions; only token counts and
reasons are logged. The model answers through a JSON-schema response format at temperature 0, and
the code then checks the answer (see :meth:`LLMJudge.inspect`): the model estimates, code decides.

Failures of any kind (timeout, HTTP error after the client's own retries, refusal, malformed JSON,
a span that is not in the note) raise :class:`~notebazaar.pipeline.judge.JudgeError` with a short reason; the
offer is then not bought and the market still settles.
"""

from __future__ import annotations

import logging
import math
import os
from string import Template
from typing import Any, TypeVar

import openai
import pydantic
from pydantic import BaseModel, ConfigDict, Field

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
MAX_NOTE_CHARS = 8_000  # after sanitizing; submission limits are far lower, this guards the judge
MIN_SPAN_CHARS = 12  # a shorter "quote" (a word or two) can be found in almost any note
MAX_RATIONALE_CHARS = 500
# A post alone never convinces a reader beyond these: the prior is read from text its author wrote,
# and an extreme prior would make any correcting note look enormously informative.
PRIOR_MIN, PRIOR_MAX = 0.1, 0.9

AnswerT = TypeVar("AnswerT", bound=BaseModel)


class InspectionAnswer(BaseModel):
    """The judge's answer to an INSPECT task."""

    model_config = ConfigDict(extra="forbid")
    p_after: float = Field(description="P(post is misleading) after the note, strictly between 0 and 1")
    span: str = Field(description="The shortest verbatim quote of the note that carries its evidence, or ''")
    rationale: str = Field(description="One or two sentences for readers on why the note helps")


class PriorAnswer(BaseModel):
    """The judge's answer to a PRIOR task."""

    model_config = ConfigDict(extra="forbid")
    p: float = Field(description="P(post is misleading) before any new note, strictly between 0 and 1")


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
    """A judge backed by an OpenAI-compatible model. Safe to share between threads: it holds only
    its settings, its prompt template and the HTTP client, none of which change after construction."""

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
        self._prompt = Template(prompt_text)
        self._client = openai.OpenAI(
            base_url=settings.base_url,
            api_key=os.environ.get(settings.api_key_env) or PLACEHOLDER_KEY,
            timeout=settings.timeout_seconds,
            max_retries=settings.max_retries,
            http_client=http_client,
        )

    def __repr__(self) -> str:
        return f"LLMJudge(name={self.name!r}, model={self.model!r})"

    # -- the two questions -------------------------------------------------------------------

    def prior(self, post: PostView, context: Context) -> float:
        """P(misleading) from the post and the notes already bought, in one stateless call.

        Never raises: settlement asks once per market and a failure must not stop the market, so
        any failure, or a post that itself carries instruction-like text (its author could steer
        the prior), gives the neutral 0.5. The answer is kept within [0.1, 0.9].
        """
        text = sanitize(post.text)
        if instruction_regions(text) or len(text) > MAX_NOTE_CHARS:
            log.info("post %s: prior fixed at 0.5 (post not eligible for a model prior)", post.id)
            return 0.5
        try:
            spot = Spotlight.fresh([text, *(n.text for n in context.bought)])
            answer, tokens = self._ask(spot, self._prior_message(spot, post, context), PriorAnswer)
            p = _probability(answer.p)
        except JudgeError as exc:
            log.info("post %s: prior fixed at 0.5 (%s)", post.id, exc.reason)
            return 0.5
        log.info("post %s: prior from model (%s tokens)", post.id, tokens)
        return min(PRIOR_MAX, max(PRIOR_MIN, p))

    def inspect(self, post: PostView, context: Context, note: NoteView, p_before: float) -> Verdict:
        """P(misleading) after the note, checked in code. Raises JudgeError with a reason on refusal.

        Checks, in order (each refusal names its reason):

        1. the answer parses under the schema, is not a refusal, and p_after is a probability
           (``malformed_answer``, ``refused``, ``probability_out_of_range``);
        2. a non-empty span is a verbatim quote of the note (``span_not_in_note``), long enough to
           mean something (``span_too_short``), and neither reads as an instruction itself nor lies
           in an instruction-like region of the note (``span_is_instruction``);
        3. the rationale is not lifted from an instruction-like region, as when a model echoes a
           fake JSON answer planted in the note (``answer_copied_from_note``);
        4. the note (or its sources) holds no instruction-like region at all
           (``note_contains_instructions``): an obedient model could quote an innocent sentence
           of such a note, so the note itself is refused;
        5. belief moves only towards the note's own classification (``moved_against_classification``).

        Then p_after is clamped to [0.01, 0.99]. An empty span means "no evidence": p_after is set
        to p_before, whatever number the model gave.
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
        p_model = _probability(answer.p_after)
        regions = instruction_regions(text)
        span = sanitize(spot.unmark(answer.span))
        rationale = sanitize(spot.unmark(answer.rationale))[:MAX_RATIONALE_CHARS]
        if span:
            _check_span(span, text, regions)
        if _copied_from(rationale, text, regions):
            raise JudgeError("answer_copied_from_note")
        if regions or has_instructions(note.text) or any(has_instructions(s) for s in note.sources):
            raise JudgeError("note_contains_instructions")
        p_before = clamp(p_before)
        p_after = clamp(p_model) if span else p_before
        if (note.classification == "misleading" and p_after < p_before) or (
            note.classification == "not_misleading" and p_after > p_before
        ):
            raise JudgeError("moved_against_classification")
        log.info("offer %s inspected (%s tokens)", note.offer_id, tokens)
        return Verdict(
            p_before=p_before,
            p_after=p_after,
            rationale=rationale if span else "",
            span=span,
            tokens=tokens,
            extra={"model_p_after": p_model},
        )

    # -- building the call -------------------------------------------------------------------

    def _system(self, spot: Spotlight) -> str:
        return self._prompt.safe_substitute(token=spot.token, mark=spot.mark)

    def _shown_notes(self, spot: Spotlight, context: Context) -> list[str]:
        if not context.bought:
            return ["Notes already shown to readers: none."]
        parts = [f"Notes already shown to readers: {len(context.bought)}."]
        for i, shown in enumerate(context.bought, start=1):
            parts.append(f"Shown note {i} (classified {shown.classification}):")
            parts.append(spot.wrap(f"SHOWN_NOTE_{i}", shown.text))
        return parts

    def _prior_message(self, spot: Spotlight, post: PostView, context: Context) -> str:
        parts = ["TASK: PRIOR", *_subject(spot, post), *self._shown_notes(spot, context)]
        return "\n\n".join(parts)

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
        return "\n\n".join(parts)

    def _ask(self, spot: Spotlight, user: str, schema: type[AnswerT]) -> tuple[AnswerT, int]:
        """One Chat Completions call with a JSON-schema response format. Nothing is logged but the
        failure reason; exceptions are re-raised without their context, whose text may quote the
        completion."""
        reason = ""
        try:
            completion = self._client.chat.completions.parse(
                model=self.model,
                messages=[
                    {"role": "system", "content": self._system(spot)},
                    {"role": "user", "content": user},
                ],
                response_format=schema,
                temperature=0,
            )
        except openai.APITimeoutError:
            reason = "timeout"
        except openai.RateLimitError:
            reason = "rate_limited"
        except openai.APIConnectionError:
            reason = "connection_error"
        except openai.APIStatusError as exc:
            reason = f"http_{exc.status_code}"
        except openai.LengthFinishReasonError:
            reason = "answer_truncated"
        except openai.ContentFilterFinishReasonError:
            reason = "content_filter"
        except pydantic.ValidationError:
            reason = "malformed_answer"
        except openai.OpenAIError:
            reason = "client_error"
        if reason:
            raise JudgeError(reason) from None
        tokens = completion.usage.total_tokens if completion.usage else 0
        if not completion.choices:
            raise JudgeError("malformed_answer")
        message = completion.choices[0].message
        if message.refusal:
            raise JudgeError("refused")
        if message.parsed is None:
            raise JudgeError("malformed_answer")
        return message.parsed, tokens


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


def _probability(value: float) -> float:
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise JudgeError("probability_out_of_range")
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
