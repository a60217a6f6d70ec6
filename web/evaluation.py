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
from notebazaar.pipeline.errors import ValidationError
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
    except NotImplementedError as exc:
        raise ValidationError(f"evaluation is not available in this build yet ({exc})") from None
    except Exception as exc:  # a bad file or an unreachable judge: say so, change nothing
        log.exception("evaluation of prompt %s failed", prompt["id"])
        raise ValidationError(f"evaluation failed: {exc}") from None
    try:
        table = evaluate.format_table([(label, result)])
    except Exception:
        log.exception("formatting the evaluation table failed")
        table = None
    return {"result": result, "table": table, "label": label, "file": file_label}
