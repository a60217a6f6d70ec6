"""Which posts deserve a market: a cheap, configurable check-worthiness filter for the bots.

The default looks for the marks of a factual claim (numbers, statistics, science and health words,
"studies show") in a post long enough to hold one. It is deliberately cheap: it runs on every
message in a watched channel. "all" opens a market on every long-enough post, "none" on none
(markets then open only when a reader asks).
"""

from __future__ import annotations

import re

_CLAIM_MARKERS = re.compile(
    r"\b(\d+(\.\d+)?\s?%|\d{2,}|percent|study|studies|scientists?|research|according to|"
    r"proven?|prove[sd]|cause[sd]?|cures?|vaccines?|climate|warming|election|fraud|"
    r"fact|facts|data|statistics?|report(ed|s)?|evidence|always|never|every|million|billion)\b",
    re.IGNORECASE,
)


def is_check_worthy(text: str, *, mode: str = "keywords", min_chars: int = 40) -> bool:
    text = text.strip()
    if mode == "none" or len(text) < min_chars:
        return False
    if mode == "all":
        return True
    return len(_CLAIM_MARKERS.findall(text)) >= 1
