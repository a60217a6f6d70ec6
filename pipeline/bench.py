"""``notebazaar bench``: speed measured in one run, so the ratios compare like with like.

- ``embed_per_second``: raw throughput of the embedding model on this machine (batches of
  ``index.batch_size`` note-length sentences);
- ``markets_per_second``: end to end with the embedded judge — open, N sealed offers, close,
  auction, inspections, settlement, reveal — on a fresh database each repeat;
- ``embeds_per_market``: texts the pipeline embedded per market (counted at the embedder);
- ``pipeline_vs_embed_ratio`` = markets_per_second × embeds_per_market / embed_per_second: the share
  of the model's raw speed the whole pipeline keeps (1.0 would mean the market costs nothing beyond
  embedding);
- ``ledger_transfers_per_second``: single-move transactions, each its own atomic commit;
- ``decision_latency_ms``: close to reveal for one market (``p50``, ``p99``).

Every figure is the median over ``repeats`` runs. State lives in a ``bench/`` folder beside the
database and is removed afterwards.
"""

from __future__ import annotations

import random
import shutil
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from notebazaar.pipeline import community, ledger, market
from notebazaar.pipeline.config import MarketSettings, Settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.settlement import close_market

_WORDS = [
    "climate",
    "temperature",
    "study",
    "data",
    "report",
    "ocean",
    "ice",
    "record",
    "warming",
    "carbon",
    "emissions",
    "average",
    "decade",
    "scientists",
    "satellite",
    "measured",
    "global",
    "rise",
    "level",
    "sea",
    "arctic",
    "policy",
    "energy",
    "solar",
    "vaccine",
    "trial",
    "health",
    "risk",
    "population",
    "growth",
    "rate",
    "percent",
    "evidence",
    "source",
    "survey",
]


def sentences(n: int, *, seed: int = 0, words: int = 24) -> list[str]:
    """Deterministic note-length sentences (about as long as a short community note)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "." for _ in range(n)]


class CountingEmbedder:
    """Wraps an embedder and counts the texts it encodes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.name = inner.name
        self.count = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.count += len(texts)
        return self.inner.encode(texts)


def _embed_rate(embedder: Any, texts: list[str]) -> float:
    started = time.perf_counter()
    embedder.encode(texts)
    return len(texts) / (time.perf_counter() - started)


def _markets_run(
    folder: Path, settings: Settings, embedder: Any, *, markets: int, offers: int, seed: int
) -> dict[str, Any]:
    from notebazaar.index.retrieval import Retriever
    from notebazaar.pipeline.judge.local import LocalJudge

    if folder.exists():
        shutil.rmtree(folder)
    db = open_db(folder / "bench.db")
    counter = CountingEmbedder(embedder)
    judge = LocalJudge(db, Retriever(db, folder, settings.index, embedder=counter))
    com = community.create_community(
        db,
        "bench",
        settings=MarketSettings(
            attention_slots=offers,
            reserve=1,
            price_of_information=400,
            budget_per_market=10_000,
            auction="gsp",
        ),
    )
    funder = community.create_account(db, "bench_funder")
    community.mint(db, funder, 10_000 * (markets + 1), key="bench:mint")
    community.fund_pool(db, com.id, funder, 10_000 * (markets + 1), key="bench:fund")
    informers = []
    for i in range(offers):
        informer = community.create_account(db, f"bench_informer{i}")
        community.mint(db, informer, 1_000_000, key=f"bench:mint:{i}")
        informers.append(informer)
    rng = random.Random(seed)
    posts = sentences(markets, seed=seed + 1)
    notes = sentences(markets * offers, seed=seed + 2)
    latencies = []
    counter.count = 0
    started = time.perf_counter()
    for m in range(markets):
        post_id = community.add_post(db, com.id, posts[m], platform="bench", external_id=f"b{m}")
        market_id = market.open_market(db, post_id)
        for i, informer in enumerate(informers):
            market.submit_offer(
                db,
                market_id,
                informer,
                classification=rng.choice(("misleading", "not_misleading")),
                text=notes[m * offers + i],
                sources=["https://example.org/source"],
                bid=rng.randint(1, 20),
                price=rng.randint(1, 30),
                limits=settings.limits,
            )
        closing = time.perf_counter()
        close_market(db, market_id, judge, force=True)
        latencies.append((time.perf_counter() - closing) * 1000)
    elapsed = time.perf_counter() - started
    ok = ledger.check(db).ok
    db.close()
    shutil.rmtree(folder, ignore_errors=True)
    if not ok:
        raise RuntimeError("ledger check failed during the benchmark")
    return {
        "markets_per_second": markets / elapsed,
        "embeds": counter.count / markets,
        "latencies": latencies,
    }


def _ledger_run(folder: Path, *, transfers: int, seed: int) -> float:
    if folder.exists():
        shutil.rmtree(folder)
    db = open_db(folder / "ledger.db")
    wallets = [ledger.wallet(i) for i in range(1, 101)]
    for i, wallet in enumerate(wallets):
        ledger.mint(db, f"bench:mint:{i}", wallet, 1_000_000)
    rng = random.Random(seed)
    started = time.perf_counter()
    for t in range(transfers):
        source, target = rng.sample(wallets, 2)
        ledger.transfer(db, f"bench:t:{t}", [ledger.Move(source, target, rng.randint(1, 100))], kind="bench")
    rate = transfers / (time.perf_counter() - started)
    db.close()
    shutil.rmtree(folder, ignore_errors=True)
    return rate


def run_bench(
    folder: Path, settings: Settings, *, markets: int = 40, offers: int = 32, repeats: int = 3
) -> dict[str, Any]:
    from notebazaar.index.embed import get_embedder

    work = Path(folder) / "bench"
    embedder = get_embedder(
        settings.index.model, batch_size=settings.index.batch_size, sha256=settings.index.model_sha256
    )
    texts = sentences(max(512, settings.index.batch_size * 8), seed=7)
    embedder.encode(texts[:64])  # warm up
    try:
        embed_rates = [_embed_rate(embedder, texts) for _ in range(repeats)]
        runs = [
            _markets_run(work, settings, embedder, markets=markets, offers=offers, seed=r)
            for r in range(repeats)
        ]
        ledger_rates = [_ledger_run(work, transfers=2000, seed=r) for r in range(repeats)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    embed_per_second = statistics.median(embed_rates)
    markets_per_second = statistics.median(r["markets_per_second"] for r in runs)
    embeds_per_market = statistics.median(r["embeds"] for r in runs)
    latencies = [x for r in runs for x in r["latencies"]]
    return {
        "embed_per_second": embed_per_second,
        "markets_per_second": markets_per_second,
        "embeds_per_market": embeds_per_market,
        "pipeline_vs_embed_ratio": markets_per_second * embeds_per_market / embed_per_second,
        "ledger_transfers_per_second": statistics.median(ledger_rates),
        "decision_latency_ms": {
            "p50": float(np.percentile(latencies, 50)),
            "p99": float(np.percentile(latencies, 99)),
        },
        "offers_per_market": offers,
        "markets": markets,
        "repeats": repeats,
    }
