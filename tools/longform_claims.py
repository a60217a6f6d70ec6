"""Build a stand-in labelled set of another shape from a claims file, for checking the embedded
judge on data it was not fitted on: ``python tools/longform_claims.py IN.jsonl OUT.jsonl``.

No packaged fact-checking data set installs offline here (the package index was searched), so
this makes one from what there is, at measurement time, and writes it outside the repository.
It is a stand-in, not a second source: the topics are the input's. What changes is the shape:

* **long evidence**: every evidence item becomes a web-page-like excerpt of 150-450 words: its own
  sentence at a random place among other sentences of the same article (the ``origin`` title; the
  input's sentences of every claim are the pool), then of other articles the same claims cite, so
  a note made from it carries the deciding sentence buried in text that decides nothing;
* **other class balance**: the accurate claims are subsampled to ``--misleading-share`` of the
  set being misleading (default two thirds, the reverse of climate-fever's);
* **disjoint claims**: ``--half odd`` keeps only claims at odd positions (fit on the even ones).

Deterministic for a ``--seed``.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any


def _article(origin: str) -> str:
    return origin.rsplit(":", 1)[0] if ":" in origin else origin


def convert(
    rows: list[dict[str, Any]], *, seed: int, misleading_share: float, half: str, words: tuple[int, int]
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    by_article: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        for ev in row["evidence"]:
            by_article[_article(str(ev.get("origin", "")))].append(ev["text"])
    articles = sorted(by_article)
    if half in ("even", "odd"):
        rows = [r for i, r in enumerate(rows) if i % 2 == (half == "odd")]
    misleading = [r for r in rows if r["label"] == "misleading"]
    accurate = [r for r in rows if r["label"] == "accurate"]
    keep = round(len(misleading) * (1 - misleading_share) / misleading_share)
    accurate = rng.sample(accurate, min(keep, len(accurate)))
    chosen = {id(r) for r in misleading + accurate}
    out = []
    for row in rows:
        if id(row) not in chosen:
            continue
        evidence = []
        for ev in row["evidence"]:
            own = _article(str(ev.get("origin", "")))
            target = rng.randint(*words)
            filler = [t for t in by_article[own] if t != ev["text"]]
            rng.shuffle(filler)
            while sum(len(t.split()) for t in filler) < target:
                filler.extend(rng.sample(by_article[rng.choice(articles)], 1))
            picked: list[str] = []
            for text in filler:
                if sum(len(t.split()) for t in picked) + len(ev["text"].split()) >= target:
                    break
                picked.append(text)
            picked.insert(rng.randint(0, len(picked)), ev["text"])
            evidence.append({**ev, "text": " ".join(picked)})
        out.append({**row, "source": f"{row.get('source', '')}-longform", "evidence": evidence})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--misleading-share", type=float, default=2 / 3)
    parser.add_argument("--half", choices=("all", "even", "odd"), default="odd")
    parser.add_argument("--min-words", type=int, default=150)
    parser.add_argument("--max-words", type=int, default=450)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.source.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = convert(
        rows,
        seed=args.seed,
        misleading_share=args.misleading_share,
        half=args.half,
        words=(args.min_words, args.max_words),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as fh:
        for row in out:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    misleading = sum(r["label"] == "misleading" for r in out)
    print(f"{len(out)} claims ({misleading} misleading) -> {args.out}")


if __name__ == "__main__":
    main()
