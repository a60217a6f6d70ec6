"""Where a ``notebazaar simulate`` run bought mislabelers' notes, and what the judge had read before
each in its market: ``python tools/mislabeled_purchases.py SIM.DB``.

A mislabeler offers a claim's real deciding evidence with the wrong classification, from a fresh
account every time (``pipeline/simulate.py``). For each of its bought top-level notes this reads
the market's inspections in the order the judge made them and sorts the purchase by what came
before it: an honest informer's note read and found *worth less than its price* (the honest note
was on the market and priced itself out), an honest note bought first, or no honest note at all.
A measurement aid for the README's "Market quality" section, not part of the product.
"""

from __future__ import annotations

import argparse
import sqlite3
from collections import Counter

from shown_notes import informer_type  # the simulator's account names, read the same way

PRICED_OUT = "an honest note read first, worth less than its price"
HONEST_BOUGHT = "an honest note bought first"
NO_HONEST = "no honest note read before it"


def what_came_before(earlier: list[tuple[str, str, int]]) -> str:
    """The kind of a purchase from the ``(type, reason, bought)`` of the inspections before it."""
    if any(kind == "honest" and reason == "worth_less_than_price" for kind, reason, _ in earlier):
        return PRICED_OUT
    if any(kind == "honest" and bought for kind, _, bought in earlier):
        return HONEST_BOUGHT
    return NO_HONEST


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    args = parser.parse_args()
    with sqlite3.connect(f"file:{args.db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT i.market_id, a.handle, i.reason, i.bought FROM inspections i"
            " JOIN offers o ON o.id = i.offer_id JOIN accounts a ON a.id = o.informer_id"
            " JOIN markets m ON m.id = i.market_id WHERE m.parent_offer_id IS NULL"
            " ORDER BY i.market_id, i.id"
        ).fetchall()
    kinds: Counter[str] = Counter()
    earlier: list[tuple[str, str, int]] = []
    market = None
    for market_id, handle, reason, bought in rows:
        if market_id != market:
            market, earlier = market_id, []
        kind = informer_type(handle)
        if kind == "mislabeler" and bought:
            kinds[what_came_before(earlier)] += 1
        earlier.append((kind, reason, int(bought)))
    print(f"mislabelers' notes bought: {sum(kinds.values())}")
    for label in (PRICED_OUT, HONEST_BOUGHT, NO_HONEST):
        print(f"  {label}: {kinds[label]}")


if __name__ == "__main__":
    main()
