"""Rate limits on password guessing: login and API-token attempts, per handle and per client address.

Why the ``limits`` library: it implements moving-window counters correctly (and atomically for one
process), which a hand-rolled dict of timestamps tends not to. Every attempt is counted on both keys
*before* any password is checked, so a burst of concurrent guesses cannot slip past the limit, and a
refused attempt costs the server no argon2 work. The counters live in this process's memory: they
reset when the server restarts, and two server processes count separately (run one, or put a shared
``limits`` storage such as Redis behind it).

A handle is counted whether or not it exists, so the limit itself does not tell an attacker which
handles are real.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from notebazaar.pipeline.errors import RateLimited


class LoginThrottle:
    """Counts attempts to prove a password (web login, ``POST /api/tokens``, password change)."""

    def __init__(self, per_handle: str, per_address: str) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_handle: RateLimitItem = parse(per_handle)
        self._per_address: RateLimitItem = parse(per_address)

    def attempt(self, handle: str, address: str) -> None:
        """Count one attempt for ``handle`` from ``address``; :class:`RateLimited` past either limit."""
        key = handle.strip().casefold()[:64] if isinstance(handle, str) else ""
        handle_ok = self._limiter.hit(self._per_handle, "handle", key)
        address_ok = self._limiter.hit(self._per_address, "address", address)
        if handle_ok and address_ok:
            return
        item, scope, ident = (
            (self._per_handle, "handle", key) if not handle_ok else (self._per_address, "address", address)
        )
        reset = self._limiter.get_window_stats(item, scope, ident).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        what = "this handle" if not handle_ok else "your address"
        raise RateLimited(f"too many login attempts for {what}; try again in {wait} s", retry_after=wait)
