"""config.toml documents the built-in defaults, and settings are validated as they are read."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from notebazaar.pipeline.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def _defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    monkeypatch.chdir(tmp_path)  # no ./config.toml here
    monkeypatch.delenv("NOTEBAZAAR_CONFIG", raising=False)
    return Settings()


def test_config_toml_states_exactly_the_built_in_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    written = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    assert written == _defaults(monkeypatch, tmp_path).model_dump()


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOTEBAZAAR_CONFIG", str(ROOT / "config.toml"))
    monkeypatch.setenv("NOTEBAZAAR_MARKET__RESERVE", "7")
    assert Settings().market.reserve == 7


def test_unknown_keys_and_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[judge.openai]\napi_key = "sk-secret-in-a-file"\n', encoding="utf-8")
    monkeypatch.setenv("NOTEBAZAAR_CONFIG", str(bad))
    with pytest.raises(Exception, match="api_key"):
        Settings()
    bad.write_text("[market]\nattention_slots = 0\n", encoding="utf-8")
    with pytest.raises(Exception, match="attention_slots"):
        Settings()
