"""What readers still see at the end of a ``notebazaar simulate --resolution ratings`` run, and what
a stricter display rule would hide: ``python tools/shown_notes.py SIM.DB [--below X ...]``.

For each informer type (read from the simulator's account names, ``sim_<type><n>`` and
``sim_<type>_<claim>_<slot>``) it counts the bought top-level notes by bridging status and whether
they are still shown, then, for each ``--below`` threshold, how many notes still shown would also
be hidden by the rule "needs more ratings, at least ``[bridging] min_ratings`` ratings, intercept
below the threshold". A measurement aid for the README's ratings section, not part of the product:
the product hides a note when its status is *not helpful*, and an undecided one for its author's
record (rule 8 of ``notebazaar.pipeline.rules``); the counts are after both.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
from collections import Counter, defaultdict

MIN_RATINGS = 5  # [bridging] min_ratings's default
_TYPE = re.compile(r"^sim_([a-z_]+?)(?:_\d+_-?\d+|\d+)$")


def informer_type(handle: str) -> str:
    match = _TYPE.match(handle)
    return match.group(1) if match else handle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    parser.add_argument("--below", type=float, action="append", default=[])
    args = parser.parse_args()
    with sqlite3.connect(f"file:{args.db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT a.handle, r.unpublished_at IS NULL, COALESCE(s.status, 'needs_more_ratings'),"
            " s.intercept, COALESCE(s.ratings, 0)"
            " FROM reveals r JOIN accounts a ON a.id = r.informer_id"
            " JOIN markets m ON m.id = r.market_id LEFT JOIN note_statuses s ON s.reveal_id = r.id"
            " WHERE m.parent_offer_id IS NULL"
        ).fetchall()
    by_type: dict[str, list[tuple[bool, str, float | None, int]]] = defaultdict(list)
    for handle, shown, status, intercept, ratings in rows:
        by_type[informer_type(handle)].append((bool(shown), status, intercept, int(ratings)))
    print("type: bought; shown by status; hidden")
    for kind, notes in sorted(by_type.items()):
        shown = Counter(status for visible, status, _, _ in notes if visible)
        hidden = sum(1 for visible, *_ in notes if not visible)
        print(f"  {kind}: {len(notes)}; shown {dict(sorted(shown.items()))}; hidden {hidden}")
    for threshold in args.below:
        extra = {
            kind: sum(
                1
                for visible, status, intercept, ratings in notes
                if visible
                and status == "needs_more_ratings"
                and intercept is not None
                and ratings >= MIN_RATINGS
                and intercept < threshold
            )
            for kind, notes in sorted(by_type.items())
        }
        print(f"intercept below {threshold:+.2f} would also hide: {extra}")


if __name__ == "__main__":
    main()
