"""A scripted market, end to end, for ``notebazaar demo`` and for seeding the web app.

Four informers compete on one post: an honest note with sources, a redundant echo of it, an
off-topic note and a low-bid spam note. The seed shuffles bids and prices a little, so runs differ
while staying reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from notebazaar.pipeline import community, market
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.judge import Judge
from notebazaar.pipeline.settlement import SettlementReport, close_market

POST = "Arctic sea ice has been growing every year since 2012, so global warming has stopped."

NOTES: list[dict[str, Any]] = [
    {
        "handle": "ice_watcher",
        "classification": "misleading",
        "text": "Arctic sea ice extent keeps declining: 2012 was a record low and later years stayed"
        " far below the 1981-2010 average. One year's rebound from a record low is not a trend,"
        " and global warming has not stopped.",
        "sources": [
            "https://nsidc.org/arcticseaicenews/",
            "https://climate.nasa.gov/vital-signs/arctic-sea-ice/",
        ],
        "bid": 12,
        "price": 15,
    },
    {
        "handle": "echo_chamber",
        "classification": "misleading",
        "text": "Arctic sea ice is still declining since 2012; global warming has not stopped.",
        "sources": [],
        "bid": 8,
        "price": 12,
    },
    {
        "handle": "off_topic",
        "classification": "not_misleading",
        "text": "Penguins live in the Southern Hemisphere and enjoy swimming.",
        "sources": [],
        "bid": 5,
        "price": 8,
    },
    {
        "handle": "spammer",
        "classification": "not_misleading",
        "text": "Buy cheap followers at my site!!!",
        "sources": [],
        "bid": 1,
        "price": 1,
    },
]


@dataclass
class DemoResult:
    community_id: int
    post_id: int
    market_id: int
    receipts: dict[str, market.Receipt]
    report: SettlementReport


def seed_demo(
    db: Database, settings: Settings, judge: Judge, *, seed: int = 0, slug: str = "demo"
) -> DemoResult:
    """Create a funded community, a post, informers and sealed offers, then close and settle."""
    rng = random.Random(seed)
    com = community.create_community(db, slug, name="Demo community", settings=settings.market)
    reader = community.create_account(db, f"{slug}_reader")
    community.grant(db, reader, com.id, "reader")
    community.mint(db, reader, 1000, key=f"demo:{slug}:mint:reader")
    community.fund_pool(db, com.id, reader, 500, key=f"demo:{slug}:fund")
    post_id = community.add_post(
        db, com.id, POST, platform="web", external_id=f"{slug}-post-1", author="demo_poster"
    )
    market_id = market.open_market(db, post_id)
    receipts = {}
    for note in NOTES:
        informer = community.create_account(db, f"{slug}_{note['handle']}")
        community.grant(db, informer, com.id, "informer")
        community.mint(db, informer, 100, key=f"demo:{slug}:mint:{note['handle']}")
        receipts[note["handle"]] = market.submit_offer(
            db,
            market_id,
            informer,
            classification=note["classification"],
            text=note["text"],
            sources=note["sources"],
            bid=max(com.reserve, note["bid"] + rng.randint(-1, 1)),  # a lower bid is refused (rule 6)
            price=max(1, note["price"] + rng.randint(-2, 2)),
            limits=settings.limits,
        )
    report = close_market(db, market_id, judge, force=True)
    return DemoResult(com.id, post_id, market_id, receipts, report)
