"""Counting the messages the bot's HTTP client sends to each channel, to catch discord.py's resends.

discord.py sends a request again, inside one call, when Discord answers 500, 502, 504 or 524 or the
connection is reset; Discord may have kept the message the first time, so one ``send()`` or
``reply()`` can leave two. :class:`MessageSends` counts every ``POST /channels/{id}/messages``
through discord.py's documented ``http_trace`` hook (an :class:`aiohttp.TraceConfig`), so delivery
can tell a send that went out more than once and look for a second copy.
"""

from __future__ import annotations

import re
from collections import Counter
from types import SimpleNamespace

import aiohttp

_MESSAGES = re.compile(r"/channels/(\d+)/messages/?$")


class MessageSends:
    """How many message sends each channel has had since the bot started."""

    def __init__(self) -> None:
        self._counts: Counter[int] = Counter()

    def trace_config(self) -> aiohttp.TraceConfig:
        """The hook to hand ``discord.Client(http_trace=...)``."""
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._on_request_start)
        return trace

    async def _on_request_start(
        self,
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        if params.method.upper() == "POST":
            match = _MESSAGES.search(params.url.path)
            if match:
                self.record(int(match.group(1)))

    def record(self, channel_id: int) -> None:
        self._counts[channel_id] += 1

    def count(self, channel_id: int) -> int:
        return self._counts[channel_id]
