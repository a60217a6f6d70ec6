"""Running a market by hand through the ``notebazaar`` CLI, with ``--db`` after every subcommand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from notebazaar.cli import main
from tests.test_core_helpers import restore_logging  # noqa: F401

pytestmark = pytest.mark.usefixtures("restore_logging")

POST = "Vaccines contain microchips that track people"
GOOD_NOTE = "Vaccines contain no microchips that could track people; the ingredient lists are public."
WITHDRAWN_NOTE = "A note its author thought better of."


class Cli:
    """Invokes the CLI with ``--db`` appended, and fails loudly on an unexpected exit code."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0) -> Result:
        result = self.runner.invoke(main, [*args, "--db", str(self.db)])
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args).stdout.strip().splitlines()[-1])


def _hand_flow(cli: Cli) -> dict[str, Any]:
    com = cli.json(
        "community",
        "create",
        "core",
        "--attention-slots",
        "2",
        "--reserve",
        "1",
        "--price-of-information",
        "100",
        "--budget-per-market",
        "60",
        "--window-seconds",
        "3600",
    )
    assert com["slug"] == "core" and com["attention_slots"] == 2 and com["auction"] == "gsp"
    assert (
        cli.json("account", "create", "reader", "--community", "core", "--role", "reader")["handle"]
        == "reader"
    )
    alice = cli.json("account", "create", "alice", "--community", "core")
    bob = cli.json("account", "create", "bob", "--community", "core", "--role", "informer")
    assert cli.json("credits", "mint", "reader", "1000")["wallet"] == 1000
    assert cli.json("credits", "mint", "alice", "100")["wallet"] == 100
    assert cli.json("credits", "mint", "bob", "100")["wallet"] == 100
    assert cli.json("pool", "fund", "core", "500", "--from", "reader")["pool"] == 500
    post_id = cli.json("post", "add", "core", POST, "--url", "https://example.org/p/1")["post_id"]
    opened = cli.json("market", "open", str(post_id), "--window-seconds", "3600")
    market_id = opened["market_id"]
    assert opened["budget"] == 60
    receipt = cli.json(
        "offer",
        "submit",
        str(market_id),
        "--informer",
        "alice",
        "--classification",
        "misleading",
        "--text",
        GOOD_NOTE,
        "--source",
        "https://example.org/ingredients",
        "--bid",
        "5",
        "--price",
        "10",
    )
    assert {"offer_id", "market_id", "commitment", "salt", "bid", "price"} <= receipt.keys()
    withdrawn = cli.json(
        "offer",
        "submit",
        str(market_id),
        "--informer",
        "bob",
        "--classification",
        "not_misleading",
        "--text",
        WITHDRAWN_NOTE,
        "--bid",
        "4",
        "--price",
        "3",
    )
    assert (
        cli.json("offer", "withdraw", str(withdrawn["offer_id"]), "--informer", "bob")["status"]
        == "withdrawn"
    )
    return {
        "market_id": market_id,
        "post_id": post_id,
        "alice": alice,
        "bob": bob,
        "receipt": receipt,
        "withdrawn": withdrawn["offer_id"],
    }


def test_by_hand_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # a command that ignored --db would create var/notebazaar.db here
    monkeypatch.delenv("NOTEBAZAAR_DB", raising=False)
    state = tmp_path / "state"
    cli = Cli(state / "nb.db")
    flow = _hand_flow(cli)
    market_id = flow["market_id"]

    closed = cli("market", "close", str(market_id), "--force", "--judge", "simple")
    summary = json.loads(closed.stdout.strip().splitlines()[-1])
    assert summary["status"] == "settled" and summary["spent"] == 10
    assert summary["waiting_on"] == []  # [recursion] is off by default: no sub-market was opened

    again = cli("market", "close", str(market_id), "--force", "--judge", "simple")
    assert f"market {market_id} was already settled; nothing changed" in again.stdout

    view = cli.json("market", "show", str(market_id))
    offers = {o["id"]: o for o in view["offers"]}
    assert offers[flow["receipt"]["offer_id"]]["status"] == "bought"
    assert offers[flow["withdrawn"]]["status"] == "withdrawn"
    assert [r["text"] for r in view["reveals"]] == [GOOD_NOTE]
    assert WITHDRAWN_NOTE not in json.dumps(view)
    assert view["budget_left"] == 0 and view["inspections"][0]["bought"] == 1

    balances = {
        row["account"]: row["balance"]
        for row in map(json.loads, cli("ledger", "balances", "--json").stdout.strip().splitlines())
    }
    alice_id, bob_id = flow["alice"]["id"], flow["bob"]["id"]
    # alice: 100 - reserve charge 1 (no lower bid) + price 10; bob: refunded in full on withdrawal
    assert balances[f"wallet:{alice_id}"] == 109
    assert balances[f"wallet:{bob_id}"] == 100
    assert balances["pool:1"] == 500 - 60 + 1 + 50
    assert balances["issuance"] == -1200
    assert balances[f"escrow:{market_id}"] == 0
    assert "wallet:" in cli("ledger", "balances").stdout  # the table form works too

    check = cli("ledger", "check")
    assert check.stdout.strip().endswith("ok") and "minted: 1200  circulating: 1200" in check.stdout

    exported = [json.loads(line) for line in cli("export", "revealed").stdout.strip().splitlines()]
    assert len(exported) == 1
    row = exported[0]
    assert {"post_id", "note", "classification", "sources", "informer", "price_paid"} <= row.keys()
    assert (row["post_id"], row["note"], row["classification"]) == (flow["post_id"], GOOD_NOTE, "misleading")
    assert (row["sources"], row["informer"], row["price_paid"]) == (
        ["https://example.org/ingredients"],
        "alice",
        10,
    )

    # All state lives in the --db folder; nothing was written where the command ran.
    assert list(cwd.iterdir()) == []
    assert {p.name for p in state.iterdir()} <= {"nb.db", "nb.db-wal", "nb.db-shm", "notebazaar.log"}
    assert "notebazaar.log" in {p.name for p in state.iterdir()}
    log_text = (state / "notebazaar.log").read_text()
    assert f"market {market_id} settled" in log_text
    assert WITHDRAWN_NOTE not in log_text


def test_close_opens_a_sub_market_when_recursion_is_enabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``[recursion] enabled = true`` in the config, closing from the CLI opens a sub-market
    about an uncertain offer and names it in ``waiting_on``; once it is closed, closing again resumes."""
    config = tmp_path / "config.toml"
    config.write_text("[recursion]\nenabled = true\nwindow_seconds = 600\n", encoding="utf-8")
    monkeypatch.setenv("NOTEBAZAAR_CONFIG", str(config))
    monkeypatch.delenv("NOTEBAZAAR_RECURSION__ENABLED", raising=False)
    cli = Cli(tmp_path / "nb.db")
    flow = _hand_flow(cli)
    market_id, offer_id = flow["market_id"], flow["receipt"]["offer_id"]

    # The simple judge moves 0.5 to 0.941 on GOOD_NOTE: worth 46.9 credits at face value, 1.6 if
    # trusted 80% less (uncertain_band), so at price 10 the purchase hinges on its reliability.
    paused = cli("market", "close", str(market_id), "--force", "--judge", "simple")
    summary = json.loads(paused.stdout.strip().splitlines()[-1])
    assert summary["status"] == "closing" and summary["spent"] == 0
    [sub_id] = summary["waiting_on"]
    assert f"paused until its sub-market(s) {sub_id} settle" in paused.stdout

    view = cli.json("market", "show", str(market_id))
    [listed] = view["sub_markets"]
    assert (listed["id"], listed["parent_offer_id"], listed["open"]) == (sub_id, offer_id, True)
    assert listed["budget"] == 18  # 30% of the 60 left
    assert GOOD_NOTE not in json.dumps(view) and view["offers"][0]["status"] == "won"
    sub = cli.json("market", "show", str(sub_id))["market"]
    assert (sub["parent_offer_id"], sub["depth"], sub["status"]) == (offer_id, 1, "open")

    still = cli.json("market", "close", str(market_id), "--force", "--judge", "simple")
    assert (still["status"], still["waiting_on"]) == ("closing", [sub_id])  # the sub-market is still open

    closed_sub = cli.json("market", "close", str(sub_id), "--force", "--judge", "simple")
    assert (closed_sub["status"], closed_sub["waiting_on"]) == ("settled", [])

    resumed = cli.json("market", "close", str(market_id), "--force", "--judge", "simple")
    assert (resumed["status"], resumed["spent"], resumed["waiting_on"]) == ("settled", 10, [])
    offers = {o["id"]: o for o in cli.json("market", "show", str(market_id))["offers"]}
    assert offers[offer_id]["status"] == "bought"  # a sub-market that learned nothing changes nothing
    assert cli("ledger", "check").stdout.strip().endswith("ok")


def test_refusals_print_a_clean_error(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "nb.db")
    flow = _hand_flow(cli)
    market_id = flow["market_id"]
    early = cli("market", "close", str(market_id), "--judge", "simple", code=1)
    assert "Error: market 1's bidding window runs" in early.output and "force" in early.output
    assert "Traceback" not in early.output
    stranger = cli("offer", "withdraw", str(flow["receipt"]["offer_id"]), "--informer", "bob", code=1)
    assert f"Error: no offer {flow['receipt']['offer_id']} of yours" in stranger.output
    assert "no account 'nobody'" in cli("credits", "mint", "nobody", "5", code=1).output
    assert "amount must be at least 1" in cli("credits", "mint", "alice", "0", code=1).output
    assert "no market 77" in cli("market", "show", "77", code=1).output
    assert "community 'core' already exists" in cli("community", "create", "core", code=1).output
    both = cli(
        "offer",
        "submit",
        str(market_id),
        "--informer",
        "alice",
        "--classification",
        "misleading",
        "--bid",
        "1",
        "--price",
        "1",
        code=1,
    )
    assert "exactly one of --text or --text-file" in both.output
    assert cli("ledger", "check").stdout.strip().endswith("ok")


def test_offer_from_a_text_file(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "nb.db")
    flow = _hand_flow(cli)
    note = tmp_path / "note.txt"
    note.write_text("Vaccines contain no microchips: ingredient lists are public. ✓", encoding="utf-8")
    receipt = cli.json(
        "offer",
        "submit",
        str(flow["market_id"]),
        "--informer",
        "bob",
        "--classification",
        "misleading",
        "--text-file",
        str(note),
        "--bid",
        "2",
        "--price",
        "5",
    )
    assert receipt["bid"] == 2 and receipt["price"] == 5


def _leaf_commands(
    command: click.Command, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    if isinstance(command, click.Group):
        return [leaf for name, sub in command.commands.items() for leaf in _leaf_commands(sub, (*path, name))]
    return [(path, command)]


def test_every_command_takes_db_after_the_subcommand() -> None:
    """Every market command takes --db; the note writer is a client of the API and has no market
    database: its commands take --state (its own folder) and never --db."""
    leaves = _leaf_commands(main)
    assert len(leaves) >= 15
    writer = [main.commands["writer"], *(c for p, c in leaves if p[0] == "writer")]
    for command in writer:
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        assert "--state" in options and "--db" not in options, command.name
    for path, command in leaves:
        if path[0] == "writer":
            continue
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        assert "--db" in options, f"`notebazaar {' '.join(path)}` has no --db option"
        help_text = CliRunner().invoke(main, [*path, "--help"]).output
        assert "--db" in help_text, path
