"""The retry schedule for deliveries: exponential backoff with jitter over a long horizon.

Why tenacity's wait functions and not our own arithmetic: they are the well-kept implementation of
exactly this (capped exponential growth, random jitter), and we only need the number of seconds to
wait before attempt ``n``; the *when* is persisted by the caller (the outbox keeps
``next_attempt_at``), so a restarted bot keeps the schedule instead of starting over.

The jitter is "equal jitter": each wait is drawn between half and all of the capped exponential
value, so waits still grow (an outage is not hammered) while many rows failing together spread out.
A platform's own wait (HTTP ``Retry-After``, Reddit's ``RATELIMIT`` "try again in 9 minutes") is a
floor: the bot never comes back earlier than it was told to.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenacity import RetryCallState, Retrying, wait_exponential, wait_random_exponential

from notebazaar.pipeline.config import DeliverySettings


@dataclass(frozen=True)
class Backoff:
    """Waits between attempts, and how long a transient failure may last before giving up."""

    first_seconds: float = 10.0
    max_seconds: float = 1800.0
    horizon_seconds: float = 72 * 3600.0

    @classmethod
    def from_settings(cls, settings: DeliverySettings) -> Backoff:
        return cls(
            first_seconds=settings.first_retry_seconds,
            max_seconds=settings.max_retry_seconds,
            horizon_seconds=settings.give_up_after_hours * 3600.0,
        )

    def delay(self, attempt: int, *, at_least: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 = the first attempt).

        ``at_least`` is the platform's requested wait (Retry-After, RATELIMIT), honoured as a floor.
        """
        half_first, half_cap = self.first_seconds / 2, self.max_seconds / 2
        wait = wait_exponential(multiplier=half_first, max=half_cap) + wait_random_exponential(
            multiplier=half_first, max=half_cap
        )
        state = RetryCallState(Retrying(), None, (), {})
        state.attempt_number = max(1, attempt)
        return max(float(wait(state)), float(at_least or 0.0))

    def gives_up(self, failing_since: float, now: float) -> bool:
        """Whether a row failing transiently since ``failing_since`` has run past the horizon."""
        return now - failing_since >= self.horizon_seconds
