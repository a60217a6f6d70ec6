"""``notebazaar bench --profile``: where a market's time goes besides the model.

One more run of the benchmark's markets under cProfile. The embedding model runs in a thread of its
own meanwhile (cProfile follows only the thread it was started in), so the profile holds the
market's own work (SQL, sealing, the auction, the judge's arithmetic, retrieval, faiss) and the
model shows up only as the time spent waiting for it. The report groups the rest by where it is
spent (our modules, sqlite3, sqlite-utils, faiss, ...) and lists the functions with the most time
of their own; the raw profile is written beside it for ``python -m pstats`` or snakeviz.
"""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

TOP = 25
_WAITING = ("threading.py", "concurrent/futures", "_thread.lock")


class ModelThread:
    """An embedder whose ``encode`` runs in a worker thread, out of the profiler's sight."""

    def __init__(self, inner: Any, pool: ThreadPoolExecutor) -> None:
        self.inner = inner
        self.pool = pool
        self.dim = inner.dim
        self.name = inner.name

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.pool.submit(self.inner.encode, texts).result()


def _where(func: tuple[str, int, str]) -> str:
    """The group a function's own time counts in."""
    path, _, name = func
    path = path.replace("\\", "/")
    if "sqlite3." in name:
        return "sqlite3 (SQLite itself: statements, commits)"
    if "/sqlite_utils/" in path:
        return "sqlite-utils"
    if "faiss" in path or "faiss" in name:
        return "faiss"
    if "/cryptography/" in path or "cryptography" in name:
        return "cryptography (AES-GCM)"
    for package in ("pipeline", "index", "cli", "bot", "web"):
        marker = f"/{package}/"
        if marker in path and "site-packages" not in path.split(marker)[0]:
            return f"notebazaar.{package}.{path.rsplit(marker, 1)[1].removesuffix('.py').replace('/', '.')}"
    if "/numpy/" in path or "numpy" in name:
        return "numpy"
    return "other (Python, stdlib)"


def _label(func: tuple[str, int, str]) -> str:
    path, line, name = func
    if path == "~":
        return name
    short = path.replace("\\", "/")
    for marker in ("/site-packages/", "/pipeline/", "/index/", "/lib/python3"):
        if marker in short:
            short = marker.strip("/") + "/" + short.split(marker, 1)[1]
            break
    return f"{short}:{line}({name})"


def summarise(stats: pstats.Stats, markets: int) -> dict[str, Any]:
    """The profile as numbers: total, the model's share, and the rest by group and by function."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in raw.values())
    waiting = sum(tt for func, (_, _, tt, _, _) in raw.items() if any(w in _label(func) for w in _WAITING))
    groups: dict[str, float] = {}
    functions = []
    for func, (_, calls, tt, ct, _) in raw.items():
        if any(w in _label(func) for w in _WAITING):
            continue
        groups[_where(func)] = groups.get(_where(func), 0.0) + tt
        functions.append((tt, calls, ct, _label(func)))
    rest = total - waiting
    functions.sort(reverse=True)
    return {
        "markets": markets,
        "seconds_profiled": total,
        "seconds_waiting_for_the_model": waiting,
        "seconds_besides_the_model": rest,
        "ms_besides_the_model_per_market": 1000 * rest / markets,
        "by_where": [
            {"where": name, "seconds": secs, "share": secs / rest if rest else 0.0}
            for name, secs in sorted(groups.items(), key=lambda kv: -kv[1])
        ],
        "top_functions": [
            {"function": label, "own_seconds": tt, "calls": calls, "cumulative_seconds": ct}
            for tt, calls, ct, label in functions[:TOP]
        ],
    }


def report(summary: dict[str, Any]) -> str:
    lines = [
        f"Markets profiled: {summary['markets']}",
        f"Profiled: {summary['seconds_profiled']:.2f} s; waiting for the model (its own thread):"
        f" {summary['seconds_waiting_for_the_model']:.2f} s; the market's own work:"
        f" {summary['seconds_besides_the_model']:.2f} s"
        f" ({summary['ms_besides_the_model_per_market']:.1f} ms per market, cProfile overhead included)",
        "",
        "Where the market's own time goes:",
    ]
    lines += [f"  {g['share']:6.1%}  {g['seconds']:8.3f} s  {g['where']}" for g in summary["by_where"]]
    lines += ["", f"Top {TOP} functions by own time (calls, own s, cumulative s):"]
    lines += [
        f"  {f['calls']:>8}  {f['own_seconds']:8.3f}  {f['cumulative_seconds']:8.3f}  {f['function']}"
        for f in summary["top_functions"]
    ]
    return "\n".join(lines) + "\n"


def profile_markets(run: Callable[[Any], dict[str, Any]], embedder: Any, out: Path) -> dict[str, Any]:
    """Run ``run(embedder)`` (the benchmark's markets) under cProfile; write the report to ``out``
    and the raw profile to ``out`` with the suffix ``.prof``; return the summary."""
    profiler = cProfile.Profile()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="model") as pool:
        threaded = ModelThread(embedder, pool)
        profiler.enable()
        try:
            result = run(threaded)
        finally:
            profiler.disable()
    out.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(str(out.with_suffix(".prof")))
    summary = summarise(pstats.Stats(profiler), len(result["latencies"]))
    out.write_text(report(summary), encoding="utf-8")
    return summary
