"""The vector index: faiss, inner product over unit vectors, keyed by ``documents`` row ids.

Why these faiss types:

* ``auto`` (the default): the index switches kind by size. Exact ``flat`` search while it holds at
  most ``flat_max`` vectors (``[index] flat_max``, 20 000: a flat query over 2e4 vectors costs
  about a millisecond); past that it trains itself into ``ivf`` (below), whose query cost barely
  grows with the corpus (measured by ``notebazaar bench --scale``). IVF rather than HNSW because it
  removes vectors in place (an unpublished note), where HNSW rebuilds its graph.
* ``flat``: ``IndexIDMap2(IndexFlatIP)``. Exact; add, remove and reconstruct by id. Right up to a few
  hundred thousand vectors (~5-8 ms per query at 1e5).
* ``ivf``: ``IndexIVFFlat`` with its own ids and a hashtable direct map (so it can remove and
  reconstruct by id). ``IndexIDMap2`` is not wrapped around it because its ``remove_ids`` assumes the
  inner index renumbers like a flat one, which IVF does not. IVF must be trained, so below
  :attr:`VectorIndex.ivf_min_train` vectors it stays flat and trains itself once it has enough.
* ``hnsw``: ``IndexIDMap2(IndexHNSWFlat)``. Fast approximate search, but HNSW cannot ``remove_ids``:
  :meth:`VectorIndex.remove` rebuilds the graph from the remaining vectors. Removal only happens when a
  moderator unpublishes a note, so the rebuild is rare.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, ClassVar

import faiss
import numpy as np

KINDS = ("auto", "flat", "ivf", "hnsw")


def _as_ids(ids: Any) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
    if arr.size and arr.min() < 0:
        raise ValueError("vector ids must be non-negative")
    return arr


def _as_vectors(vectors: Any, dim: int) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"vectors must have shape (n, {dim}), got {arr.shape}")
    return arr


class VectorIndex:
    """A faiss index of unit vectors keyed by int64 ids; see the module docstring for the kinds."""

    ivf_min_train: ClassVar[int] = 20_000
    ivf_nprobe: ClassVar[int] = 16
    #: At most this many vectors scanned per IVF query (faiss ``max_codes``): lists trained on
    #: clustered data are uneven, and a query into a dense cluster would otherwise scan thousands
    #: per list. At 2e5 clustered vectors it kept recall@28 at 1.0 and cut a dense query from ~7 to ~2.5 ms.
    ivf_max_codes: ClassVar[int] = 8192
    hnsw_m: ClassVar[int] = 32
    hnsw_ef_construction: ClassVar[int] = 80
    hnsw_ef_search: ClassVar[int] = 128

    def __init__(self, dim: int, kind: str = "flat", *, flat_max: int | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"index kind must be one of {', '.join(KINDS)}, not {kind!r}")
        if dim < 1:
            raise ValueError("dim must be at least 1")
        self.dim = dim
        self.kind = kind
        # Vectors an ``ivf`` or ``auto`` index holds flat, before it trains itself into IVF.
        self.flat_max = self.ivf_min_train - 1 if flat_max is None else flat_max
        self._index: Any = self._new_hnsw() if kind == "hnsw" else self._new_flat()
        self._ids: set[int] = set()

    # --- construction -----------------------------------------------------------------------

    def _new_flat(self) -> Any:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def _new_hnsw(self) -> Any:
        inner = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = self.hnsw_ef_construction
        inner.hnsw.efSearch = self.hnsw_ef_search
        return faiss.IndexIDMap2(inner)

    def _new_ivf(self, training: np.ndarray) -> Any:
        n = len(training)
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(training)
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        index.nprobe = min(nlist, self.ivf_nprobe)
        return index

    @property
    def is_ivf(self) -> bool:
        """Whether the index is a trained IVF (an ``ivf`` index stays flat until it has enough data)."""
        return isinstance(self._index, faiss.IndexIVF)

    def _stored(self) -> tuple[np.ndarray, np.ndarray]:
        """All (ids, vectors) of an id-mapped flat or HNSW index, in storage order."""
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        inner = faiss.downcast_index(self._index.index)
        storage = faiss.downcast_index(inner.storage) if isinstance(inner, faiss.IndexHNSW) else inner
        vectors = storage.reconstruct_n(0, storage.ntotal) if storage.ntotal else np.zeros((0, self.dim))
        return ids, np.ascontiguousarray(vectors, dtype=np.float32)

    # --- the API ----------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under ids that are not in the index yet (a duplicate id is an error)."""
        id_arr = _as_ids(ids)
        vec = _as_vectors(vectors, self.dim)
        if len(id_arr) != len(vec):
            raise ValueError(f"{len(id_arr)} ids for {len(vec)} vectors")
        if not len(id_arr):
            return
        new = {int(i) for i in id_arr}
        if len(new) != len(id_arr) or not new.isdisjoint(self._ids):
            raise ValueError("vector ids must be unique and not already in the index")
        if self.kind in ("ivf", "auto") and not self.is_ivf and len(self._ids) + len(id_arr) > self.flat_max:
            old_ids, old_vec = self._stored()
            all_ids = np.concatenate([old_ids, id_arr])
            all_vec = np.concatenate([old_vec, vec])
            index = self._new_ivf(all_vec)
            index.add_with_ids(all_vec, all_ids)
            self._index = index
        else:
            self._index.add_with_ids(vec, id_arr)
        self._ids |= new

    def remove(self, ids: np.ndarray) -> None:
        """Remove these ids; ids not in the index are ignored. HNSW rebuilds (it cannot remove)."""
        gone = {int(i) for i in _as_ids(ids)} & self._ids
        if not gone:
            return
        gone_arr = np.fromiter(gone, dtype=np.int64, count=len(gone))
        if self.kind == "hnsw":
            old_ids, old_vec = self._stored()
            keep = ~np.isin(old_ids, gone_arr)
            self._index = self._new_hnsw()
            if keep.any():
                self._index.add_with_ids(np.ascontiguousarray(old_vec[keep]), old_ids[keep])
        elif self.is_ivf:
            # The hashtable direct map can only remove through an IDSelectorArray.
            self._index.remove_ids(faiss.IDSelectorArray(gone_arr))
        else:
            self._index.remove_ids(faiss.IDSelectorBatch(gone_arr))
        self._ids -= gone

    def search(
        self, vectors: np.ndarray, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best (scores, ids) per query row; ids are -1 (scores -inf) where there are fewer.

        ``allowed`` restricts the search to those ids (a faiss ``IDSelectorBatch``), for filters that
        over-fetching would not satisfy.
        """
        queries = _as_vectors(vectors, self.dim)
        if k < 1:
            raise ValueError("k must be at least 1")
        n = len(queries)
        if not self._ids or not n or (allowed is not None and not len(allowed)):
            return np.full((n, k), -np.inf, dtype=np.float32), np.full((n, k), -1, dtype=np.int64)
        params: Any = None
        selector = faiss.IDSelectorBatch(_as_ids(allowed)) if allowed is not None else None
        if self.is_ivf:
            params = faiss.SearchParametersIVF(
                sel=selector, nprobe=self._index.nprobe, max_codes=self.ivf_max_codes
            )
        elif self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.hnsw_ef_search, k))
        elif selector is not None:
            params = faiss.SearchParameters(sel=selector)
        if n == 1:
            # One query is too little work to share: OpenMP threads only add spin-waiting against
            # torch's threads (measured on 2 cores: 20k vectors, 13.7 ms with 2 threads, 1.9 ms with 1).
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                scores, ids = self._index.search(queries, k, params=params)
            finally:
                faiss.omp_set_num_threads(threads)
        else:
            scores, ids = self._index.search(queries, k, params=params)
        scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
        return scores, ids.astype(np.int64)

    def ids(self) -> set[int]:
        return set(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._ids

    def save(self, path: Path) -> None:
        """Write the index to ``path`` atomically (a temporary file, then a rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            faiss.write_index(self._index, str(tmp))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path, *, kind: str | None = None, flat_max: int | None = None) -> VectorIndex:
        """Read an index written by :meth:`save`.

        ``kind`` names the intended kind when the file cannot tell: an ``ivf`` or ``auto`` index
        saved before it had enough vectors to train is stored flat (and a flat file loads as
        ``auto``, which goes on from there).
        """
        index = faiss.read_index(str(path))
        if isinstance(index, faiss.IndexIVF):
            found = "ivf"
            ids = np.concatenate(
                [
                    faiss.rev_swig_ptr(index.invlists.get_ids(i), index.invlists.list_size(i)).copy()
                    for i in range(index.nlist)
                ]
                or [np.zeros(0, dtype=np.int64)]
            )
        elif isinstance(index, faiss.IndexIDMap2):
            inner = faiss.downcast_index(index.index)
            found = "hnsw" if isinstance(inner, faiss.IndexHNSW) else "flat"
            ids = faiss.vector_to_array(index.id_map)
        else:
            raise ValueError(f"{path} does not hold an index written by VectorIndex.save")
        switching = kind in ("ivf", "auto") and found in ("flat", "ivf")
        if kind is not None and kind != found and not switching:
            raise ValueError(f"{path} holds a {found} index, not {kind}")
        self = cls(int(index.d), kind or found, flat_max=flat_max)
        self._index = index
        self._ids = {int(i) for i in ids}
        return self
