"""VectorIndex: add, remove, search, save and load for the flat, IVF and HNSW kinds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from notebazaar.index.store import VectorIndex

DIM = 16


def unit(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(autouse=True)
def _small_ivf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(VectorIndex, "ivf_min_train", 200)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_add_search_remove_save_load(kind: str, tmp_path: Path) -> None:
    vectors = unit(300)
    ids = np.arange(1000, 1300, dtype=np.int64)
    index = VectorIndex(DIM, kind)
    index.add(ids[:100], vectors[:100])
    index.add(ids[100:], vectors[100:])  # an ivf index trains itself here
    assert len(index) == 300
    assert index.ids() == set(range(1000, 1300))
    if kind == "ivf":
        assert index.is_ivf

    scores, found = index.search(vectors[[5, 250]], 3)
    assert found.shape == (2, 3)
    assert list(found[:, 0]) == [1005, 1250]
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-4)

    index.remove(np.array([1005, 1250, 99999]))  # unknown ids are ignored
    assert len(index) == 298
    assert 1005 not in index.ids()
    _, found = index.search(vectors[[5]], 5)
    assert 1005 not in found[0]
    _, found = index.search(vectors[[6]], 1)
    assert found[0, 0] == 1006  # the remaining ids still map to their vectors

    path = tmp_path / "x.faiss"
    index.save(path)
    loaded = VectorIndex.load(path)
    assert loaded.kind == kind
    assert loaded.ids() == index.ids()
    _, again = loaded.search(vectors[[6, 7]], 1)
    assert list(again[:, 0]) == [1006, 1007]


def test_small_ivf_stays_flat_and_reloads_as_ivf(tmp_path: Path) -> None:
    index = VectorIndex(DIM, "ivf")
    index.add(np.arange(10), unit(10))
    assert not index.is_ivf
    index.save(tmp_path / "i.faiss")
    loaded = VectorIndex.load(tmp_path / "i.faiss", kind="ivf")
    assert loaded.kind == "ivf"
    loaded.add(np.arange(10, 300), unit(290, seed=1))
    assert loaded.is_ivf and len(loaded) == 300


def test_search_pads_with_minus_one_and_filters_by_allowed() -> None:
    index = VectorIndex(DIM)
    empty_scores, empty_ids = index.search(unit(1), 3)
    assert (empty_ids == -1).all() and np.isneginf(empty_scores).all()
    vectors = unit(4)
    index.add(np.array([1, 2, 3, 4]), vectors)
    scores, ids = index.search(vectors[:1], 6)
    assert sorted(ids[0, :4]) == [1, 2, 3, 4]
    assert list(ids[0, 4:]) == [-1, -1]
    assert np.isneginf(scores[0, 4:]).all()
    _, ids = index.search(vectors[:1], 3, allowed=np.array([3, 4]))
    assert sorted(ids[0, :2]) == [3, 4] and ids[0, 2] == -1


def test_bad_input_is_refused_and_changes_nothing() -> None:
    index = VectorIndex(DIM)
    index.add(np.array([1]), unit(1))
    with pytest.raises(ValueError, match="unique"):
        index.add(np.array([1]), unit(1))
    with pytest.raises(ValueError, match="unique"):
        index.add(np.array([2, 2]), unit(2))
    with pytest.raises(ValueError, match="shape"):
        index.add(np.array([3]), np.zeros((1, DIM + 1), dtype=np.float32))
    with pytest.raises(ValueError, match="ids for"):
        index.add(np.array([3, 4]), unit(1))
    with pytest.raises(ValueError, match="kind"):
        VectorIndex(DIM, "lsh")
    assert index.ids() == {1}


def test_load_rejects_a_kind_mismatch(tmp_path: Path) -> None:
    index = VectorIndex(DIM, "hnsw")
    index.add(np.array([1]), unit(1))
    index.save(tmp_path / "h.faiss")
    with pytest.raises(ValueError, match="hnsw"):
        VectorIndex.load(tmp_path / "h.faiss", kind="flat")


def test_auto_switches_from_flat_to_ivf_past_flat_max(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(400, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex(DIM, "auto", flat_max=300)
    index.add(np.arange(300), vectors[:300])
    assert not index.is_ivf  # exact while small
    index.add(np.arange(300, 400), vectors[300:])
    assert index.is_ivf and len(index) == 400  # past flat_max: trained on all 400
    _, ids = index.search(vectors[7:8], 1)
    assert ids[0][0] == 7
    index.remove(np.array([7]))
    assert 7 not in index and len(index) == 399
    index.save(tmp_path / "a.faiss")
    loaded = VectorIndex.load(tmp_path / "a.faiss", kind="auto", flat_max=300)
    assert loaded.is_ivf and loaded.kind == "auto" and len(loaded) == 399
    flat = VectorIndex(DIM, "flat")
    flat.add(np.arange(10), vectors[:10])
    flat.save(tmp_path / "f.faiss")
    assert VectorIndex.load(tmp_path / "f.faiss", kind="auto").kind == "auto"  # a flat file goes on as auto
