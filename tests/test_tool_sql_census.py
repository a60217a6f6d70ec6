"""``tools/sql_census.py``: a bench market's statements, counted and timed by kind."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

TOOL = Path(__file__).resolve().parents[1] / "tools" / "sql_census.py"


class SeededVectors:
    """A stand-in for the model: a fixed unit vector per text, so the census needs no model here."""

    dim = 384
    name = "seeded"

    def encode(self, texts: list[str]) -> np.ndarray:
        rows = [np.random.default_rng(abs(hash(t)) % 2**32).standard_normal(self.dim) for t in texts]
        vectors = np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sql_census", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_statements_are_grouped_by_kind_without_their_literals() -> None:
    tool = _tool()
    assert tool.kind_of("SELECT id FROM t WHERE a = 12 AND b = 'x y'\n  LIMIT 3") == (
        "SELECT id FROM t WHERE a = ? AND b = ? LIMIT ?"
    )


def test_a_market_commits_once_per_offer_and_once_for_its_inspections() -> None:
    tool = _tool()
    total, kinds = tool.census(warm=1, markets=2, offers=3, embedder=SeededVectors())
    assert total > 0
    commits, _ = kinds["COMMIT"]
    # Each offer is its own request; then the post, its market, the auction, and one transaction
    # for every inspection and the finish (the embedded judge is quick).
    assert commits == 3 + 4
    assert all(n > 0 and ms >= 0 for n, ms in kinds.values())
