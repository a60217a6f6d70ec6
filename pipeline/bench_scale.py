"""``notebazaar bench --scale``: how a market's cost grows with the size of its community.

For each size N (10^3, 10^4, 10^5 by default) a community is built with N resolved posts, each with a
settled market, one revealed note and one shredded offer (seeded, synthetic: the benchmark's own
sentence generator, random authors among 100 informers, random resolutions and classifications), so
track records, the base rate and the retrieval index all hold a community of that size. Then markets
like the default bench's (32 sealed offers, every one inspected by the embedded judge) run on top of
it, and the report gives, per size:

- ``latency_ms_p50`` / ``latency_ms_p99``: close to reveal (the ``close_market`` call);
- ``inspection_ms``: the median time of one ``inspect`` of the embedded judge (retrieval over the
  whole index, the informer's and the community's records, the arithmetic; the market's notes are
  embedded once per market, in ``prepare``, not here);
- ``peak_rss_mb``: the peak resident memory of the process that ran the markets (model, database
  cache and index included).

The history is inserted with SQL in bulk rather than through the market (10^5 markets with the real
judge would take hours), and the index's 2N vectors (posts and revealed notes) are **synthetic**:
seeded points near the real embeddings of 64 generated sentences (a real vector plus Gaussian
noise, renormalised), written through the real :class:`notebazaar.index.retrieval.Retriever` and
its faiss index, so the index has the size, kind and neighbourhood structure of a real one without
embedding 2×10^5 texts. Records are built by :func:`notebazaar.pipeline.records.recount` (the
migration's path). Everything the measured markets do is real: the model, the judge, SQL, faiss.

Each size is built in one child process and measured in another, so ``peak_rss_mb`` is the peak of
a process serving that community, not of the one that built it.
"""

from __future__ import annotations

import logging
import random
import resource
import shutil
import statistics
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from notebazaar.pipeline.config import Settings

log = logging.getLogger(__name__)

HISTORY_INFORMERS = 100
ANCHORS = 64
NOISE = 0.03  # per dimension: |noise| ~ 0.6 over 384 dimensions, cosine ~0.7 between two near one anchor
WARMUP_MARKETS = 2


class SyntheticEmbedder:
    """Seeded vectors near real ones: each text maps (by a hash) to one of a few real embeddings,
    plus Gaussian noise. Same name, dimension and hash as the real model, so the index it fills is
    the one the real retriever loads."""

    def __init__(self, real: Any, anchors: np.ndarray, seed: int) -> None:
        self.name = real.name
        self.dim = real.dim
        self.sha256 = getattr(real, "sha256", "")
        self.anchors = anchors
        self.seed = seed

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            h = zlib.crc32(text.encode("utf-8"))
            noise = np.random.default_rng((self.seed, h)).normal(0.0, NOISE, self.dim)
            v = self.anchors[h % len(self.anchors)] + noise
            out[i] = v / np.linalg.norm(v)
        return out


def _settings(data: dict[str, Any]) -> Settings:
    return Settings(**data)


def _embedder(settings: Settings) -> Any:
    from notebazaar.index.embed import get_embedder

    return get_embedder(
        settings.index.model, batch_size=settings.index.batch_size, sha256=settings.index.model_sha256
    )


def build(
    folder: Path, settings_data: dict[str, Any], posts: int, offers: int, markets: int, seed: int
) -> dict[str, float]:
    """The community of ``posts`` resolved posts in ``folder`` (database and index files)."""
    from notebazaar.index.retrieval import Retriever
    from notebazaar.pipeline import bench, community, records
    from notebazaar.pipeline.db import open_db, write

    settings = _settings(settings_data)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if folder.exists():
        shutil.rmtree(folder)
    db = open_db(folder / "scale.db")
    community_id, informers = bench.bench_community(db, offers=offers, markets=markets + WARMUP_MARKETS)
    authors = informers + [community.create_account(db, f"scale_author{i}") for i in range(HISTORY_INFORMERS)]
    rng = random.Random(seed)
    texts = bench.sentences(2 * posts, seed=seed + 11)
    now = time.time() - 86_400
    classes = ("misleading", "not_misleading")
    with write(db):
        first_post = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM posts").fetchone()[0]) + 1
        first_market = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM markets").fetchone()[0]) + 1
        first_offer = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM offers").fetchone()[0]) + 1
        post_rows, market_rows, offer_rows, reveal_rows, doc_rows = [], [], [], [], []
        for i in range(posts):
            post_id, market_id, offer_id = first_post + i, first_market + i, first_offer + 2 * i
            resolution, classification = rng.choice(classes), rng.choice(classes)
            author, other = rng.choice(authors), rng.choice(authors)
            t = now + i * 1e-3
            post_rows.append((post_id, community_id, "scale", f"h{i}", texts[2 * i], t, resolution, t))
            market_rows.append((market_id, post_id, community_id, t, t, t, t, 0.5, 0.5))
            offer_rows.append((offer_id, market_id, author, "bought", "bought", t))
            offer_rows.append((offer_id + 1, market_id, other, "shredded", "worth_less_than_price", t))
            reveal_rows.append(
                (i + 1, offer_id, market_id, post_id, author, classification, texts[2 * i + 1], t)
            )
            doc_rows.append(("post", post_id, community_id, texts[2 * i], t))
            doc_rows.append(("reveal", i + 1, community_id, texts[2 * i + 1], t))
        db.conn.executemany(
            "INSERT INTO posts (id, community_id, platform, external_id, text, created_at, resolution,"
            " resolved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            post_rows,
        )
        db.conn.executemany(
            "INSERT INTO markets (id, post_id, community_id, depth, status, attention_slots, reserve,"
            " price_of_information, auction, budget, opened_at, closes_at, closed_at, settled_at, prior,"
            " belief) VALUES (?, ?, ?, 0, 'settled', 3, 2, 100, 'gsp', 0, ?, ?, ?, ?, ?, ?)",
            market_rows,
        )
        db.conn.executemany(
            "INSERT INTO offers (id, market_id, informer_id, status, bid, price, commitment, submitted_at,"
            " rank, charge, outcome) VALUES (?, ?, ?, ?, 2, 5, 'synthetic', ?, 1, 0, ?)",
            [(o, m, a, s, t, out) for o, m, a, s, out, t in offer_rows],
        )
        db.conn.executemany(
            "INSERT INTO reveals (id, offer_id, market_id, post_id, informer_id, classification, text,"
            " price, revealed_at) VALUES (?, ?, ?, ?, ?, ?, ?, 5, ?)",
            reveal_rows,
        )
        db.conn.executemany(
            "INSERT INTO documents (kind, ref_id, community_id, text, created_at) VALUES (?, ?, ?, ?, ?)",
            doc_rows,
        )
    timings["insert_s"] = time.perf_counter() - started
    started = time.perf_counter()
    with write(db):
        records.recount(db)  # the counters, through the migration's path
    timings["recount_s"] = time.perf_counter() - started
    started = time.perf_counter()
    real = _embedder(settings)
    anchors = real.encode(bench.sentences(ANCHORS, seed=seed + 13))
    retriever = Retriever(db, folder, settings.index, embedder=SyntheticEmbedder(real, anchors, seed))
    retriever.sync()
    timings["index_s"] = time.perf_counter() - started
    timings["index_kind_ivf"] = float(retriever.index.is_ivf)
    db.close()
    return timings


def measure(
    folder: Path, settings_data: dict[str, Any], posts: int, offers: int, markets: int, seed: int
) -> dict[str, Any]:
    """Run ``markets`` markets on the community in ``folder``; the row of the report for it."""
    from notebazaar.index.retrieval import Retriever
    from notebazaar.pipeline import bench
    from notebazaar.pipeline.db import open_db
    from notebazaar.pipeline.judge.local import LocalJudge

    settings = _settings(settings_data)
    db = open_db(folder / "scale.db")
    judge = LocalJudge(
        db, Retriever(db, folder, settings.index, embedder=_embedder(settings)), params=bench.BENCH_JUDGE
    )
    inspections: list[float] = []
    inner = judge.inspect

    def timed_inspect(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            inspections.append((time.perf_counter() - started) * 1000)

    judge.inspect = timed_inspect  # type: ignore[method-assign]
    community_id = int(db.execute("SELECT id FROM communities WHERE slug = 'bench'").fetchone()[0])
    informers = [
        int(r[0])
        for r in db.execute("SELECT id FROM accounts WHERE handle LIKE 'bench_informer%' ORDER BY id")
    ]
    rng = random.Random(seed)
    total = markets + WARMUP_MARKETS
    post_texts = bench.sentences(total, seed=seed + 1)
    notes = bench.sentences(total * offers, seed=seed + 2)
    latencies = []
    for m in range(total):
        if m == WARMUP_MARKETS:
            inspections.clear()
        timing = bench.run_market(
            db,
            judge,
            settings,
            community_id,
            informers,
            post_texts[m],
            notes[m * offers : (m + 1) * offers],
            rng,
            f"s{m}",
        )
        if m >= WARMUP_MARKETS:
            latencies.append(timing.latency_ms)
    db.close()
    return {
        "posts": posts,
        "latency_ms_p50": float(np.percentile(latencies, 50)),
        "latency_ms_p99": float(np.percentile(latencies, 99)),
        "inspection_ms": statistics.median(inspections),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _in_child(func: Any, *args: Any) -> Any:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(func, *args).result()


def run_scale(
    folder: Path,
    settings: Settings,
    *,
    sizes: Sequence[int],
    markets: int = 20,
    offers: int = 32,
    seed: int = 0,
) -> dict[str, Any]:
    """The ``{"scale": [...]}`` report, one row per size. State lives in a ``scale/`` folder beside
    the database and is removed afterwards."""
    work = Path(folder) / "scale"
    data = settings.model_dump()
    rows = []
    try:
        for posts in sizes:
            path = work / str(posts)
            timings = _in_child(build, path, data, posts, offers, markets, seed)
            log.info("scale %s: built in %s", posts, {k: round(v, 2) for k, v in timings.items()})
            rows.append(_in_child(measure, path, data, posts, offers, markets, seed))
            shutil.rmtree(path, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"scale": rows}
