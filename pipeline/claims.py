"""Reading labelled claims (the format of ``shared/data/README.md``), for the simulator and eval.

Any file in the format is accepted, of any size (it is streamed); a malformed line is refused with
an error naming the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from notebazaar.pipeline.errors import ValidationError

LABELS = ("accurate", "misleading")
STANCES = ("supports", "refutes", "irrelevant")


@dataclass(frozen=True)
class Evidence:
    id: str
    text: str
    stance: str
    origin: str = ""


@dataclass(frozen=True)
class Claim:
    id: str
    post: str
    label: str
    evidence: tuple[Evidence, ...]
    source: str = ""

    @property
    def misleading(self) -> bool:
        return self.label == "misleading"

    @property
    def helpful_stance(self) -> str:
        """The stance a note needs to help a reader toward the truth."""
        return "refutes" if self.misleading else "supports"


def _parse(obj: object, where: str) -> Claim:
    if not isinstance(obj, dict):
        raise ValidationError(f"{where}: expected a JSON object")
    for key in ("id", "post", "label", "evidence"):
        if key not in obj:
            raise ValidationError(f"{where}: missing {key!r}")
    if obj["label"] not in LABELS:
        raise ValidationError(f"{where}: label must be 'accurate' or 'misleading', not {obj['label']!r}")
    if not isinstance(obj["post"], str) or not obj["post"].strip():
        raise ValidationError(f"{where}: 'post' must be non-empty text")
    if not isinstance(obj["evidence"], list):
        raise ValidationError(f"{where}: 'evidence' must be a list")
    evidence = []
    for j, ev in enumerate(obj["evidence"]):
        if not isinstance(ev, dict) or not isinstance(ev.get("text"), str):
            raise ValidationError(f"{where}: evidence {j} needs a 'text'")
        if ev.get("stance") not in STANCES:
            raise ValidationError(
                f"{where}: evidence {j} stance must be supports, refutes or irrelevant,"
                f" not {ev.get('stance')!r}"
            )
        evidence.append(
            Evidence(
                str(ev.get("id", f"{obj['id']}-{j}")), ev["text"], ev["stance"], str(ev.get("origin", ""))
            )
        )
    return Claim(str(obj["id"]), obj["post"], obj["label"], tuple(evidence), str(obj.get("source", "")))


def read_claims(path: Path, *, limit: int | None = None) -> Iterator[Claim]:
    """Yield the claims of a JSONL file; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"claims file {path} does not exist")
    count = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if limit is not None and count >= limit:
                return
            where = f"{path.name} line {number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ValidationError(f"{where}: not valid UTF-8") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValidationError(f"{where}: invalid JSON ({exc.msg})") from None
            yield _parse(obj, where)
            count += 1


def load_claims(path: Path, *, limit: int | None = None) -> list[Claim]:
    claims = list(read_claims(path, limit=limit))
    if not claims:
        raise ValidationError(f"claims file {path} holds no claims")
    return claims
