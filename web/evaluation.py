"""Running ``pipeline.evaluate`` for the console and the API: picking the labelled file safely and
turning failures into messages a moderator can act on.

The labelled file is either a path on the server (only an existing ``.jsonl`` file) or an upload,
written to a temporary ``.jsonl`` file that is removed afterwards.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from notebazaar.pipeline import evaluate
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.errors import JudgeUnavailable, NotebazaarError, ValidationError
from notebazaar.pipeline.simulate import judge_failure
from notebazaar.pipeline.validation import check_text

log = logging.getLogger(__name__)

JUDGE_KINDS = ("local", "openai", "simple")
MAX_UPLOAD_BYTES = 20 * 1024 * 1024


def server_file(path: str) -> Path:
    """An existing ``.jsonl`` file on the server, or a clear refusal."""
    if not (path or "").strip():
        raise ValidationError("give the path of a labelled .jsonl file on the server, or upload one")
    text = check_text("the path", path, max_chars=4096)  # a NUL would crash the file system call
    resolved = Path(text).expanduser().resolve()
    if resolved.suffix != ".jsonl":
        raise ValidationError(f"{text!r} is not a .jsonl file")
    if not resolved.is_file():
        raise ValidationError(f"no file at {text!r} on the server")
    return resolved


def run(
    settings: Settings,
    *,
    prompt: dict[str, Any],
    judge_kind: str,
    limit: int | None,
    path: str = "",
    upload: bytes | None = None,
) -> dict[str, Any]:
    """Evaluate ``prompt`` (a prompts row) and return ``{"result", "table", "label", "file"}``."""
    if judge_kind not in JUDGE_KINDS:
        raise ValidationError(f"judge kind must be one of {', '.join(JUDGE_KINDS)}, not {judge_kind!r}")
    if limit is not None and limit < 1:
        raise ValidationError(f"limit must be at least 1, not {limit}")
    if upload is not None:
        if len(upload) > MAX_UPLOAD_BYTES:
            raise ValidationError(f"the upload is over {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB")
        if not upload.strip():
            raise ValidationError("the uploaded file is empty")
        with tempfile.TemporaryDirectory(prefix="notebazaar-eval-") as folder:
            claims = Path(folder) / "upload.jsonl"
            claims.write_bytes(upload)
            return _evaluate(settings, claims, "upload", prompt, judge_kind, limit)
    claims = server_file(path)
    return _evaluate(settings, claims, str(claims), prompt, judge_kind, limit)


def _evaluate(
    settings: Settings,
    claims: Path,
    file_label: str,
    prompt: dict[str, Any],
    judge_kind: str,
    limit: int | None,
) -> dict[str, Any]:
    label = f"{prompt['name']} v{prompt['version']} ({judge_kind})"
    try:
        result = evaluate.evaluate(
            claims, settings=settings, judge_kind=judge_kind, prompt_text=prompt["text"], limit=limit
        )
    except NotebazaarError:
        raise  # a malformed file, named by line
    except Exception as exc:  # a bug, or a judge that broke in a way it should not: say so
        log.exception("evaluation of prompt %s failed", prompt["id"])
        raise ValidationError(f"evaluation failed: {type(exc).__name__}") from None
    failure = judge_failure(result)
    if failure:  # never a normal-looking table for a run in which the judge answered nothing
        log.warning("evaluation of prompt %s: %s", prompt["id"], failure)
        raise JudgeUnavailable(f"The evaluation failed: {failure}. Nothing was measured.")
    try:
        table = evaluate.format_table([(label, result)])
    except Exception:
        log.exception("formatting the evaluation table failed")
        table = None
    errors = result.get("judge_errors") or {}
    warnings = []
    if errors:
        warnings.append(
            f"{sum(errors.values())} of {result.get('judge_calls', '?')} judge calls failed"
            f" ({', '.join(f'{k}: {v}' for k, v in sorted(errors.items(), key=lambda kv: -kv[1]))});"
            " those offers were not bought, so the figures understate what the judge would do."
        )
    return {
        "result": result,
        "table": table,
        "rows": evaluate.quality_rows([(label, result)]),
        "reads": evaluate.reads_line(judge_kind),
        "warnings": warnings,
        "label": label,
        "file": file_label,
    }
