"""Helpers shared by the market-core tests (no tests here): a scripted judge, a whole-database
snapshot for "nothing changed" checks, and ledger queries about one offer."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlite_utils import Database

from notebazaar.pipeline import community
from notebazaar.pipeline.judge import Context, NoteView, PostView, Verdict


@dataclass
class ScriptedJudge:
    """A deterministic judge: a note whose text contains a marker moves the reader to that marker's
    p_after (an absolute belief, so a second note saying the same thing adds nothing); any other note
    leaves the reader where it was. It records what it was shown (ids and p_before only)."""

    script: dict[str, float] = field(default_factory=dict)
    start: float = 0.5
    name: str = "scripted"
    seen: list[tuple[int, float]] = field(default_factory=list)
    quick: bool = False  # True: settlement records all its inspections in one transaction

    def prior(self, post: PostView, context: Context) -> float:
        return self.start

    def inspect(self, post: PostView, context: Context, note: NoteView, p_before: float) -> Verdict:
        self.seen.append((note.offer_id, p_before))
        for marker, p_after in self.script.items():
            if marker in note.text:
                return Verdict(p_before, p_after, rationale=f"scripted {marker}")
        return Verdict(p_before, p_before)


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (ordered by rowid), including sqlite-utils' migration bookkeeping."""
    tables = [
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table in tables:
        out[table] = [tuple(r) for r in db.execute(f'SELECT * FROM "{table}" ORDER BY rowid')]
    return out


def ledger_txns(db: Database, key_like: str) -> list[tuple[int, str, str]]:
    """(id, idempotency key, kind) of every ledger transaction whose key matches ``key_like``."""
    return [
        (int(r[0]), str(r[1]), str(r[2]))
        for r in db.execute(
            "SELECT id, idempotency_key, kind FROM ledger_transactions WHERE idempotency_key LIKE ?"
            " ORDER BY id",
            [key_like],
        )
    ]


def txn_entries(db: Database, txn_id: int) -> dict[str, int]:
    """Net amount per account ref in one transaction."""
    return {
        str(r[0]): int(r[1])
        for r in db.execute(
            "SELECT a.ref, SUM(e.amount) FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id"
            " WHERE e.transaction_id = ? GROUP BY a.ref",
            [txn_id],
        )
    }


def make_market(
    db: Database,
    *,
    slug: str = "core",
    slots: int = 3,
    reserve: int = 2,
    b: int = 100,
    budget: int = 200,
    auction: str = "gsp",
    informers: int = 3,
    wallet: int = 1_000,
    pool: int = 5_000,
) -> tuple[int, int, list[int]]:
    """A community with its own settings, a funded pool, funded informers, a post and an open market.

    Returns (community id, market id, informer ids)."""
    from notebazaar.pipeline.config import MarketSettings
    from notebazaar.pipeline.market import open_market

    settings = MarketSettings(
        attention_slots=slots,
        reserve=reserve,
        price_of_information=b,
        budget_per_market=budget,
        auction=auction,  # type: ignore[arg-type]
        window_seconds=3600,
    )
    com = community.create_community(db, slug, settings=settings)
    reader = community.create_account(db, f"{slug}-reader")
    community.mint(db, reader, pool, key=f"{slug}:mint:reader")
    community.fund_pool(db, com.id, reader, pool, key=f"{slug}:fund")
    ids = []
    for i in range(informers):
        informer = community.create_account(db, f"{slug}-informer{i}")
        community.mint(db, informer, wallet, key=f"{slug}:mint:{i}")
        ids.append(informer)
    post = community.add_post(db, com.id, "The moon landing was staged in a studio in 1969.")
    return com.id, open_market(db, post), ids


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The CLI adds a file handler to the root logger; take it off again after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
