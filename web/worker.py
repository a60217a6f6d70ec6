"""The pipeline worker that runs beside the web app: it closes markets whose window has elapsed
(except those on Discord and Reddit posts, which their bots close after checking the post), and
runs the bridging scorer over readers' ratings every ``[bridging] score_interval_seconds``.

A thread, not an asyncio task, because settlement is blocking work (SQLite and the judge, which may
be a slow network call) and must not stall the event loop. It has its own database connection.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from notebazaar.pipeline.bridging import ScoringSchedule
from notebazaar.pipeline.config import BridgingSettings, RecursionSettings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.judge import Judge
from notebazaar.pipeline.poststate import CHECKED_PLATFORMS
from notebazaar.pipeline.settlement import close_due

log = logging.getLogger(__name__)


class CloseWorker:
    """Calls :func:`notebazaar.pipeline.settlement.close_due` every ``interval`` seconds until stopped.

    ``lock`` is shared with the "close now" handlers: one judge instance settles one market at a
    time (a judge may hold per-market state between ``prepare`` and ``forget``). The worker holds it
    for one market at a time, never for a whole pass.
    """

    def __init__(
        self,
        db_path: Path,
        judge: Judge,
        interval: float,
        lock: threading.Lock,
        recursion: RecursionSettings | None = None,
        bridging: BridgingSettings | None = None,
    ) -> None:
        self.db_path = db_path
        self.recursion = recursion  # [recursion] settings: sub-markets about uncertain offers
        self.lock = lock
        self.judge = judge
        self.interval = interval
        self.scoring = ScoringSchedule(bridging) if bridging is not None else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notebazaar-close-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        db = open_db(self.db_path, migrate=False)
        try:
            while not self._stop.is_set():
                try:
                    # The lock is taken per market inside close_due, and released between markets.
                    # Markets on Discord and Reddit posts are the bots': they check the post first.
                    closed = close_due(
                        db,
                        self.judge,
                        recursion_settings=self.recursion,
                        lock=self.lock,
                        other_than=CHECKED_PLATFORMS,
                    )
                    if closed:
                        log.info("worker closed markets %s", closed)
                except Exception:  # keep the worker alive; the next pass retries
                    log.exception("close worker pass failed")
                try:
                    if self.scoring is not None:
                        self.scoring.run_if_due(db)
                except Exception:
                    log.exception("bridging scoring pass failed")
                self._stop.wait(self.interval)
        finally:
            db.close()
