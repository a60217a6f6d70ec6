"""Blocking work off the event loop: every SQLite and pipeline call the bot makes.

Why: the gateway's heartbeat runs on the event loop. A database call that waits for another
process's write lock (SQLite waits up to ``busy_timeout``) would stall the heartbeat and every
interaction with it, and Discord drops a bot that misses heartbeats. So each call runs in a worker
thread (``asyncio.to_thread``) and the loop only awaits it.

The bot shares one SQLite connection between those threads, and a transaction belongs to a
connection, not a thread: two calls at once would run inside each other's transaction. A lock
held in the worker thread (never on the loop) runs them one at a time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class OffLoop:
    """``await off_loop(func, *args)``: ``func(*args)`` in a worker thread, one call at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    async def __call__(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(self._serialised, func, *args, **kwargs)

    def _serialised(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self._lock:
            return func(*args, **kwargs)
