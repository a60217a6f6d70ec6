"""The ledger: idempotent, balanced, never negative, and its check catches tampering."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from notebazaar.cli import main
from notebazaar.pipeline import community, ledger
from notebazaar.pipeline.errors import Conflict, InsufficientFunds, ValidationError
from tests.test_core_helpers import restore_logging, snapshot  # noqa: F401

pytestmark = pytest.mark.usefixtures("restore_logging")


def _funded(db: Database) -> int:
    account = community.create_account(db, "alice")
    community.mint(db, account, 100, key="mint:alice")
    return account


def test_same_key_twice_posts_one_transaction(db: Database) -> None:
    alice = _funded(db)
    move = [ledger.Move(ledger.wallet(alice), ledger.pool(1), 30)]
    first = ledger.transfer(db, "k1", move, kind="fund_pool")
    second = ledger.transfer(db, "k1", move, kind="fund_pool")
    assert first == second
    assert (
        db.execute("SELECT COUNT(*) FROM ledger_transactions WHERE idempotency_key = 'k1'").fetchone()[0] == 1
    )
    assert ledger.balance(db, ledger.wallet(alice)) == 70
    assert ledger.balance(db, ledger.pool(1)) == 30
    assert ledger.check(db).ok


def test_same_key_with_different_moves_is_a_conflict(db: Database) -> None:
    alice = _funded(db)
    ledger.transfer(db, "k1", [ledger.Move(ledger.wallet(alice), ledger.pool(1), 30)], kind="fund_pool")
    before = snapshot(db)
    with pytest.raises(Conflict, match="'k1' was already used"):
        ledger.transfer(db, "k1", [ledger.Move(ledger.wallet(alice), ledger.pool(1), 31)], kind="fund_pool")
    with pytest.raises(Conflict):
        ledger.transfer(db, "k1", [ledger.Move(ledger.wallet(alice), ledger.pool(2), 30)], kind="fund_pool")
    assert snapshot(db) == before


def test_mint_key_replay_mints_once(db: Database) -> None:
    alice = community.create_account(db, "alice")
    community.mint(db, alice, 50, key="mint:once")
    community.mint(db, alice, 50, key="mint:once")
    assert ledger.balance(db, ledger.wallet(alice)) == 50
    assert ledger.check(db).minted == 50


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (0, "positive"),
        (-5, "positive"),
        (1.5, "whole number"),
        (float("nan"), "whole number"),
        (True, "whole"),
    ],
)
def test_bad_amounts_are_refused_without_change(db: Database, amount: object, message: str) -> None:
    alice = _funded(db)
    before = snapshot(db)
    with pytest.raises(ValidationError, match=message):
        ledger.transfer(db, "bad", [ledger.Move(ledger.wallet(alice), ledger.pool(1), amount)], kind="x")  # type: ignore[arg-type]
    assert snapshot(db) == before


def test_over_limit_empty_key_self_move_and_unknown_kind_are_refused(db: Database) -> None:
    alice = _funded(db)
    before = snapshot(db)
    w = ledger.wallet(alice)
    with pytest.raises(ValidationError, match="over the limit"):
        ledger.transfer(db, "big", [ledger.Move(w, ledger.pool(1), 10**12)], kind="x", max_amount=10**9)
    with pytest.raises(ValidationError, match="idempotency key"):
        ledger.transfer(db, "", [ledger.Move(w, ledger.pool(1), 1)], kind="x")
    with pytest.raises(ValidationError, match="itself"):
        ledger.transfer(db, "self", [ledger.Move(w, w, 1)], kind="x")
    with pytest.raises(ValidationError, match="unknown ledger account kind"):
        ledger.transfer(db, "kind", [ledger.Move(w, "vault:1", 1)], kind="x")
    with pytest.raises(ValidationError, match="at least one move"):
        ledger.transfer(db, "none", [], kind="x")
    assert snapshot(db) == before


def test_no_balance_goes_negative_and_a_failed_transaction_changes_nothing(db: Database) -> None:
    alice = _funded(db)
    before = snapshot(db)
    moves = [
        ledger.Move(ledger.wallet(alice), ledger.pool(1), 60),
        ledger.Move(ledger.wallet(alice), ledger.pool(2), 60),  # 120 in all, the wallet holds 100
    ]
    with pytest.raises(InsufficientFunds, match="wallet:1 holds 100 credits; this needs 120"):
        ledger.transfer(db, "two", moves, kind="x")
    assert snapshot(db) == before
    # The key was not burnt by the refusal: it can be used for a transfer that fits.
    ledger.transfer(db, "two", moves[:1], kind="x")
    assert ledger.balance(db, ledger.wallet(alice)) == 40


def test_multi_move_transaction_is_balanced_and_checked(db: Database) -> None:
    alice = _funded(db)
    ledger.transfer(
        db,
        "split",
        [
            ledger.Move(ledger.wallet(alice), ledger.pool(1), 10),
            ledger.Move(ledger.pool(1), ledger.budget(7), 4),
        ],
        kind="x",
    )
    report = ledger.check(db)
    assert report.ok, report.problems()
    assert (report.minted, report.circulating) == (100, 100)
    assert {r["account"]: r["balance"] for r in ledger.balances(db)} == {
        "issuance": -100,
        "wallet:1": 90,
        "pool:1": 6,
        "budget:7": 4,
    }


def _tamper_setup(db_path: Path) -> Database:
    from notebazaar.pipeline.db import open_db

    db = open_db(db_path)
    alice = _funded(db)
    ledger.transfer(db, "fund", [ledger.Move(ledger.wallet(alice), ledger.pool(1), 30)], kind="fund_pool")
    return db


def test_check_names_a_tampered_entry(db_path: Path) -> None:
    db = _tamper_setup(db_path)
    txn = db.execute("SELECT id FROM ledger_transactions WHERE idempotency_key = 'fund'").fetchone()[0]
    db.execute(
        "UPDATE ledger_entries SET amount = 31 WHERE transaction_id = ? AND amount > 0",
        [txn],
    )
    report = ledger.check(db)
    assert not report.ok
    assert report.unbalanced_transactions == [txn]
    assert report.drifted_accounts == ["pool:1"]
    db.close()

    result = CliRunner().invoke(main, ["ledger", "check", "--db", str(db_path)])
    assert result.exit_code == 1
    assert f"unbalanced transactions: [{txn}]" in result.stderr
    assert "pool:1" in result.stderr
    assert "ok" not in result.stdout.split()


def test_check_names_a_tampered_balance(db_path: Path) -> None:
    db = _tamper_setup(db_path)
    db.execute("UPDATE ledger_accounts SET balance = 999 WHERE ref = 'wallet:1'")
    report = ledger.check(db)
    assert report.drifted_accounts == ["wallet:1"] and not report.unbalanced_transactions
    db.close()

    result = CliRunner().invoke(main, ["ledger", "check", "--db", str(db_path)])
    assert result.exit_code != 0
    assert "balances that disagree with their entries: ['wallet:1']" in result.stderr


def test_check_catches_a_deleted_entry_and_an_orphan_transaction(db_path: Path) -> None:
    db = _tamper_setup(db_path)
    txn = db.execute("SELECT id FROM ledger_transactions WHERE idempotency_key = 'fund'").fetchone()[0]
    db.execute("DELETE FROM ledger_entries WHERE transaction_id = ?", [txn])
    report = ledger.check(db)
    assert report.empty_transactions == [txn]
    assert set(report.drifted_accounts) == {"wallet:1", "pool:1"}
    db.close()
    result = CliRunner().invoke(main, ["ledger", "check", "--db", str(db_path)])
    assert result.exit_code == 1 and f"transactions without entries: [{txn}]" in result.stderr


def test_clean_ledger_check_passes_on_the_cli(db_path: Path) -> None:
    _tamper_setup(db_path).close()
    result = CliRunner().invoke(main, ["ledger", "check", "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("ok")
    assert "minted: 100  circulating: 100" in result.stdout
