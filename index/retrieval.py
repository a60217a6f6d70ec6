"""Retrieval over the ``documents`` table: the judge's context (reference corpus, revealed notes, posts).

The faiss index mirrors the table: its ids are the table's row ids. :meth:`Retriever.sync` brings it in
line (embeds new rows, removes deleted ones: an unpublished note's row is deleted, so its vector goes
too) and persists it in the database's folder:

* ``index.faiss``: the faiss index (:class:`notebazaar.index.store.VectorIndex`);
* ``index.json``: model name, weights sha256, dimension and index kind; if any differs from the
  settings in force, the index is rebuilt from the table;
* ``index.stamps.npz``: each indexed id with its row's ``created_at``, so a row id that SQLite reuses
  after a delete is re-embedded rather than answered with the old row's vector.

Why search checks freshness cheaply: the simulation searches thousands of times, and counting or
scanning the table costs milliseconds per 1e4 rows. Before each query, ``PRAGMA data_version`` and the
connection's change counter say whether anything was written at all; only then is the newest row (a
rowid lookup) compared with the one seen at the last sync, and new rows past it are embedded. A
deleted row is noticed when a search picks it (its vector is then dropped by a full sync and the search
repeated) or by a count of the table at most every :attr:`Retriever.recount_seconds`; hits are always
read from the table, so a deleted row's text is never returned. :meth:`Retriever.sync` is exact.

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

from notebazaar.index.embed import Embedder, get_embedder, normalise
from notebazaar.index.store import VectorIndex
from notebazaar.pipeline.config import IndexSettings
from notebazaar.pipeline.db import change_marker
from notebazaar.pipeline.errors import ValidationError

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


def _passes(doc: _Doc, kinds: tuple[str, ...], community_id: int | None) -> bool:
    """The search filter: one of ``kinds``, in the community or global (community NULL)."""
    return doc.kind in kinds and (
        community_id is None or doc.community_id is None or doc.community_id == community_id
    )


class _Batch:
    """Texts to embed in the same model call as the index's new rows (see :meth:`Retriever.refresh`)."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.vectors: np.ndarray | None = None

    def encode_with(self, embedder: Embedder, rows: list[str]) -> np.ndarray:
        """Embed ``rows`` and this batch's texts in one call (each distinct text once); keep this
        batch's vectors and return the rows'."""
        distinct = list(dict.fromkeys(rows + self.texts))
        vectors = embedder.encode(distinct)
        at = {text: i for i, text in enumerate(distinct)}
        self.vectors = vectors[np.asarray([at[t] for t in self.texts], dtype=np.intp)]
        return vectors[np.asarray([at[t] for t in rows], dtype=np.intp)]


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def embed_text(title: str, text: str) -> str:
    """What is embedded for a row: its title (if any) and its text."""
    return f"{title}\n{text}" if title else text


class Retriever:
    """Semantic search over the ``documents`` table, with a faiss index kept in ``folder``."""

    #: While only additions happen, the index file is rewritten at most this often (seconds, between
    #: markets: :meth:`refresh` without texts), or once this many additions wait (both scaled up
    #: with the index: 1% of it, and this many seconds per 20 000 vectors); the table is the source
    #: of truth, so a process that exits first only re-embeds a few rows on the next start.
    #: Removals are written at once.
    persist_after_seconds: float = 5.0
    persist_after_additions: int = 256
    #: How often (seconds) the check before a search also counts the table to notice deletions.
    recount_seconds: float = 2.0

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
        self._head: tuple[int, float | None] | None = None
        self._seen: tuple[int, int] | None = None
        self._counted_at = 0.0
        self._unsaved = 0
        self._saved_at = 0.0
        self._index, self._stamps, self._dirty = self._load()

    # --- persistence ------------------------------------------------------------------------

    @property
    def index(self) -> VectorIndex:
        return self._index

    def _meta(self, kind: str | None = None) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model": self.embedder.name,
            # Only ``dim``, ``name`` and ``encode`` are required of an embedder (wrappers count too).
            "model_sha256": getattr(self.embedder, "sha256", ""),
            "dim": self.embedder.dim,
            "kind": kind or self.settings.kind,
        }

    def _stored_kind(self) -> str:
        """The kind the file holds: an ``auto`` index is written as what it is now, flat or ivf."""
        if self.settings.kind != "auto":
            return self.settings.kind
        return "ivf" if self._index.is_ivf else "flat"

    def _load(self) -> tuple[VectorIndex, dict[int, float], bool]:
        """The persisted index if it matches the settings in force, else an empty one to rebuild."""
        empty = VectorIndex(self.embedder.dim, self.settings.kind, flat_max=self.settings.flat_max), {}, True
        paths = [self.folder / name for name in (INDEX_FILE, META_FILE, STAMPS_FILE)]
        if not all(p.is_file() for p in paths):
            return empty
        try:
            meta = json.loads(paths[1].read_text(encoding="utf-8"))
            expected = self._meta()
            sha, known = expected.pop("model_sha256"), meta.get("model_sha256")
            # A wrapper embedder (a counter, say) may not know the hash: compare it only when both do.
            if expected["kind"] == "auto" and meta.get("kind") in ("flat", "ivf"):
                expected["kind"] = meta["kind"]  # what an ``auto`` index is at any size
            if {k: meta.get(k) for k in expected} != expected or (sha and known and sha != known):
                log.info("index settings or model changed (%s): rebuilding the index", META_FILE)
                return empty
            vectors = VectorIndex.load(paths[0], kind=self.settings.kind, flat_max=self.settings.flat_max)
            with np.load(paths[2]) as data:
                stamps = dict(zip(data["ids"].tolist(), data["created_at"].tolist(), strict=True))
        except (OSError, ValueError, KeyError, RuntimeError, AttributeError, TypeError) as exc:
            log.warning("cannot read the index in %s (%s): rebuilding it", self.folder, exc)
            return empty
        if vectors.ids() != set(stamps) or vectors.dim != self.embedder.dim:
            log.warning("index files in %s disagree with each other: rebuilding the index", self.folder)
            return empty
        return vectors, stamps, bool(sha and not known)  # write the hash down once it is known

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
                meta = self._meta(self._stored_kind()) | {"count": len(ids)}
                meta_tmp.write_text(json.dumps(meta), encoding="utf-8")
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
        return change_marker(self.db)

    def _read_head(self) -> tuple[int, float | None]:
        """The newest row's (id, created_at): a rowid lookup, cheap at any table size."""
        row = self.db.execute("SELECT id, created_at FROM documents ORDER BY id DESC LIMIT 1").fetchone()
        return (int(row[0]), float(row[1])) if row else (0, None)

    def _count(self) -> int:
        self._counted_at = time.monotonic()
        return int(self.db.execute("SELECT count(*) FROM documents").fetchone()[0])

    def is_stale(self) -> bool:
        """Whether the table has rows the index lacks, or lost rows the index has."""
        with self._lock:
            if self._head is None:
                return True
            state = self._state()
            if state == self._seen:
                return False
            if self._read_head() != self._head or self._count() != len(self._stamps):
                return True
            self._seen = state
            return False

    def sync(self, *, progress: Progress | None = None) -> int:
        """Bring the index in line with the ``documents`` table and persist it.

        Embeds rows not in the index, removes ids whose row is gone (or was replaced under a reused
        id). ``progress(done, total)`` is called as additions are embedded. Returns the number of
        changes. Appends cost only the new rows; a deletion costs one scan of the table.
        """
        with self._lock:
            return self._catch_up(exact=True, progress=progress, idle=True)

    def _catch_up(
        self,
        *,
        exact: bool,
        progress: Progress | None = None,
        batch: _Batch | None = None,
        idle: bool = False,
    ) -> int:
        """Sync: incrementally when only rows past the last seen id were added, else by a full scan.

        ``exact=False`` (the check before each search) skips counting the table, so a deletion is only
        noticed when a search meets a deleted row or at the next periodic count; the hits are read from
        the table, so a deleted row is never returned either way.
        """
        state = self._state()
        head = self._read_head()
        new_rows = self._appended(self._count() if exact else None)
        changes = self._full_sync(progress) if new_rows is None else self._add_rows(new_rows, progress, batch)
        self._head = head
        self._seen = state
        self._persist(changes, removed=new_rows is None and changes > 0, idle=idle)
        return changes

    def _appended(self, count: int | None) -> list[Any] | None:
        """Rows added since the last sync, or None when anything else may have changed.

        SQLite reuses a row id only past the current maximum, i.e. after the row we last saw as the
        newest was deleted; so if that row is still there unchanged, every older id still holds the
        row we embedded, and only ids above it can be new. With ``count``, deletions are ruled out too.
        """
        if self._head is None:
            return None
        last_id, last_created = self._head
        if last_id:
            row = self.db.execute("SELECT created_at FROM documents WHERE id = ?", [last_id]).fetchone()
            if row is None or float(row[0]) != last_created:
                return None
        rows = self.db.execute(
            "SELECT id, created_at, kind, ref_id, community_id FROM documents WHERE id > ? ORDER BY id",
            [last_id],
        ).fetchall()
        if count is not None and count != len(self._stamps) + sum(
            1 for r in rows if r[0] not in self._stamps
        ):
            return None
        return rows

    def _full_sync(self, progress: Progress | None) -> int:
        rows = self.db.execute("SELECT id, created_at, kind, ref_id, community_id FROM documents").fetchall()
        current = {int(r[0]): float(r[1]) for r in rows}
        stale = [i for i, stamp in self._stamps.items() if current.get(i) != stamp]
        if stale:
            self._index.remove(np.asarray(stale, dtype=np.int64))
            for i in stale:
                del self._stamps[i]
        self._docs = {}
        self._by_ref = {}
        self._allowed.clear()
        self._counted_at = time.monotonic()
        added = self._add_rows(rows, progress)
        if stale or added:
            log.info("index sync: %d added, %d removed, %d indexed", added, len(stale), len(self._index))
        return len(stale) + added

    def _add_rows(self, rows: Sequence[Any], progress: Progress | None, batch: _Batch | None = None) -> int:
        """Record these rows' metadata for filtering and embed those not in the index yet."""
        fresh = []
        for r in rows:
            doc_id = int(r[0])
            doc = _Doc(r[2], r[3], r[4])
            self._docs[doc_id] = doc
            if doc.ref_id is not None:
                self._by_ref[(doc.kind, doc.ref_id)] = doc_id
            if doc_id not in self._stamps:
                fresh.append((doc_id, doc))
        for (kinds, community_id), allowed in list(self._allowed.items()):
            extra = [i for i, d in fresh if _passes(d, kinds, community_id)]
            if extra:
                self._allowed[(kinds, community_id)] = np.concatenate([allowed, np.asarray(extra, np.int64)])
        return self._embed_rows([i for i, _ in fresh], progress, batch) if fresh else 0

    def _persist(self, changes: int, *, removed: bool, idle: bool = False) -> None:
        """Write the files now if they are due. Both thresholds grow with the index (rewriting a
        large index costs a write of all of it), and the time rule applies only between markets
        (``idle``): never in the middle of a close."""
        self._unsaved += changes
        size = len(self._index)
        additions = max(self.persist_after_additions, size // 100)
        seconds = self.persist_after_seconds * max(1.0, size / 20_000)
        if (
            self._dirty
            or removed
            or self._unsaved >= additions
            or (idle and self._unsaved and time.monotonic() - self._saved_at >= seconds)
        ):
            self.save()

    def _refresh(self, batch: _Batch | None = None, *, idle: bool = False) -> None:
        """The cheap check before each search (see :meth:`_catch_up`)."""
        if self._head is None:
            self._catch_up(exact=True, idle=idle)
            return
        state = self._state()
        if state == self._seen:
            if idle:
                self._persist(0, removed=False, idle=True)
            return
        if self._read_head() != self._head:
            self._catch_up(exact=False, batch=batch, idle=idle)
        elif time.monotonic() - self._counted_at >= self.recount_seconds and self._count() != len(
            self._stamps
        ):
            self._catch_up(exact=True, idle=idle)
        else:
            self._seen = state

    def _embed_rows(self, ids: list[int], progress: Progress | None, batch: _Batch | None = None) -> int:
        """Embed and add these rows in chunks; a row deleted meanwhile is skipped. A ``batch``'s texts
        are embedded with the first chunk, in the same call."""
        added = 0
        total = len(ids)
        chunk = max(self.settings.batch_size * 8, 64)
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
            if batch is not None and batch.vectors is None:
                vectors = batch.encode_with(self.embedder, [text for _, _, text in found])
            elif found:
                vectors = self.embedder.encode([text for _, _, text in found])
            if found:
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
        refresh: bool = True,
    ) -> list[Hit]:
        """As :meth:`search`, for a query already embedded by :attr:`embedder` (normalised here).

        ``refresh=False`` skips the check for rows added since the last one: a caller that runs many
        searches in a burst (the judge, within one market) calls :meth:`refresh` once first, so rows it
        writes meanwhile are embedded later in one batch instead of one by one.
        """
        kinds = self._check(k, kinds)
        query = normalise(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        if query.shape[1] != self.embedder.dim:
            raise ValidationError(
                f"query vector has {query.shape[1]} dimensions, the index {self.embedder.dim}"
            )
        return self._search(query, k, kinds, community_id, None, refresh=refresh)

    def refresh(self, texts: Sequence[str] = ()) -> np.ndarray | None:
        """Embed rows added since the last check (the cheap check searches make by default).

        With ``texts``, also embed them, in the same call to the model as the new rows (one batch
        costs less than two), and return their vectors. They are query texts (a market's notes under
        inspection, say): embedded in memory only, never added, stored, logged or cached."""
        with self._lock:
            batch = _Batch(list(texts)) if texts else None
            self._refresh(batch, idle=batch is None)  # with texts it is a close's: no file writes
            if batch is None:
                return None
            if batch.vectors is None:  # no new rows to share the call with
                batch.encode_with(self.embedder, [])
            return batch.vectors

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
        *,
        refresh: bool = True,
    ) -> list[Hit]:
        with self._lock:
            if refresh:
                self._refresh()
            hits, complete = self._search_once(query, k, kinds, community_id, exclude_ref)
            if not complete:
                # A picked row was deleted since the last sync (an unpublished note, say): drop its
                # vector and search again, so a deletion never costs a result.
                self._catch_up(exact=True)
                hits, _ = self._search_once(query, k, kinds, community_id, exclude_ref)
            return hits

    def _search_once(
        self,
        query: np.ndarray,
        k: int,
        kinds: tuple[str, ...],
        community_id: int | None,
        exclude_ref: tuple[str, int] | None,
    ) -> tuple[list[Hit], bool]:
        total = len(self._index)
        if not total:
            return [], True
        exclude = self._by_ref.get(exclude_ref) if exclude_ref is not None else None

        def keep(doc_id: int) -> bool:
            doc = self._docs.get(doc_id)
            return doc is not None and doc_id != exclude and _passes(doc, kinds, community_id)

        fetch = min(total, 4 * k + 16)
        scores, ids = self._index.search(query, fetch)
        picked = [
            (int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0 and keep(int(i))
        ]
        if len(picked) < k and fetch < total:
            # Over-fetching was not enough (a rare kind, a small community): search again among the
            # documents that pass the filter only.
            allowed = self._allowed_ids(kinds, community_id)
            if exclude is not None:
                allowed = allowed[allowed != exclude]
            scores, ids = self._index.search(query, max(1, min(k, len(allowed))), allowed=allowed)
            picked = [(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]
        return self._hits(picked[:k])

    def _allowed_ids(self, kinds: tuple[str, ...], community_id: int | None) -> np.ndarray:
        """Ids passing a filter, cached per filter and extended as rows are appended."""
        key = (kinds, community_id)
        found = self._allowed.get(key)
        if found is None:
            if len(self._allowed) >= 256:
                self._allowed.clear()
            found = np.fromiter(
                (i for i, d in self._docs.items() if i in self._stamps and _passes(d, kinds, community_id)),
                dtype=np.int64,
            )
            self._allowed[key] = found
        return found

    def _hits(self, picked: list[tuple[int, float]]) -> tuple[list[Hit], bool]:
        """The picked rows, read from the table; False when one of them is no longer there."""
        if not picked:
            return [], True
        marks = ",".join("?" * len(picked))
        rows = {
            int(r[0]): r
            for r in self.db.execute(
                "SELECT id, kind, ref_id, community_id, title, text, source FROM documents"
                f" WHERE id IN ({marks})",
                [i for i, _ in picked],
            )
        }
        hits = [
            Hit(doc_id, row[1], row[2], row[3], row[5], row[4], row[6], score)
            for doc_id, score in picked
            if (row := rows.get(doc_id)) is not None
        ]
        return hits, len(hits) == len(picked)
