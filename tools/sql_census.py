"""What a bench market's SQL costs, statement by statement: ``python tools/sql_census.py``.

Runs ``notebazaar bench``'s markets (32 offers, all inspected, the embedded judge and the real model)
on a scratch database, warms it with ``--warm`` markets, then times every statement that goes
through sqlite-utils' ``Database.execute`` over the next ``--markets`` markets (the timing wraps
each call, so it adds a little of its own) and prints, per market, the statements of each kind
(numbers and strings replaced by ``?``), their count and their milliseconds, most costly first. Run
it on another checkout with ``PYTHONPATH`` pointing at that checkout's package. A measurement aid
for docs/scaling.md, not part of the product.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import sqlite_utils

from notebazaar.index.embed import get_embedder
from notebazaar.index.retrieval import Retriever
from notebazaar.pipeline import bench
from notebazaar.pipeline.config import load_settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.judge.local import LocalJudge

_LITERAL = re.compile(r"'[^']*'|\b\d+(?:\.\d+)?\b")
_SPACE = re.compile(r"\s+")


def kind_of(sql: str) -> str:
    """A statement with its literals replaced by ``?``: what its kind is called in the census."""
    return _SPACE.sub(" ", _LITERAL.sub("?", sql)).strip()


def census(
    *, warm: int, markets: int, offers: int, embedder: Any = None
) -> tuple[float, dict[str, list[float]]]:
    """Milliseconds per market end to end, and for each kind of statement its count and
    milliseconds per market, over ``markets`` markets after ``warm`` of them."""
    settings = load_settings()
    if embedder is None:
        index = settings.index
        embedder = get_embedder(index.model, batch_size=index.batch_size, sha256=index.model_sha256)
    folder = Path(tempfile.mkdtemp(prefix="sql-census-"))
    try:
        db = open_db(folder / "bench.db")
        retriever = Retriever(db, folder, settings.index, embedder=embedder)
        judge = LocalJudge(db, retriever, params=bench.BENCH_JUDGE)
        community_id, informers = bench.bench_community(db, offers=offers, markets=warm + markets)
        rng = random.Random(0)
        posts = bench.sentences(warm + markets, seed=1)
        notes = bench.sentences((warm + markets) * offers, seed=2)

        def market(m: int) -> None:
            texts = notes[m * offers : (m + 1) * offers]
            bench.run_market(db, judge, settings, community_id, informers, posts[m], texts, rng, f"b{m}")

        for m in range(warm):
            market(m)
        seconds: Counter[str] = Counter()
        calls: Counter[str] = Counter()
        plain = sqlite_utils.Database.execute

        def timed(self: sqlite_utils.Database, sql: str, parameters: Any = None) -> Any:
            started = time.perf_counter()
            try:
                return plain(self, sql, parameters)
            finally:
                kind = kind_of(sql)
                seconds[kind] += time.perf_counter() - started
                calls[kind] += 1

        sqlite_utils.Database.execute = timed  # type: ignore[method-assign]
        try:
            started = time.perf_counter()
            for m in range(warm, warm + markets):
                market(m)
            total = (time.perf_counter() - started) * 1000 / markets
        finally:
            sqlite_utils.Database.execute = plain  # type: ignore[method-assign]
        db.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return total, {k: [calls[k] / markets, seconds[k] * 1000 / markets] for k in seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=20, help="markets run before the census (default 20)")
    parser.add_argument("--markets", type=int, default=20, help="markets timed (default 20)")
    parser.add_argument("--offers", type=int, default=32, help="offers per market (default 32)")
    parser.add_argument("--top", type=int, default=30, help="kinds of statement shown (default 30)")
    args = parser.parse_args()
    total, kinds = census(warm=args.warm, markets=args.markets, offers=args.offers)
    sql = sum(ms for _, ms in kinds.values())
    count = sum(n for n, _ in kinds.values())
    print(f"{total:.1f} ms per market; SQL {sql:.1f} ms in {count:.0f} statements")
    for kind, (n, ms) in sorted(kinds.items(), key=lambda item: -item[1][1])[: args.top]:
        print(f"{ms:7.3f} ms {n:6.0f}  {kind[:110]}")


if __name__ == "__main__":
    main()
