"""Retriever: the faiss index mirrors the documents table (sync, lazy sync, rebuild), and filters."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlite_utils import Database

from notebazaar.index.embed import Embedder, get_embedder
from notebazaar.index.retrieval import INDEX_FILE, META_FILE, STAMPS_FILE, Retriever
from notebazaar.pipeline import community, market
from notebazaar.pipeline.config import IndexSettings, Settings
from notebazaar.pipeline.errors import ValidationError
from tests.conftest import World


class CountingEmbedder:
    """The real embedder, counting the texts it embeds (and optionally under another name)."""

    def __init__(self, inner: Embedder, name: str | None = None) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.name = name or inner.name
        self.encoded: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.encoded.extend(texts)
        return self.inner.encode(texts)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return get_embedder()


@pytest.fixture
def counting(embedder: Embedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


def add_doc(
    db: Database,
    text: str,
    *,
    kind: str = "reference",
    community_id: int | None = None,
    ref_id: int | None = None,
) -> int:
    cursor = db.execute(
        "INSERT INTO documents (kind, ref_id, community_id, title, text, source, created_at)"
        " VALUES (?, ?, ?, '', ?, 'test', ?)",
        [kind, ref_id, community_id, text, time.time()],
    )
    return int(cursor.lastrowid)  # type: ignore[arg-type]


def retriever(db: Database, db_path: Path, emb: object, **index: object) -> Retriever:
    return Retriever(db, db_path.parent, IndexSettings(**index), embedder=emb)  # type: ignore[arg-type]


CLIMATE = "Carbon dioxide in the atmosphere has risen by half since pre-industrial times."
VACCINE = "Measles vaccines are safe and about 97 percent effective after two doses."
MOON = "The Apollo 11 crew landed on the Moon in July 1969."


def test_sync_indexes_new_documents_and_persists(
    db: Database, db_path: Path, counting: CountingEmbedder
) -> None:
    ids = [add_doc(db, t) for t in (CLIMATE, VACCINE, MOON)]
    r = retriever(db, db_path, counting)
    assert r.sync() == 3
    assert r.index.ids() == set(ids)
    for name in (INDEX_FILE, META_FILE, STAMPS_FILE):
        assert (db_path.parent / name).is_file()
    meta = json.loads((db_path.parent / META_FILE).read_text())
    assert meta["model"] == "all-MiniLM-L6-v2" and meta["dim"] == 384 and meta["kind"] == "flat"
    hits = r.search("How much has CO2 gone up?", 2)
    assert hits[0].doc_id == ids[0] and hits[0].text == CLIMATE and hits[0].kind == "reference"
    assert hits[0].score > hits[1].score
    assert r.sync() == 0

    # A new process reuses the persisted index: nothing is embedded again.
    fresh = CountingEmbedder(counting.inner)
    again = retriever(db, db_path, fresh)
    assert again.sync() == 0
    assert fresh.encoded == []
    assert again.search("moon landing", 1)[0].doc_id == ids[2]


def test_search_syncs_lazily_after_inserts_and_deletes(
    db: Database, db_path: Path, counting: CountingEmbedder
) -> None:
    add_doc(db, CLIMATE)
    r = retriever(db, db_path, counting)
    r.sync()
    assert not r.is_stale()
    moon = add_doc(db, MOON)
    assert r.is_stale()
    assert r.search("Apollo astronauts on the moon", 1)[0].doc_id == moon
    db.execute("DELETE FROM documents WHERE id = ?", [moon])  # e.g. an unpublished note's row
    hits = r.search("Apollo astronauts on the moon", 5)
    assert moon not in {h.doc_id for h in hits}
    assert moon not in r.index.ids()
    # The removal is on disk at once.
    assert moon not in retriever(db, db_path, counting).index.ids()


def test_changes_from_another_connection_are_seen(db_path: Path, counting: CountingEmbedder) -> None:
    from notebazaar.pipeline.db import open_db

    reader, writer = open_db(db_path), open_db(db_path)
    try:
        r = retriever(reader, db_path, counting)
        assert r.search("anything") == []
        doc = add_doc(writer, VACCINE)
        assert [h.doc_id for h in r.search("are measles shots effective?", 1)] == [doc]
    finally:
        reader.close()
        writer.close()


def test_rebuilds_when_the_index_file_is_missing(
    db: Database, db_path: Path, counting: CountingEmbedder
) -> None:
    ids = {add_doc(db, t) for t in (CLIMATE, VACCINE)}
    retriever(db, db_path, counting).sync()
    (db_path.parent / INDEX_FILE).unlink()
    fresh = CountingEmbedder(counting.inner)
    r = retriever(db, db_path, fresh)
    assert r.sync() == 2
    assert r.index.ids() == ids and len(fresh.encoded) == 2


def test_rebuilds_when_the_model_or_kind_changes(
    db: Database, db_path: Path, counting: CountingEmbedder
) -> None:
    add_doc(db, CLIMATE)
    retriever(db, db_path, counting).sync()
    other = CountingEmbedder(counting.inner, name="/models/another")
    assert retriever(db, db_path, other).sync() == 1
    assert json.loads((db_path.parent / META_FILE).read_text())["model"] == "/models/another"
    pinned = CountingEmbedder(counting.inner, name="/models/another")
    pinned.sha256 = "a" * 64  # type: ignore[attr-defined]
    assert retriever(db, db_path, pinned).sync() == 0  # the file did not know the hash: kept
    repinned = CountingEmbedder(counting.inner, name="/models/another")
    repinned.sha256 = "b" * 64  # type: ignore[attr-defined]
    assert retriever(db, db_path, repinned).sync() == 1  # other weights under the same name
    hnsw = retriever(db, db_path, counting, kind="hnsw")
    assert hnsw.sync() == 1 and hnsw.index.kind == "hnsw"


def test_a_reused_row_id_is_embedded_again(db: Database, db_path: Path, counting: CountingEmbedder) -> None:
    add_doc(db, CLIMATE)
    last = add_doc(db, MOON)
    r = retriever(db, db_path, counting)
    r.sync()
    db.execute("DELETE FROM documents WHERE id = ?", [last])
    time.sleep(0.01)
    reused = add_doc(db, VACCINE)
    assert reused == last  # SQLite hands the max id out again
    hits = r.search("measles vaccine effectiveness", 1)
    assert hits[0].doc_id == reused and hits[0].text == VACCINE
    assert hits[0].score > 0.5  # the vector is the new row's, not the moon landing's


def test_kind_community_and_exclude_filters(
    db: Database, db_path: Path, world: World, counting: CountingEmbedder
) -> None:
    other = community.create_community(db, "others", settings=Settings().market)
    post = community.add_post(db, world.community_id, "Is the climate really warming? CO2 is harmless.")
    global_ref = add_doc(db, CLIMATE)
    mine = add_doc(db, "Atmospheric CO2 passed 420 ppm in 2023.", community_id=world.community_id)
    theirs = add_doc(db, "CO2 concentrations keep climbing every year.", community_id=other.id)
    reveal = add_doc(
        db, "Note: CO2 is a greenhouse gas.", kind="reveal", community_id=world.community_id, ref_id=7
    )
    r = retriever(db, db_path, counting)
    query = "carbon dioxide rising in the atmosphere"

    assert {h.doc_id for h in r.search(query, 10)} == {global_ref, mine, theirs, reveal}
    scoped = {h.doc_id for h in r.search(query, 10, community_id=world.community_id)}
    assert scoped == {global_ref, mine, reveal}
    assert {h.doc_id for h in r.search(query, 10, kinds=("reveal",))} == {reveal}
    posts = r.search(query, 10, kinds=("post",))
    assert [(h.kind, h.ref_id) for h in posts] == [("post", post)]
    assert r.search(query, 10, kinds=("post",), exclude_ref=("post", post)) == []
    hits = r.search_vector(counting.inner.encode([query])[0] * 3.0, 2, community_id=other.id)
    assert {h.doc_id for h in hits} <= {global_ref, theirs}
    with pytest.raises(ValidationError, match="unknown document kind"):
        r.search(query, kinds=("offer",))
    with pytest.raises(ValidationError, match="k must be"):
        r.search(query, 0)


def test_rare_kind_is_found_past_the_over_fetch(
    db: Database, db_path: Path, counting: CountingEmbedder
) -> None:
    rows = [
        ("reference", None, f"Passage {i}: sea ice in the Arctic shrank in year {1990 + i}.")
        for i in range(60)
    ]
    db.conn.executemany(
        "INSERT INTO documents (kind, community_id, text, created_at) VALUES (?, ?, ?, 1.0)", rows
    )
    reveal = add_doc(db, "Bananas are berries, botanically speaking.", kind="reveal", ref_id=1)
    r = retriever(db, db_path, counting)
    hits = r.search("Arctic sea ice decline", 3, kinds=("reveal",))
    assert [h.doc_id for h in hits] == [reveal]


def test_hnsw_index_handles_removal_by_rebuilding(
    db: Database, db_path: Path, counting: CountingEmbedder
) -> None:
    ids = [add_doc(db, t) for t in (CLIMATE, VACCINE, MOON)]
    r = retriever(db, db_path, counting, kind="hnsw")
    r.sync()
    db.execute("DELETE FROM documents WHERE id = ?", [ids[1]])
    assert r.sync() == 1
    assert r.index.ids() == {ids[0], ids[2]}
    assert r.search("measles", 3)[0].doc_id != ids[1]


def test_only_documents_are_indexed_never_sealed_notes(
    db: Database, db_path: Path, world: World, counting: CountingEmbedder
) -> None:
    post = community.add_post(
        db, world.community_id, "Claim: the Moon landing in 1969 was staged in a studio."
    )
    market_id = market.open_market(db, post)
    secret = "Sealed: the Apollo retroreflectors left on the Moon are still used by observatories today."
    market.submit_offer(
        db, market_id, world.informers[0], classification="misleading", text=secret, bid=5, price=10
    )
    r = retriever(db, db_path, counting)
    r.sync()
    doc_ids = {row[0] for row in db.execute("SELECT id FROM documents")}
    assert r.index.ids() == doc_ids
    assert secret not in counting.encoded
    assert all("retroreflectors" not in text for text in counting.encoded)
    # Nothing near the sealed note's vector is in the index, whatever kinds are asked for.
    hits = r.search_vector(counting.inner.encode([secret])[0], 5, kinds=("post", "reveal", "reference"))
    assert all(h.score < 0.95 for h in hits)
    assert all("retroreflectors" not in h.text for h in hits)


def test_deleting_an_older_row_never_costs_a_result(
    db: Database, db_path: Path, counting: CountingEmbedder
) -> None:
    climate, vaccine, moon = (add_doc(db, t) for t in (CLIMATE, VACCINE, MOON))
    r = retriever(db, db_path, counting)
    r.recount_seconds = 3600.0  # only the search itself can notice the deletion
    r.sync()
    db.execute("DELETE FROM documents WHERE id = ?", [climate])
    hits = r.search("carbon dioxide in the air", 2)
    assert [h.doc_id for h in hits] != [] and climate not in {h.doc_id for h in hits}
    assert len(hits) == 2
    assert r.index.ids() == {vaccine, moon}


def test_periodic_count_notices_deletions(db: Database, db_path: Path, counting: CountingEmbedder) -> None:
    first = add_doc(db, CLIMATE)
    add_doc(db, MOON)
    r = retriever(db, db_path, counting)
    r.sync()
    r.recount_seconds = 0.0
    db.execute("DELETE FROM documents WHERE id = ?", [first])
    assert r.is_stale()
    r.search("Apollo", 1)  # does not pick the deleted row, but the count sees it gone
    assert first not in r.index.ids()
    assert not r.is_stale()
