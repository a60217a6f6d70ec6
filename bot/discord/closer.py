"""Closing due markets from the bot, on a thread and database connection of its own.

The judge may be a slow network call, so settlement must not run on the gateway's event loop. A
single worker thread owns its own SQLite connection and judge (a connection is never shared between
threads that may use it at once). Settlement is idempotent and serialised by the database's write
lock, so the web server's worker may close the same markets at the same time without harm.
Before a Discord post's market settles, the post check asks Discord whether the message is still
there (:mod:`notebazaar.bot.discord.poststate`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlite_utils import Database

from notebazaar.bot.discord.interactions import PLATFORM
from notebazaar.pipeline.bridging import ScoringSchedule
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.judge import Judge
from notebazaar.pipeline.judge.factory import make_judge
from notebazaar.pipeline.poststate import PostCheck
from notebazaar.pipeline.settlement import close_due

JudgeFactory = Callable[[Settings, Database], Judge]


class Closer:
    def __init__(self, db_path: Path, settings: Settings, judge_factory: JudgeFactory = make_judge) -> None:
        self.db_path = db_path
        self.settings = settings
        self.judge_factory = judge_factory
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notebazaar-closer")
        self._db: Database | None = None
        self._judge: Judge | None = None
        self.scoring = ScoringSchedule(settings.bridging)
        self.post_check: PostCheck | None = None  # set by the bot once its event loop runs

    def _close_due(self) -> list[int]:
        if self._db is None:
            self._db = open_db(self.db_path)
            self._judge = self.judge_factory(self.settings, self._db)
        assert self._judge is not None
        closed = close_due(  # only Discord's markets: the post check answers for Discord posts alone
            self._db,
            self._judge,
            recursion_settings=self.settings.recursion,
            post_check=self.post_check,
            platforms=(PLATFORM,),
        )
        self.scoring.run_if_due(self._db)  # readers' ratings into statuses, every score_interval_seconds
        return closed

    async def close_due(self) -> list[int]:
        """Close every market whose bidding window has ended; returns their ids."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._close_due)

    def _release(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def shutdown(self) -> None:
        self._executor.submit(self._release)
        self._executor.shutdown(wait=True)
