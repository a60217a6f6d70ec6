"""The CLI on a database it cannot use as asked: one line naming the problem, never a traceback.

A damaged file, a read-only database (which can still be read: ledger check, market show, export),
a full disk (a real one: an 8 MiB tmpfs in a user and mount namespace), a mistyped path for a
command that only reads (which must not create an empty database that reads "ok"), and a database
from a newer schema than this code knows.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from notebazaar.cli import main
from tests.test_core_helpers import restore_logging  # noqa: F401

pytestmark = pytest.mark.usefixtures("restore_logging")
READS = (["ledger", "check"], ["ledger", "balances"], ["market", "show", "1"], ["export", "revealed"])


def _run(db: Path, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--db", str(db)])


def _one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def _market_db(path: Path) -> Path:
    """A database with a community, an account, a post and a market."""
    for args in (
        ["community", "create", "core"],
        ["account", "create", "alice", "--community", "core"],
        ["credits", "mint", "alice", "100"],
        ["post", "add", "core", "The moon is made of cheese."],
        ["market", "open", "1"],
    ):
        assert _run(path, *args).exit_code == 0
    return path


def test_a_damaged_database_is_named_by_every_command(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(os.urandom(8192))
    for args in (*READS, ["community", "create", "x"], ["credits", "mint", "alice", "5"]):
        _one_line_error(_run(damaged, *args), str(damaged), "not a notebazaar database, or it is damaged")
    truncated = _market_db(tmp_path / "truncated.db")
    data = truncated.read_bytes()
    for suffix in ("-wal", "-shm"):
        Path(f"{truncated}{suffix}").unlink(missing_ok=True)
    truncated.write_bytes(data[:100] + os.urandom(len(data) - 100))
    _one_line_error(_run(truncated, "ledger", "check"), "damaged")


def test_commands_that_only_read_need_the_database_to_exist(tmp_path: Path) -> None:
    mistyped = tmp_path / "mistyped" / "path.db"
    for args in READS:
        _one_line_error(_run(mistyped, *args), f"no database at {mistyped}")
    assert not mistyped.parent.exists()  # nothing was created


def test_a_database_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    db = _market_db(tmp_path / "newer.db")
    conn = sqlite3.connect(db)
    conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('notebazaar', ?, 'later')",
        ["m099_from_the_future"],
    )
    conn.commit()
    conn.close()
    for args in (*READS, ["credits", "mint", "alice", "5"]):
        _one_line_error(_run(db, *args), "newer notebazaar", "m099_from_the_future")


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A market database whose file cannot be written (chmod, or chattr +i as root, who ignores
    file modes); its folder stays writable, as on a shared server."""
    db = _market_db(tmp_path / "ro" / "nb.db")
    assert _run(db, "ledger", "check").exit_code == 0  # folds the WAL in on close
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(db)]).returncode:
            pytest.skip("needs chattr +i (root ignores file modes) on this file system")
        undo = ["chattr", "-i", str(db)]
    else:
        db.chmod(0o444)
        undo = ["chmod", "0644", str(db)]
    try:
        yield db
    finally:
        subprocess.run(undo, check=False)


def test_a_read_only_database_can_still_be_read(read_only: Path) -> None:
    assert not os.access(read_only, os.W_OK)
    checked = _run(read_only, "ledger", "check")
    assert checked.exit_code == 0 and checked.output.strip().endswith("ok"), checked.output
    shown = _run(read_only, "market", "show", "1")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["market"]["status"] == "open"
    assert _run(read_only, "export", "revealed").exit_code == 0
    assert _run(read_only, "ledger", "balances", "--json").exit_code == 0
    for args in (["credits", "mint", "alice", "5"], ["post", "add", "core", "Another post."]):
        _one_line_error(_run(read_only, *args), "read-only")


UNSHARE = shutil.which("unshare")


def _can_mount_tmpfs() -> bool:
    if UNSHARE is None:
        return False
    probe = subprocess.run([UNSHARE, "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs `unshare -rm` (user and mount namespaces)")
def test_a_full_disk_is_named_and_loses_nothing(tmp_path: Path) -> None:
    """On a real full file system: a write command fails with one line, the books still check."""
    disk = tmp_path / "disk"
    disk.mkdir()
    cli = f"{sys.executable} -c 'from notebazaar.cli import main; main()'"
    db = disk / "nb.db"
    script = f"""
set -e
mount -t tmpfs -o size=8m tmpfs {disk}
{cli} community create core --db {db} >/dev/null
{cli} account create alice --community core --db {db} >/dev/null
{cli} credits mint alice 100 --db {db} >/dev/null
dd if=/dev/zero of={disk}/filler bs=4k 2>/dev/null || true
set +e
{cli} post add core "$(head -c 60000 /dev/zero | tr '\\0' 'x')" --db {db} > {tmp_path}/write.out 2>&1
echo "write=$?" >> {tmp_path}/codes
rm {disk}/filler
{cli} ledger check --db {db} > {tmp_path}/check.out 2>&1
echo "check=$?" >> {tmp_path}/codes
"""
    done = subprocess.run([UNSHARE, "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    codes = dict(line.split("=") for line in (tmp_path / "codes").read_text().split())
    written = (tmp_path / "write.out").read_text().strip().splitlines()
    assert codes["write"] == "1" and len(written) == 1, written
    assert written[0].startswith("Error: cannot write") and "full" in written[0], written
    checked = (tmp_path / "check.out").read_text()
    assert codes["check"] == "0" and checked.strip().endswith("ok") and "minted: 100" in checked
