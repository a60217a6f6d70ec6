""" "Close now", shared by the console and the API: a settled market answers at once; any other
waits for the judge's lock, which the worker holds for one market at a time (never a whole pass)."""

from __future__ import annotations

from fastapi import Request
from sqlite_utils import Database

from notebazaar.pipeline import market, settlement
from notebazaar.pipeline.judge import Judge
from notebazaar.pipeline.settlement import SettlementReport


def close_now(request: Request, db: Database, market_id: int, judge: Judge) -> SettlementReport:
    """Close and settle ``market_id`` before its window ends (``close_market(force=True)``)."""
    if market.get_market(db, market_id)["status"] == "settled":
        return SettlementReport(market_id, already_settled=True)  # nothing to wait for
    with request.app.state.close_lock:
        return settlement.close_market(db, market_id, judge, force=True)
