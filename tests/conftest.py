"""Shared fixtures: a fresh database in a temp folder, settings, and a funded community."""

from __future__ import annotations

import logging
import os

# Tests run two xdist workers on two cores: one intra-op thread each keeps torch from fighting
# itself for the cores (measured: 15 ms per single embedding with 1 thread, 58 ms with 2).
os.environ.setdefault("OMP_NUM_THREADS", "1")
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlite_utils import Database

from notebazaar.pipeline import community
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.db import open_db

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CLAIMS = SHARED_DATA / "claims" / "climate-fever.jsonl"


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "notebazaar.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    database = open_db(db_path)
    yield database
    database.close()


@dataclass
class World:
    """A community with a funded pool, a moderator, a reader and three funded informers."""

    community_id: int
    moderator: int
    reader: int
    informers: list[int]


@pytest.fixture
def world(db: Database, settings: Settings) -> World:
    com = community.create_community(db, "testers", settings=settings.market)
    moderator = community.create_account(db, "mod")
    community.grant(db, moderator, com.id, "moderator")
    reader = community.create_account(db, "reader")
    community.mint(db, reader, 10_000, key="test:mint:reader")
    community.fund_pool(db, com.id, reader, 5_000, key="test:fund")
    informers = []
    for i in range(3):
        informer = community.create_account(db, f"informer{i}")
        community.mint(db, informer, 1_000, key=f"test:mint:informer{i}")
        informers.append(informer)
    return World(com.id, moderator, reader, informers)


@pytest.fixture(autouse=True)
def _cli_log_handlers_removed() -> Iterator[None]:
    """Commands run in-process (CliRunner) add a file handler and, for the bots, a stderr handler to
    the root logger; take off the ones a test added, so none outlives its test (a stderr handler
    would write to the test's closed stream). pytest's own handlers are left alone."""
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    for handler in root.handlers[:]:
        ours = isinstance(handler, logging.FileHandler) or getattr(handler, "notebazaar_console", False)
        if handler not in before and ours and not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
            handler.close()


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[Path]:
    """Every record of every logger at DEBUG, into ``debug.log`` in the state folder (where canary
    tests search); the root logger's handlers and level are restored afterwards."""
    folder = tmp_path / "state"
    folder.mkdir(exist_ok=True)
    path = folder / "debug.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield path
    for extra in root.handlers[:]:
        if extra not in handlers:
            root.removeHandler(extra)
            extra.close()
    root.setLevel(level)


@pytest.fixture(scope="module")
def quiet_logging_and_one_torch_thread() -> Iterator[None]:
    """For modules that run the CLI and the model: the CLI adds a file handler to the root logger,
    taken off after the module; and one torch thread, since under ``pytest -n 2`` on two cores more
    threads only contend (about 4x slower)."""
    import torch

    root = logging.getLogger()
    handlers, level, threads = list(root.handlers), root.level, torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
