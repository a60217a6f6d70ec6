"""``tools/mislabeled_purchases.py``: each mislabeler's purchase sorted by what the judge read first."""

from __future__ import annotations

import importlib.util
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "mislabeled_purchases.py"


def _tool(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(TOOL.parent))  # as when run as a script: it imports its neighbour
    spec = importlib.util.spec_from_file_location("mislabeled_purchases", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_purchase_is_sorted_by_the_honest_notes_read_before_it(monkeypatch: pytest.MonkeyPatch) -> None:
    tool = _tool(monkeypatch)
    assert tool.informer_type("sim_honest3") == "honest"
    assert tool.informer_type("sim_mislabeler_14_1") == "mislabeler"
    assert tool.what_came_before([("honest", "worth_less_than_price", 0)]) == tool.PRICED_OUT
    assert tool.what_came_before([("honest", "bought", 1), ("misleading", "bought", 1)]) == tool.HONEST_BOUGHT
    assert tool.what_came_before([("misleading", "worth_less_than_price", 0)]) == tool.NO_HONEST
    assert tool.what_came_before([]) == tool.NO_HONEST


def test_it_reads_a_simulators_database(tmp_path: Path) -> None:
    db = tmp_path / "sim.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, handle TEXT);"
            "CREATE TABLE markets (id INTEGER PRIMARY KEY, parent_offer_id INTEGER);"
            "CREATE TABLE offers (id INTEGER PRIMARY KEY, informer_id INTEGER);"
            "CREATE TABLE inspections (id INTEGER PRIMARY KEY, offer_id INTEGER, market_id INTEGER,"
            " reason TEXT, bought INTEGER);"
            "INSERT INTO accounts VALUES (1, 'sim_honest0'), (2, 'sim_mislabeler_1_1'),"
            " (3, 'sim_mislabeler_2_1');"
            "INSERT INTO markets VALUES (1, NULL), (2, NULL);"
            "INSERT INTO offers VALUES (1, 1), (2, 2), (3, 3);"
            # market 1: the honest note priced out, then the flipped copy bought; market 2: alone
            "INSERT INTO inspections VALUES (1, 1, 1, 'worth_less_than_price', 0), (2, 2, 1, 'bought', 1),"
            " (3, 3, 2, 'bought', 1);"
        )
    out = subprocess.run([sys.executable, str(TOOL), str(db)], capture_output=True, text=True, check=True)
    assert "mislabelers' notes bought: 2" in out.stdout
    assert "worth less than its price: 1" in out.stdout
    assert "no honest note read before it: 1" in out.stdout
