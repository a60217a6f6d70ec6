"""``notebazaar judge check``: can the configured judge work? One canned probe, end to end.

The probe is a post and a note that plainly settles it (public, made-up text: never a real note).
The judge reads the prior and inspects the note exactly as settlement would, and the check reports
what the server took (the answer format it fell back to, if any), the tokens, the seconds, and the
verdict. It fails, with the reason, when the judge cannot give an answer at all: the server is
unreachable, too slow for ``inspection_seconds``, refuses every format, or answers with something
that does not parse or is no probability. An answer that parses but does not hold up (its quote is
not in the note, say) is a warning: the judge works, and will buy little.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from notebazaar.pipeline.judge import Context, Judge, JudgeError, NoteView, PostView

PROBE_POST = PostView(0, 0, "The city council never passed its 2024 budget; it just spent the money.")
PROBE_NOTE = NoteView(
    0,
    0,
    "misleading",
    "The council's published minutes of 3 May 2024 record the 2024 budget passing by 7 votes to 2"
    " (agenda item 4.1).",
    ("https://example.org/council/minutes-2024-05-03",),
)
# Reasons that mean the judge answered, but its answer did not hold up: it works, and buys little.
ANSWER_CHECKS = frozenset(
    {
        "span_not_in_note",
        "span_too_short",
        "span_is_instruction",
        "answer_copied_from_note",
        "note_contains_instructions",
    }
)


@dataclass
class CheckReport:
    judge: str
    ok: bool
    reason: str = ""
    warning: str = ""
    response_format: str | None = None
    refused_formats: list[str] = field(default_factory=list)
    prior: float | None = None
    p_after: float | None = None
    tokens: int = 0
    seconds: float = 0.0
    prior_seconds: float = 0.0
    inspection_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_judge(judge: Judge) -> CheckReport:
    """Run the probe through ``judge``; never raises for a judge failure (the report says it)."""
    report = CheckReport(judge=judge.name, ok=False)
    started = time.perf_counter()
    try:
        report.prior = judge.prior(PROBE_POST, Context())
    except JudgeError as exc:
        report.reason = f"prior: {exc.reason}"
    report.prior_seconds = round(time.perf_counter() - started, 3)
    if not report.reason:
        p_before = report.prior if report.prior is not None else 0.5
        prepare, forget = getattr(judge, "prepare", None), getattr(judge, "forget", None)
        began = time.perf_counter()
        try:
            if prepare is not None:
                prepare(PROBE_POST, [PROBE_NOTE])
            verdict = judge.inspect(PROBE_POST, Context(), PROBE_NOTE, p_before)
            report.p_after, report.tokens = verdict.p_after, verdict.tokens
            if verdict.no_weight:
                report.warning = f"the probe note got no weight ({verdict.no_weight})"
            elif verdict.p_after <= p_before:
                report.warning = "the probe note, which settles the post, did not move the judge"
            report.ok = True
        except JudgeError as exc:
            report.tokens = exc.tokens
            if exc.reason in ANSWER_CHECKS:
                report.ok, report.warning = (
                    True,
                    f"the judge answered, but its answer failed a check ({exc.reason})",
                )
            else:
                report.reason = f"inspection: {exc.reason}"
        finally:
            if forget is not None:
                forget()
        report.inspection_seconds = round(time.perf_counter() - began, 3)
    support = getattr(judge, "support", None)
    if support is not None:
        report.response_format = support.format
        report.refused_formats = list(support.refused)
    report.seconds = round(time.perf_counter() - started, 3)
    return report
