"""The ledger: every credit moves here, in balanced, idempotent, atomic transactions.

Double entry: a transaction is a list of entries whose amounts sum to zero. Account balances are
kept on ``ledger_accounts`` for fast reads and are re-derived from the entries by :func:`check`.
The one account allowed below zero is ``issuance``: minting moves credits out of it, so the sum of
all other balances always equals everything ever minted.

Account refs name what an account is: ``wallet:<account id>``, ``pool:<community id>``,
``escrow:<market id>`` (bids held until close), ``budget:<market id>`` (what a market may spend),
``escrow:held:<offer id>`` (a bought note's price held for readers' verdict: pipeline/holds.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlite_utils import Database

from notebazaar.pipeline.db import write
from notebazaar.pipeline.errors import Conflict, InsufficientFunds, ValidationError

ISSUANCE = "issuance"


def wallet(account_id: int) -> str:
    return f"wallet:{account_id}"


def pool(community_id: int) -> str:
    return f"pool:{community_id}"


def escrow(market_id: int) -> str:
    return f"escrow:{market_id}"


def budget(market_id: int) -> str:
    return f"budget:{market_id}"


def held(offer_id: int) -> str:
    return f"escrow:held:{offer_id}"


@dataclass(frozen=True)
class Move:
    """``amount`` credits from the account ``source`` to the account ``target`` (both refs)."""

    source: str
    target: str
    amount: int


def _kind_of(ref: str) -> str:
    kind = ref.split(":", 1)[0]
    if kind not in {"issuance", "wallet", "pool", "escrow", "budget"}:
        raise ValidationError(f"unknown ledger account kind in {ref!r}")
    return kind


def account_id(db: Database, ref: str) -> int:
    """The row id of ledger account ``ref``, created with a zero balance if new."""
    row = db.execute("SELECT id FROM ledger_accounts WHERE ref = ?", [ref]).fetchone()
    if row:
        return int(row[0])
    cursor = db.execute(
        "INSERT INTO ledger_accounts (ref, kind, balance) VALUES (?, ?, 0)", [ref, _kind_of(ref)]
    )
    return int(cursor.lastrowid)  # type: ignore[arg-type]


def has_transaction(db: Database, key: str) -> bool:
    """Whether a transaction was posted under the idempotency key ``key``."""
    return (
        db.execute("SELECT 1 FROM ledger_transactions WHERE idempotency_key = ?", [key]).fetchone()
        is not None
    )


def balance(db: Database, ref: str) -> int:
    row = db.execute("SELECT balance FROM ledger_accounts WHERE ref = ?", [ref]).fetchone()
    return int(row[0]) if row else 0


def transfer(
    db: Database,
    key: str,
    moves: Sequence[Move],
    *,
    kind: str,
    memo: str = "",
    max_amount: int | None = None,
) -> int:
    """Post one balanced transaction; return its id.

    Idempotent: a second call with the same ``key`` changes nothing and returns the first
    transaction's id, provided it describes the same moves (a different transaction under a used
    key is a :class:`Conflict`). Atomic: all entries land, or none. Refuses, changing nothing, if any
    account other than issuance would go below zero.
    """
    if not key:
        raise ValidationError("a ledger transaction needs an idempotency key")
    if not moves:
        raise ValidationError("a ledger transaction needs at least one move")
    for move in moves:
        if not isinstance(move.amount, int) or isinstance(move.amount, bool):
            raise ValidationError(f"amount must be a whole number of credits, not {move.amount!r}")
        if move.amount <= 0:
            raise ValidationError(f"amount must be positive, not {move.amount}")
        if max_amount is not None and move.amount > max_amount:
            raise ValidationError(f"amount {move.amount} is over the limit of {max_amount} credits")
        if move.source == move.target:
            raise ValidationError(f"a move from {move.source} to itself is meaningless")

    with write(db):
        existing = db.execute(
            "SELECT id FROM ledger_transactions WHERE idempotency_key = ?", [key]
        ).fetchone()
        if existing:
            txn_id = int(existing[0])
            if _net(db, txn_id) != _net_of_moves(db, moves):
                raise Conflict(f"idempotency key {key!r} was already used for another transaction")
            return txn_id

        deltas: dict[str, int] = {}
        for move in moves:
            deltas[move.source] = deltas.get(move.source, 0) - move.amount
            deltas[move.target] = deltas.get(move.target, 0) + move.amount
        # One read for every account the transaction touches (ids and balances), then the writes.
        marks = ",".join("?" * len(deltas))
        known = {
            str(ref): (int(i), int(bal))
            for ref, i, bal in db.execute(
                f"SELECT ref, id, balance FROM ledger_accounts WHERE ref IN ({marks})", list(deltas)
            )
        }
        for ref, delta in deltas.items():
            held = known[ref][1] if ref in known else 0
            if delta < 0 and _kind_of(ref) != ISSUANCE and held + delta < 0:
                raise InsufficientFunds(f"{ref} holds {held} credits; this needs {-delta}")

        cursor = db.execute(
            "INSERT INTO ledger_transactions (idempotency_key, kind, memo, created_at) VALUES (?, ?, ?, ?)",
            [key, kind, memo, time.time()],
        )
        txn_id = int(cursor.lastrowid)  # type: ignore[arg-type]
        ids = {ref: known[ref][0] if ref in known else account_id(db, ref) for ref in deltas}
        db.conn.executemany(
            "INSERT INTO ledger_entries (transaction_id, account_id, amount) VALUES (?, ?, ?)",
            [
                entry
                for move in moves
                for entry in (
                    (txn_id, ids[move.source], -move.amount),
                    (txn_id, ids[move.target], move.amount),
                )
            ],
        )
        db.conn.executemany(
            "UPDATE ledger_accounts SET balance = balance + ? WHERE id = ?",
            [(delta, ids[ref]) for ref, delta in deltas.items() if delta],
        )
        return txn_id


def _net(db: Database, txn_id: int) -> dict[int, int]:
    rows = db.execute(
        "SELECT account_id, SUM(amount) FROM ledger_entries WHERE transaction_id = ? GROUP BY account_id",
        [txn_id],
    ).fetchall()
    return {int(a): int(s) for a, s in rows if s}


def _net_of_moves(db: Database, moves: Sequence[Move]) -> dict[int, int]:
    net: dict[int, int] = {}
    for move in moves:
        for ref, sign in ((move.source, -1), (move.target, 1)):
            row = db.execute("SELECT id FROM ledger_accounts WHERE ref = ?", [ref]).fetchone()
            account = int(row[0]) if row else -1
            net[account] = net.get(account, 0) + sign * move.amount
    return {a: s for a, s in net.items() if s}


def mint(db: Database, key: str, ref: str, amount: int, *, memo: str = "") -> int:
    """Create ``amount`` new credits in account ``ref``."""
    return transfer(db, key, [Move(ISSUANCE, ref, amount)], kind="mint", memo=memo)


def balances(db: Database) -> list[dict[str, object]]:
    """Every ledger account with its balance, issuance first."""
    rows = db.execute(
        "SELECT ref, kind, balance FROM ledger_accounts ORDER BY kind != 'issuance', kind, id"
    ).fetchall()
    return [{"account": ref, "kind": kind, "balance": bal} for ref, kind, bal in rows]


@dataclass
class CheckReport:
    """The result of :func:`check`. ``ok`` is true when there is nothing to report."""

    transactions: int = 0
    accounts: int = 0
    minted: int = 0
    circulating: int = 0
    unbalanced_transactions: list[int] = field(default_factory=list)
    empty_transactions: list[int] = field(default_factory=list)
    drifted_accounts: list[str] = field(default_factory=list)
    negative_accounts: list[str] = field(default_factory=list)
    held_mismatches: list[str] = field(default_factory=list)  # holds whose escrow disagrees

    @property
    def ok(self) -> bool:
        return not (
            self.unbalanced_transactions
            or self.empty_transactions
            or self.drifted_accounts
            or self.negative_accounts
            or self.held_mismatches
            or self.minted != self.circulating
        )

    def problems(self) -> list[str]:
        out = []
        if self.unbalanced_transactions:
            out.append(f"unbalanced transactions: {self.unbalanced_transactions}")
        if self.empty_transactions:
            out.append(f"transactions without entries: {self.empty_transactions}")
        if self.drifted_accounts:
            out.append(f"balances that disagree with their entries: {self.drifted_accounts}")
        if self.negative_accounts:
            out.append(f"accounts below zero: {self.negative_accounts}")
        if self.held_mismatches:
            out.append(f"held payments whose escrow disagrees with the hold: {self.held_mismatches}")
        if self.minted != self.circulating:
            out.append(f"balances add up to {self.circulating}, but {self.minted} were minted")
        return out


def check(db: Database) -> CheckReport:
    """Verify the whole ledger from its entries, and name what is wrong."""
    report = CheckReport()
    report.transactions = db.execute("SELECT COUNT(*) FROM ledger_transactions").fetchone()[0]
    report.accounts = db.execute("SELECT COUNT(*) FROM ledger_accounts").fetchone()[0]
    report.unbalanced_transactions = [
        int(r[0])
        for r in db.execute(
            "SELECT transaction_id FROM ledger_entries GROUP BY transaction_id"
            " HAVING SUM(amount) != 0 ORDER BY transaction_id"
        )
    ]
    report.empty_transactions = [
        int(r[0])
        for r in db.execute(
            "SELECT t.id FROM ledger_transactions t LEFT JOIN ledger_entries e"
            " ON e.transaction_id = t.id WHERE e.id IS NULL ORDER BY t.id"
        )
    ]
    report.drifted_accounts = [
        str(r[0])
        for r in db.execute(
            "SELECT a.ref FROM ledger_accounts a LEFT JOIN ("
            "  SELECT account_id, SUM(amount) AS total FROM ledger_entries GROUP BY account_id"
            ") e ON e.account_id = a.id WHERE a.balance != COALESCE(e.total, 0) ORDER BY a.id"
        )
    ]
    report.negative_accounts = [
        str(r[0])
        for r in db.execute(
            "SELECT a.ref FROM ledger_accounts a JOIN ledger_entries e ON e.account_id = a.id"
            " WHERE a.kind != 'issuance' GROUP BY a.id HAVING SUM(e.amount) < 0 ORDER BY a.id"
        )
    ]
    # A held payment's escrow holds its price until the hold is settled, and nothing after; an
    # escrow:held account without a hold is a mismatch too.
    report.held_mismatches = [
        str(r[0])
        for r in db.execute(
            "SELECT a.ref FROM ledger_accounts a LEFT JOIN held_payments h"
            " ON a.ref = 'escrow:held:' || h.offer_id WHERE a.ref LIKE 'escrow:held:%'"
            " AND a.balance != COALESCE(CASE WHEN h.settled_at IS NULL THEN h.amount ELSE 0 END, -1)"
            " UNION SELECT 'escrow:held:' || h.offer_id FROM held_payments h"
            " LEFT JOIN ledger_accounts a ON a.ref = 'escrow:held:' || h.offer_id"
            " WHERE a.id IS NULL ORDER BY 1"
        )
    ]
    report.minted = int(
        db.execute(
            "SELECT COALESCE(-SUM(e.amount), 0) FROM ledger_entries e"
            " JOIN ledger_accounts a ON a.id = e.account_id WHERE a.kind = 'issuance'"
        ).fetchone()[0]
    )
    report.circulating = int(
        db.execute(
            "SELECT COALESCE(SUM(e.amount), 0) FROM ledger_entries e"
            " JOIN ledger_accounts a ON a.id = e.account_id WHERE a.kind != 'issuance'"
        ).fetchone()[0]
    )
    return report
