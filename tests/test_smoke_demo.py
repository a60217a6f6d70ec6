from pathlib import Path

from click.testing import CliRunner

from notebazaar.cli import main


def test_demo_runs_end_to_end_and_ledger_checks(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    result = CliRunner().invoke(main, ["demo", "--db", str(db), "--seed", "3", "--judge", "simple"])
    assert result.exit_code == 0, result.output
    assert "Revealed notes" in result.output
    assert "ledger check: ok" in result.output
    check = CliRunner().invoke(main, ["ledger", "check", "--db", str(db)])
    assert check.exit_code == 0 and check.output.strip().endswith("ok")
