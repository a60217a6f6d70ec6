"""The embedding model: offline load, pinned-hash verification, encode shape and normalisation."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError as PydanticValidationError

from notebazaar.index import embed
from notebazaar.index.embed import PACKAGED_SHA256, Embedder, ModelError, ModelHashMismatch, get_embedder
from notebazaar.pipeline.config import IndexSettings


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return get_embedder()


def _model_copy(folder: Path, *, tamper: bool) -> Path:
    """A copy of the packaged model folder (links, except the weights when tampering)."""
    source = embed.packaged_model_path()
    for item in source.rglob("*"):
        if not item.is_file():
            continue
        target = folder / item.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        if item.name == "model.safetensors" and tamper:
            shutil.copyfile(item, target)
            with target.open("r+b") as fh:
                fh.seek(-1, 2)
                last = fh.read(1)
                fh.seek(-1, 2)
                fh.write(bytes([last[0] ^ 0xFF]))
        else:
            target.symlink_to(item)
    return folder


def test_packaged_model_is_verified_against_the_pinned_hash(embedder: Embedder) -> None:
    assert embedder.name == "all-MiniLM-L6-v2"
    assert embedder.sha256 == PACKAGED_SHA256
    assert embedder.dim == 384
    assert get_embedder() is embedder  # loaded once per process


def test_encode_gives_unit_float32_rows(embedder: Embedder) -> None:
    vectors = embedder.encode(["The earth is warming.", "Vaccines are tested in trials.", "x"])
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_encode_empty_input(embedder: Embedder) -> None:
    assert embedder.encode([]).shape == (0, 384)
    with pytest.raises(TypeError):
        embedder.encode("a single string")  # type: ignore[arg-type]


def test_encode_batches_agree_with_single_calls(embedder: Embedder) -> None:
    texts = [f"sentence number {i} about sea level rise" for i in range(7)]
    small = Embedder.__new__(Embedder)
    small.__dict__.update(embedder.__dict__ | {"batch_size": 2})
    np.testing.assert_allclose(small.encode(texts), embedder.encode(texts), atol=1e-5)


def test_similar_sentences_score_higher(embedder: Embedder) -> None:
    a, b, c = embedder.encode(
        ["Global temperatures are rising.", "The planet is getting warmer.", "My cat likes fish."]
    )
    assert float(a @ b) > float(a @ c) + 0.3


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    folder = _model_copy(tmp_path / "model", tamper=True)
    with pytest.raises(ModelHashMismatch, match="sha256"):
        Embedder(str(folder), sha256=PACKAGED_SHA256)


def test_tampered_packaged_model_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _model_copy(tmp_path / "model", tamper=True)
    monkeypatch.setattr(embed, "packaged_model_path", lambda: folder)
    with pytest.raises(ModelHashMismatch, match="expected " + PACKAGED_SHA256):
        Embedder("all-MiniLM-L6-v2")


def test_model_folder_with_matching_hash_loads(tmp_path: Path, embedder: Embedder) -> None:
    folder = _model_copy(tmp_path / "model", tamper=False)
    other = Embedder(str(folder), sha256=PACKAGED_SHA256.upper(), batch_size=8)
    assert other.sha256 == PACKAGED_SHA256
    assert other.name == str(folder)
    np.testing.assert_allclose(other.encode(["hello"]), embedder.encode(["hello"]), atol=1e-5)


def test_folder_without_weights_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no weights"):
        Embedder(str(tmp_path / "empty"), sha256=PACKAGED_SHA256)


def test_unknown_model_is_not_downloaded(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="neither a folder nor in the local model cache"):
        Embedder("someone/not-a-real-model", sha256=PACKAGED_SHA256)
    with pytest.raises(ModelError, match="cannot load embedding model"):
        Embedder("someone/not-a-real-model")


def test_model_sha256_setting_is_checked() -> None:
    assert IndexSettings(model_sha256=PACKAGED_SHA256).model_sha256 == PACKAGED_SHA256
    with pytest.raises(PydanticValidationError):
        IndexSettings(model_sha256="not-a-hash")
