"""``notebazaar bench``: speed measured in one run, so the ratios compare like with like.

- ``embed_per_second``: raw throughput of the embedding model on this machine (batches of
  ``index.batch_size`` note-length sentences), measured in slices *between the markets* (one batch
  after each market), so the model's raw speed and the markets are measured under the same load;
- ``markets_per_second``: end to end with the embedded judge — open, N sealed offers, close,
  auction, inspections, settlement, reveal, and the index catching up with the revealed notes —
  on a fresh database each repeat;
- ``embeds_per_market``: texts the pipeline embedded per market (counted at the embedder);
- ``pipeline_vs_embed_ratio`` = markets_per_second × embeds_per_market / embed_per_second: the share
  of the model's raw speed the whole pipeline keeps (1.0 would mean the market costs nothing beyond
  embedding);
- ``ledger_transfers_per_second``: single-move transactions, each its own atomic commit;
- ``ratings_per_second``: readers' ratings recorded, each in its own transaction with the recount of
  its note's track-record contribution (:func:`notebazaar.pipeline.records.recount_note`);
- ``decision_latency_ms``: close to reveal for one market (``p50``, ``p99``): the ``close_market``
  call; the index catching up with the notes it revealed comes after (``catch_up``, between markets);
- ``decision_model_ms``: the model's part of those closes (``p50``, ``p99``), and for the slowest
  closes (the top 1%, at least one) their latency beside the model's part of it: what a tail is made of;
- ``market_own_ms``: the market's own work, measured directly: the first repeat's markets run
  again with the model's answers replayed (:class:`ReplayEmbedder`: each text's vector, as the model
  gave it in that repeat, returned from memory), so the same offers are bought and revealed and
  only the model's time is missing. ``per_market`` end to end, ``close_p50`` of the close alone;
- ``load_average``: the machine's 1-minute load average at the start and the end (other people's
  work shares the cores; the ratios above are what stays comparable).

Every figure is the median over ``repeats`` runs. State lives in a ``bench/`` folder beside the
database and is removed afterwards. ``--profile`` adds one more run of the markets under cProfile
(:mod:`notebazaar.pipeline.bench_profile`); ``--scale`` is :mod:`notebazaar.pipeline.bench_scale`.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from notebazaar.pipeline import community, ledger, market
from notebazaar.pipeline.config import MarketSettings, Settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.judge.params import LocalJudgeParams
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


# Nothing resolves in the benchmark, so every informer stays a stranger: without an unbounded
# newcomer credit (pipeline.credit) the judge would stop buying after two notes, and the benchmark
# would no longer measure purchases, reveals and the index catching up with them.
BENCH_JUDGE = LocalJudgeParams(newcomer_credit=2**31)


def sentences(n: int, *, seed: int = 0, words: int = 24) -> list[str]:
    """Deterministic note-length sentences (about as long as a short community note)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "." for _ in range(n)]


class CountingEmbedder:
    """Wraps an embedder and counts the texts it encodes and the seconds it spends on them; with
    ``remember``, also keeps each text's vector there (for :class:`ReplayEmbedder`)."""

    def __init__(self, inner: Any, remember: dict[str, np.ndarray] | None = None) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.name = inner.name
        self.count = 0
        self.seconds = 0.0
        self.remember = remember

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.count += len(texts)
        started = time.perf_counter()
        try:
            vectors = self.inner.encode(texts)
        finally:
            self.seconds += time.perf_counter() - started
        if self.remember is not None:
            self.remember.update(zip(texts, vectors, strict=True))
        return vectors


class ReplayEmbedder(CountingEmbedder):
    """Answers from the vectors a :class:`CountingEmbedder` remembered, without the model (a text
    it never saw goes to the model, and is counted in ``misses``)."""

    def __init__(self, inner: Any, vectors: dict[str, np.ndarray]) -> None:
        super().__init__(inner)
        self.vectors = vectors
        self.misses = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in texts if t not in self.vectors]
        if missing:
            self.misses += len(missing)
            self.vectors.update(zip(missing, self.inner.encode(missing), strict=True))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.vectors[t] for t in texts])


class MarketTiming(NamedTuple):
    """One market's close: the close-to-reveal latency, and how much of it the model took (when
    the judge's embedder is a :class:`CountingEmbedder`; else 0)."""

    latency_ms: float
    model_ms: float


def _embed_rate(embedder: Any, texts: list[str]) -> float:
    started = time.perf_counter()
    embedder.encode(texts)
    return len(texts) / (time.perf_counter() - started)


class Reference:
    """The model's raw speed, measured one batch at a time between markets."""

    def __init__(self, embedder: Any, texts: list[str], batch: int) -> None:
        self.embedder = embedder
        self.texts = texts
        self.batch = batch
        self.count = 0
        self.seconds = 0.0

    def slice(self) -> None:
        start = (self.count // self.batch * self.batch) % max(1, len(self.texts) - self.batch)
        started = time.perf_counter()
        self.embedder.encode(self.texts[start : start + self.batch])
        self.seconds += time.perf_counter() - started
        self.count += self.batch

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def bench_community(db: Any, *, offers: int, markets: int) -> tuple[int, list[int]]:
    """A funded community whose markets inspect every offer, and its ``offers`` informers."""
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
    return com.id, informers


def run_market(
    db: Any,
    judge: Any,
    settings: Settings,
    community_id: int,
    informers: list[int],
    post: str,
    notes: list[str],
    rng: random.Random,
    external_id: str,
    counter: CountingEmbedder | None = None,
) -> MarketTiming:
    """One market end to end (post, open, an offer per informer, close, index catch-up); returns
    the close-to-reveal latency in milliseconds, and the model's part of it read from ``counter``."""
    post_id = community.add_post(db, community_id, post, platform="bench", external_id=external_id)
    market_id = market.open_market(db, post_id)
    for informer, note in zip(informers, notes, strict=True):
        market.submit_offer(
            db,
            market_id,
            informer,
            classification=rng.choice(("misleading", "not_misleading")),
            text=note,
            sources=["https://example.org/source"],
            bid=rng.randint(1, 20),
            price=rng.randint(1, 30),
            limits=settings.limits,
        )
    model_before = counter.seconds if counter is not None else 0.0
    closing = time.perf_counter()
    close_market(db, market_id, judge, force=True)
    latency = (time.perf_counter() - closing) * 1000
    model = (counter.seconds - model_before) * 1000 if counter is not None else 0.0
    judge.catch_up()  # between markets, as the worker does after closing
    return MarketTiming(latency, model)


def _markets_run(
    folder: Path,
    settings: Settings,
    embedder: Any,
    *,
    markets: int,
    offers: int,
    seed: int,
    reference: Reference | None = None,
    remember: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    from notebazaar.index.retrieval import Retriever
    from notebazaar.pipeline.judge.local import LocalJudge

    if folder.exists():
        shutil.rmtree(folder)
    db = open_db(folder / "bench.db")
    counter = embedder if isinstance(embedder, CountingEmbedder) else CountingEmbedder(embedder, remember)
    judge = LocalJudge(db, Retriever(db, folder, settings.index, embedder=counter), params=BENCH_JUDGE)
    community_id, informers = bench_community(db, offers=offers, markets=markets)
    rng = random.Random(seed)
    posts = sentences(markets, seed=seed + 1)
    notes = sentences(markets * offers, seed=seed + 2)
    timings: list[MarketTiming] = []
    counter.count = 0
    elapsed = 0.0
    for m in range(markets):
        started = time.perf_counter()
        timings.append(
            run_market(
                db,
                judge,
                settings,
                community_id,
                informers,
                posts[m],
                notes[m * offers : (m + 1) * offers],
                rng,
                f"b{m}",
                counter,
            )
        )
        elapsed += time.perf_counter() - started
        if reference is not None:
            reference.slice()  # the model alone, under the load this market just ran under
    ok = ledger.check(db).ok
    db.close()
    shutil.rmtree(folder, ignore_errors=True)
    if not ok:
        raise RuntimeError("ledger check failed during the benchmark")
    return {
        "markets_per_second": markets / elapsed,
        "embeds": counter.count / markets,
        "latencies": [t.latency_ms for t in timings],
        "model_ms": [t.model_ms for t in timings],
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


def _ratings_run(folder: Path, *, ratings: int, seed: int) -> float:
    """Readers' ratings recorded one per transaction, each with the recount of its note's record
    (the work a rating costs the market; the bridging scorer's own work is a batch job's)."""
    from notebazaar.pipeline import records
    from notebazaar.pipeline.db import write

    if folder.exists():
        shutil.rmtree(folder)
    db = open_db(folder / "ratings.db")
    community_id, informers = bench_community(db, offers=4, markets=1)
    raters = [community.create_account(db, f"bench_rater{i}") for i in range(ratings // 10 + 1)]
    post_id = community.add_post(db, community_id, "a post", platform="bench", external_id="r")
    market_id = market.open_market(db, post_id)
    with write(db):  # ten revealed notes on a resolved post, written as settlement would
        for i in range(10):
            offer_id = db.execute(
                "INSERT INTO offers (market_id, informer_id, status, bid, price, commitment, submitted_at)"
                " VALUES (?, ?, 'bought', 1, 1, 'bench', 0)",
                [market_id, informers[i % len(informers)]],
            ).lastrowid
            db.execute(
                "INSERT INTO reveals (offer_id, market_id, post_id, informer_id, classification, text,"
                " price, revealed_at) VALUES (?, ?, ?, ?, 'misleading', 'a note', 1, 0)",
                [offer_id, market_id, post_id, informers[i % len(informers)]],
            )
    market.resolve_post(db, post_id, "misleading")
    reveal_ids = [int(r[0]) for r in db.execute("SELECT id FROM reveals ORDER BY id")]
    rng = random.Random(seed)
    started = time.perf_counter()
    for n in range(ratings):
        reveal_id = reveal_ids[n % len(reveal_ids)]
        with write(db):
            db.execute(
                "INSERT INTO ratings (reveal_id, account_id, level, surface, rated_at, updated_at)"
                " VALUES (?, ?, ?, 'sim', ?, ?)",
                [
                    reveal_id,
                    raters[n // len(reveal_ids)],
                    "helpful" if rng.random() < 0.5 else "not_helpful",
                    time.time(),
                    time.time(),
                ],
            )
            records.recount_note(db, reveal_id)
    rate = ratings / (time.perf_counter() - started)
    db.close()
    shutil.rmtree(folder, ignore_errors=True)
    return rate


def run_bench(
    folder: Path,
    settings: Settings,
    *,
    markets: int = 40,
    offers: int = 32,
    repeats: int = 3,
    profile_out: Path | None = None,
) -> dict[str, Any]:
    from notebazaar.index.embed import get_embedder

    work = Path(folder) / "bench"
    load_start = os.getloadavg()[0]
    embedder = get_embedder(
        settings.index.model, batch_size=settings.index.batch_size, sha256=settings.index.model_sha256
    )
    texts = sentences(max(512, settings.index.batch_size * 8), seed=7)
    embedder.encode(texts[:64])  # warm up
    profile: dict[str, Any] | None = None
    try:
        runs, embed_rates = [], []
        answers: dict[str, np.ndarray] = {}  # the first repeat's texts and the model's vectors
        for r in range(repeats):
            reference = Reference(embedder, texts, settings.index.batch_size)
            runs.append(
                _markets_run(
                    work,
                    settings,
                    embedder,
                    markets=markets,
                    offers=offers,
                    seed=r,
                    reference=reference,
                    remember=answers if r == 0 else None,
                )
            )
            embed_rates.append(reference.rate)
        replay = ReplayEmbedder(embedder, answers)
        own = _markets_run(work, settings, replay, markets=markets, offers=offers, seed=0)
        ledger_rates = [_ledger_run(work, transfers=2000, seed=r) for r in range(repeats)]
        rating_rates = [_ratings_run(work, ratings=2000, seed=r) for r in range(repeats)]
        if profile_out is not None:
            from notebazaar.pipeline.bench_profile import profile_markets

            profile = profile_markets(
                lambda e: _markets_run(work, settings, e, markets=markets, offers=offers, seed=0),
                embedder,
                profile_out,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    embed_per_second = statistics.median(embed_rates)
    markets_per_second = statistics.median(r["markets_per_second"] for r in runs)
    embeds_per_market = statistics.median(r["embeds"] for r in runs)
    latencies = [x for r in runs for x in r["latencies"]]
    model_ms = [x for r in runs for x in r["model_ms"]]
    slowest = sorted(range(len(latencies)), key=lambda i: -latencies[i])[: max(1, len(latencies) // 100)]
    result: dict[str, Any] = {
        "embed_per_second": embed_per_second,
        "markets_per_second": markets_per_second,
        "embeds_per_market": embeds_per_market,
        "pipeline_vs_embed_ratio": markets_per_second * embeds_per_market / embed_per_second,
        "ledger_transfers_per_second": statistics.median(ledger_rates),
        "ratings_per_second": statistics.median(rating_rates),
        "decision_latency_ms": {
            "p50": float(np.percentile(latencies, 50)),
            "p99": float(np.percentile(latencies, 99)),
        },
        "decision_model_ms": {  # the model's part of each close: its batch of the post and notes
            "p50": float(np.percentile(model_ms, 50)),
            "p99": float(np.percentile(model_ms, 99)),
            "in_slowest_closes": [round(model_ms[i], 1) for i in slowest],
            "slowest_closes": [round(latencies[i], 1) for i in slowest],
        },
        "ratio_per_repeat": [
            r["markets_per_second"] * r["embeds"] / rate for r, rate in zip(runs, embed_rates, strict=True)
        ],
        "market_own_ms": {  # the first repeat again, the model's answers replayed from memory
            "per_market": 1000.0 / own["markets_per_second"],
            "close_p50": float(np.percentile(own["latencies"], 50)),
            "texts_not_replayed": replay.misses,
        },
        "load_average": {"start": load_start, "end": os.getloadavg()[0], "cpus": os.cpu_count()},
        "offers_per_market": offers,
        "markets": markets,
        "repeats": repeats,
    }
    if profile is not None:
        result["profile"] = profile
    return result
