"""The Makefile on a newcomer's machine: torch's CPU build from PyTorch's CPU index where it answers,
the default index where not; browser tests skipped with a clear message where Chromium cannot be
installed (issue 15). Fake ``python`` and ``id`` programs record what make runs; nothing is
installed and nothing touches the network."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def _fake_venv(tmp_path: Path, *, cpu_index_answers: bool) -> tuple[Path, Path]:
    """A venv whose python logs its arguments, and fails a pip install from the CPU index when that
    index is meant to be unreachable (as pip does: 'No matching distribution found')."""
    venv, log = tmp_path / "venv", tmp_path / "calls.log"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    fail = "" if cpu_index_answers else f'case "$*" in *"--index-url {CPU_INDEX}"*) exit 1;; esac\n'
    python.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n{fail}exit 0\n')
    python.chmod(0o755)
    return venv, log


def _make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_torch_comes_from_the_cpu_index_where_it_answers(tmp_path: Path) -> None:
    venv, log = _fake_venv(tmp_path, cpu_index_answers=True)
    done = _make("setup", f"VENV={venv}")
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    torch = [c for c in calls if "torch==2.13.0" in c]
    assert torch == [f"-m pip install --quiet --timeout 15 --retries 0 --index-url {CPU_INDEX} torch==2.13.0"]
    assert calls.index(torch[0]) < calls.index("-m pip install --quiet -e .[test]")  # torch first
    assert (venv / ".installed").exists()


def test_torch_falls_back_to_the_default_index_where_the_cpu_index_does_not_answer(tmp_path: Path) -> None:
    venv, log = _fake_venv(tmp_path, cpu_index_answers=False)
    done = _make("setup", f"VENV={venv}")
    assert done.returncode == 0, done.stderr
    assert "CPU wheel index" in done.stdout and "from the default index" in done.stdout
    torch = [c for c in log.read_text().splitlines() if "torch==2.13.0" in c]
    assert torch == [
        f"-m pip install --quiet --timeout 15 --retries 0 --index-url {CPU_INDEX} torch==2.13.0",
        "-m pip install --quiet torch==2.13.0",
    ]


def test_browser_tests_are_skipped_with_a_message_where_chromium_cannot_be_installed(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-chromium")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "id").write_text("#!/bin/sh\necho 1000\n")  # not root
    (fake_bin / "id").chmod(0o755)
    not_root = _make("browser", f"CHROMIUM={missing}", env={"PATH": f"{fake_bin}:{os.environ['PATH']}"})
    assert not_root.returncode == 0, not_root.stderr
    assert "needs root" in not_root.stdout and "browser tests will be skipped" in not_root.stdout

    no_apt = _make("browser", f"CHROMIUM={missing}", f"APT_GET={tmp_path / 'no-apt-get'}")
    assert no_apt.returncode == 0 and "no apt-get" in no_apt.stdout

    failing = tmp_path / "apt-get"
    failing.write_text("#!/bin/sh\nexit 100\n")
    failing.chmod(0o755)
    broken = _make("browser", f"CHROMIUM={missing}", f"APT_GET={failing}")
    assert broken.returncode == 0 and "failed" in broken.stdout

    present = _make("browser", f"CHROMIUM={shutil.which('sh')}")
    assert present.returncode == 0 and present.stdout == ""
