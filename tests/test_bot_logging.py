"""The bots log to stderr as well as the file, at the configured level, one line per record on the
console (tracebacks in the file only), and the libraries that dump request bodies stay at INFO."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from notebazaar.cli.base import CHATTY_LIBRARIES, setup_console_logging, setup_logging
from notebazaar.pipeline.config import Settings


@pytest.fixture
def root_level() -> object:
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


def test_console_and_file_at_the_configured_level(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], root_level: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTEBAZAAR_LOGGING__LEVEL", "WARNING")
    level = Settings().logging.level
    assert level == "WARNING"
    db_path = tmp_path / "nb.db"
    setup_logging(db_path, level)
    setup_console_logging(level)
    log = logging.getLogger("notebazaar.bot.reddit.delivery")
    log.info("reddit outbox 1: note 1 posted as t1_a")
    log.warning("reddit outbox 2: HTTP 500; next attempt in 9s")
    try:
        raise ConnectionError("connection refused")
    except ConnectionError:
        log.exception("reddit deliver failed; will retry next tick")
    err = capsys.readouterr().err.splitlines()
    assert not any("posted as" in line for line in err)  # below the level
    assert any("HTTP 500; next attempt in 9s" in line for line in err)
    [failed] = [line for line in err if "deliver failed" in line]
    assert failed.endswith("(ConnectionError: connection refused)")
    assert not any("Traceback" in line for line in err)  # the console gets one line
    text = (tmp_path / "notebazaar.log").read_text(encoding="utf-8")
    assert "HTTP 500" in text and "Traceback (most recent call last)" in text and "posted as" not in text


def test_libraries_that_log_bodies_never_go_below_info(tmp_path: Path, root_level: object) -> None:
    setup_logging(tmp_path / "nb.db", "DEBUG")
    assert logging.getLogger().level == logging.DEBUG
    for name in CHATTY_LIBRARIES:  # prawcore logs a POST's data (a note, a salt) at DEBUG
        assert logging.getLogger(name).getEffectiveLevel() == logging.INFO, name
    assert "prawcore" in CHATTY_LIBRARIES and "discord" in CHATTY_LIBRARIES
