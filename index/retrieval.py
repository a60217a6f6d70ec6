"""Retrieval over the ``documents`` table: the judge's context (reference corpus, revealed notes, posts).

The faiss index mirrors the table: its ids are the table's row ids. :meth:`Retriever.sync` brings it in
line (embeds new rows, removes deleted ones: an unpublished note's row is deleted, so its vector goes
too) and persists it in the database's folder:

* ``index.faiss``: the faiss index (:class:`index.store.VectorIndex`);
* ``index.json``: model name, weights sha256, dimension and index kind; if any differs from the
  settings in force, the index is rebuilt from the table;
* ``index.stamps.npz``: each indexed id with its row's ``created_at``, so a row id that SQLite reuses
  after a delete is re-embedded rather than answered with the old row's vector.

Why search checks freshness cheaply: the simulation searches thousands of times. ``PRAGMA data_version``
and the connection's change counter say whether anything was written at all; only then is a fingerprint
(count, max id, sum of ``created_at``) of the table compared, and only a changed fingerprint triggers a
full :meth:`Retriever.sync`.

Amnesia: query texts may be sealed notes under inspection. They are embedded in memory and never
logged, cached or stored; only ``documents`` rows (public text) are ever added to the index.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlite_utils import Database

from index.embed import Embedder, get_embedder, normalise
from index.store import VectorIndex
from pipeline.config import IndexSettings
from pipeline.errors import ValidationError

log = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
META_FILE = "index.json"
STAMPS_FILE = "index.stamps.npz"
FORMAT = 1
DOC_KINDS = ("post", "reveal", "reference")
_SQL_CHUNK = 500

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Hit:
    """A retrieved document with its similarity (inner product of unit vectors, in [-1, 1])."""

    doc_id: int
    kind: str
    ref_id: int | None
    community_id: int | None
    text: str
    title: str
    source: str
    score: float


@dataclass(frozen=True)
class _Doc:
    kind: str
    ref_id: int | None
    community_id: int | None


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def embed_text(title: str, text: str) -> str:
    """What is embedded for a row: its title (if any) and its text."""
    return f"{title}\n{text}" if title else text


class Retriever:
    """Semantic search over the ``documents`` table, with a faiss index kept in ``folder``."""

    #: While only additions happen, the index file is rewritten at most this often (seconds); the
    #: table is the source of truth, so a process that exits first only re-embeds a few rows on the
    #: next start. Removals and large additions are written at once.
    persist_after_seconds: float = 5.0
    persist_after_additions: int = 256

    embedder: Embedder

    def __init__(
        self,
        db: Database,
        folder: Path,
        settings: IndexSettings,
        *,
        embedder: Embedder | None = None,
    ) -> None:
        self.db = db
        self.folder = Path(folder)
        self.settings = settings
        self.embedder = embedder or get_embedder(
            settings.model, batch_size=settings.batch_size, sha256=settings.model_sha256
        )
        self._lock = threading.RLock()
        self._docs: dict[int, _Doc] = {}
        self._by_ref: dict[tuple[str, int], int] = {}
        self._allowed: dict[tuple[tuple[str, ...], int | None], np.ndarray] = {}
        self._fingerprint: tuple[Any, ...] | None = None
        self._seen: tuple[int, int] | None = None
        self._unsaved = 0
        self._saved_at = 0.0
        self._index, self._stamps, self._dirty = self._load()

    # --- persistence ------------------------------------------------------------------------

    @property
    def index(self) -> VectorIndex:
        return self._index

    def _meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model": self.embedder.name,
            "model_sha256": self.embedder.sha256,
            "dim": self.embedder.dim,
            "kind": self.settings.kind,
        }

    def _load(self) -> tuple[VectorIndex, dict[int, float], bool]:
        """The persisted index if it matches the settings in force, else an empty one to rebuild."""
        empty = VectorIndex(self.embedder.dim, self.settings.kind), {}, True
        paths = [self.folder / name for name in (INDEX_FILE, META_FILE, STAMPS_FILE)]
        if not all(p.is_file() for p in paths):
            return empty
        try:
            meta = json.loads(paths[1].read_text(encoding="utf-8"))
            if {k: meta.get(k) for k in self._meta()} != self._meta():
                log.info("index settings or model changed (%s): rebuilding the index", META_FILE)
                return empty
            vectors = VectorIndex.load(paths[0], kind=self.settings.kind)
            with np.load(paths[2]) as data:
                stamps = dict(zip(data["ids"].tolist(), data["created_at"].tolist(), strict=True))
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            log.warning("cannot read the index in %s (%s): rebuilding it", self.folder, exc)
            return empty
        if vectors.ids() != set(stamps) or vectors.dim != self.embedder.dim:
            log.warning("index files in %s disagree with each other: rebuilding the index", self.folder)
            return empty
        return vectors, stamps, False

    def save(self) -> None:
        """Write the index and its meta files now (each atomically: temporary file, then rename)."""
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            ids = np.fromiter(self._stamps.keys(), dtype=np.int64, count=len(self._stamps))
            created = np.fromiter(self._stamps.values(), dtype=np.float64, count=len(self._stamps))
            stamps_tmp = self.folder / f".{STAMPS_FILE}.{os.getpid()}.tmp"
            meta_tmp = self.folder / f".{META_FILE}.{os.getpid()}.tmp"
            try:
                with stamps_tmp.open("wb") as fh:
                    np.savez(fh, ids=ids, created_at=created)
                meta_tmp.write_text(json.dumps(self._meta() | {"count": len(ids)}), encoding="utf-8")
                self._index.save(self.folder / INDEX_FILE)
                os.replace(stamps_tmp, self.folder / STAMPS_FILE)
                os.replace(meta_tmp, self.folder / META_FILE)
            finally:
                stamps_tmp.unlink(missing_ok=True)
                meta_tmp.unlink(missing_ok=True)
            self._dirty = False
            self._unsaved = 0
            self._saved_at = time.monotonic()

    # --- keeping in line with the table -----------------------------------------------------

    def _state(self) -> tuple[int, int]:
        """Changes seen by this connection: other connections' commits, and its own writes."""
        version = int(self.db.execute("PRAGMA data_version").fetchone()[0])
        return version, int(self.db.conn.total_changes)

    def _table_fingerprint(self) -> tuple[Any, ...]:
        row = self.db.execute(
            "SELECT count(*), coalesce(max(id), 0), total(created_at) FROM documents"
        ).fetchone()
        return tuple(row)

    def is_stale(self) -> bool:
        """Whether the table changed since the last sync (cheap; what search checks before each query)."""
        with self._lock:
            state = self._state()
            if state == self._seen:
                return False
            if self._table_fingerprint() != self._fingerprint:
                return True
            self._seen = state
            return False

    def sync(self, *, progress: Progress | None = None) -> int:
        """Bring the index in line with the ``documents`` table and persist it.

        Embeds rows not in the index, removes ids whose row is gone (or was replaced under a reused id).
        ``progress(done, total)`` is called as additions are embedded. Returns the number of changes.
        """
        with self._lock:
            state = self._state()
            fingerprint = self._table_fingerprint()
            rows = self.db.execute(
                "SELECT id, created_at, kind, ref_id, community_id FROM documents"
            ).fetchall()
            current = {int(r[0]): float(r[1]) for r in rows}
            stale = [i for i, stamp in self._stamps.items() if current.get(i) != stamp]
            if stale:
                self._index.remove(np.asarray(stale, dtype=np.int64))
                for i in stale:
                    del self._stamps[i]
            missing = [i for i in current if i not in self._stamps]
            added = self._embed_rows(missing, progress) if missing else 0
            self._docs = {int(r[0]): _Doc(r[2], r[3], r[4]) for r in rows}
            self._by_ref = {(d.kind, d.ref_id): i for i, d in self._docs.items() if d.ref_id is not None}
            self._allowed.clear()
            self._fingerprint = fingerprint
            self._seen = state
            changes = len(stale) + added
            if changes:
                log.info("index sync: %d added, %d removed, %d indexed", added, len(stale), len(self._index))
            self._unsaved += changes
            if (
                self._dirty
                or stale
                or self._unsaved >= self.persist_after_additions
                or (self._unsaved and time.monotonic() - self._saved_at >= self.persist_after_seconds)
            ):
                self.save()
            return changes

    def _embed_rows(self, ids: list[int], progress: Progress | None) -> int:
        """Embed and add these rows in chunks; a row deleted meanwhile is skipped."""
        added = 0
        total = len(ids)
        chunk = max(self.embedder.batch_size * 8, 64)
        if progress:
            progress(0, total)
        done = 0
        for part in _chunks(ids, chunk):
            found: list[tuple[int, float, str]] = []
            for sub in _chunks(part, _SQL_CHUNK):
                marks = ",".join("?" * len(sub))
                found += [
                    (int(r[0]), float(r[1]), embed_text(r[2], r[3]))
                    for r in self.db.execute(
                        f"SELECT id, created_at, title, text FROM documents WHERE id IN ({marks})", list(sub)
                    )
                ]
            if found:
                vectors = self.embedder.encode([text for _, _, text in found])
                self._index.add(np.asarray([i for i, _, _ in found], dtype=np.int64), vectors)
                self._stamps.update((i, stamp) for i, stamp, _ in found)
                added += len(found)
            done += len(part)
            if progress:
                progress(done, total)
        return added

    # --- search -----------------------------------------------------------------------------

    def search(
        self,
        text: str,
        k: int = 5,
        *,
        kinds: Sequence[str] = ("reference", "reveal"),
        community_id: int | None = None,
        exclude_ref: tuple[str, int] | None = None,
    ) -> list[Hit]:
        """The ``k`` documents most similar to ``text`` among ``kinds``.

        ``community_id`` keeps that community's documents and the global ones (``community_id`` NULL,
        e.g. the shared reference corpus); None keeps all. ``exclude_ref`` leaves out one document,
        e.g. ``("post", post_id)`` so a post does not retrieve itself. ``text`` is never stored.
        """
        kinds = self._check(k, kinds)
        return self._search(self.embedder.encode([text]), k, kinds, community_id, exclude_ref)

    def search_vector(
        self,
        vector: np.ndarray,
        k: int = 5,
        *,
        kinds: Sequence[str] = ("reference", "reveal"),
        community_id: int | None = None,
    ) -> list[Hit]:
        """As :meth:`search`, for a query already embedded by :attr:`embedder` (normalised here)."""
        kinds = self._check(k, kinds)
        query = normalise(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        if query.shape[1] != self.embedder.dim:
            raise ValidationError(
                f"query vector has {query.shape[1]} dimensions, the index {self.embedder.dim}"
            )
        return self._search(query, k, kinds, community_id, None)

    @staticmethod
    def _check(k: int, kinds: Sequence[str]) -> tuple[str, ...]:
        if k < 1:
            raise ValidationError("k must be at least 1")
        if isinstance(kinds, str):
            kinds = (kinds,)
        unknown = set(kinds) - set(DOC_KINDS)
        if unknown:
            raise ValidationError(f"unknown document kind(s) {sorted(unknown)}; use {', '.join(DOC_KINDS)}")
        return tuple(sorted(set(kinds)))

    def _search(
        self,
        query: np.ndarray,
        k: int,
        kinds: tuple[str, ...],
        community_id: int | None,
        exclude_ref: tuple[str, int] | None,
    ) -> list[Hit]:
        with self._lock:
            if self._fingerprint is None or self.is_stale():
                self.sync()
            total = len(self._index)
            if not total or not kinds:
                return []
            exclude = self._by_ref.get(exclude_ref) if exclude_ref is not None else None

            def keep(doc_id: int) -> bool:
                doc = self._docs.get(doc_id)
                return (
                    doc is not None
                    and doc_id != exclude
                    and doc.kind in kinds
                    and (community_id is None or doc.community_id is None or doc.community_id == community_id)
                )

            fetch = min(total, 4 * k + 16)
            scores, ids = self._index.search(query, fetch)
            picked = [
                (int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0 and keep(int(i))
            ]
            if len(picked) < k and fetch < total:
                # Over-fetching was not enough (a rare kind or a small community): search only among
                # the documents that pass the filter.
                allowed = self._allowed_ids(kinds, community_id)
                if exclude is not None:
                    allowed = allowed[allowed != exclude]
                scores, ids = self._index.search(query, max(1, min(k, len(allowed))), allowed=allowed)
                picked = [(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]
            picked = picked[:k]
        return self._hits(picked, kinds, community_id, exclude)

    def _allowed_ids(self, kinds: tuple[str, ...], community_id: int | None) -> np.ndarray:
        key = (kinds, community_id)
        found = self._allowed.get(key)
        if found is None:
            if len(self._allowed) > 256:
                self._allowed.clear()
            found = np.fromiter(
                (
                    i
                    for i, d in self._docs.items()
                    if d.kind in kinds
                    and (community_id is None or d.community_id is None or d.community_id == community_id)
                ),
                dtype=np.int64,
            )
            self._allowed[key] = found
        return found

    def _hits(
        self,
        picked: list[tuple[int, float]],
        kinds: tuple[str, ...],
        community_id: int | None,
        exclude: int | None,
    ) -> list[Hit]:
        """Read the picked rows' text from the table (authoritative: a row deleted meanwhile is dropped)."""
        if not picked:
            return []
        marks = ",".join("?" * len(picked))
        rows = {
            int(r[0]): r
            for r in self.db.execute(
                "SELECT id, kind, ref_id, community_id, title, text, source FROM documents"
                f" WHERE id IN ({marks})",
                [i for i, _ in picked],
            )
        }
        hits = []
        for doc_id, score in picked:
            row = rows.get(doc_id)
            if row is None or row[1] not in kinds or doc_id == exclude:
                continue
            if community_id is not None and row[3] is not None and row[3] != community_id:
                continue
            hits.append(Hit(doc_id, row[1], row[2], row[3], row[5], row[4], row[6], score))
        return hits
