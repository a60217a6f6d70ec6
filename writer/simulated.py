"""The writer inside ``notebazaar simulate --writers on``: the same learning core, driven in-process.

The simulator (:mod:`notebazaar.pipeline.simulate`) never imports the writer; the command line hands
it :class:`SimulatedWriters` as its ``writer_factory``. Each simulated writer is a
:class:`~notebazaar.writer.core.Writer` over the simulator's private corpus (embedded once and
shared by the learning writer and its fixed twin, so both retrieve the same candidates) with an
in-memory log: the corpus is private knowledge, and nothing of it may reach the market's state folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from notebazaar.pipeline.config import WriterSettings
from notebazaar.pipeline.simulate import WriterOffer, WriterPassage
from notebazaar.writer.choices import Choice, MarketContext
from notebazaar.writer.core import Writer
from notebazaar.writer.log import WriterLog
from notebazaar.writer.sources import CorpusSource, Passage


class SimulatedWriter:
    """A :class:`Writer` behind the simulator's ``WriterAgent`` protocol."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def choose(self, market_info: dict[str, Any], wallet: int) -> list[WriterOffer]:
        context = MarketContext.from_info(market_info)
        return [
            WriterOffer(
                c.arm.classification,
                c.candidate.text,
                list(c.candidate.sources),
                c.bid,
                c.price,
                c.candidate.source_id,
                token=c,
            )
            for c in self.writer.choose(context, wallet=wallet)
        ]

    def placed(self, market_info: dict[str, Any], offer: WriterOffer, receipt: dict[str, Any]) -> None:
        choice: Choice = offer.token
        self.writer.placed(MarketContext.from_info(market_info), choice, receipt)

    def learn(self, rows: list[dict[str, Any]]) -> None:
        self.writer.learn(rows)


class SimulatedWriters:
    """``writer_factory`` for the simulator: one corpus source, shared; one writer per call."""

    def __init__(self, settings: WriterSettings | None = None, *, offers_per_market: int = 1) -> None:
        self.settings = settings or WriterSettings()
        self.offers_per_market = offers_per_market
        self._source: CorpusSource | None = None
        self._corpus: Sequence[WriterPassage] | None = None

    def __call__(self, corpus: Sequence[WriterPassage], learning: bool) -> SimulatedWriter:
        if self._source is None or self._corpus is not corpus:
            self._source = CorpusSource([Passage(p.id, p.text, p.source) for p in corpus])
            self._corpus = corpus
        writer = Writer(
            self._source,
            WriterLog(None),
            alpha=self.settings.alpha,
            prior_strength=self.settings.prior_strength,
            decay=self.settings.decay,
            offers_per_market=self.offers_per_market,
            learning=learning,
        )
        return SimulatedWriter(writer)
