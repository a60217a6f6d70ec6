"""notebazaar demo: a scripted market end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from notebazaar.cli.base import account_id_of, console, main, with_db
from notebazaar.pipeline import community, ledger, market
from notebazaar.pipeline.config import Settings

# --- demo ---------------------------------------------------------------------------------


@main.command()
@click.option("--seed", type=int, default=0, show_default=True, help="Randomises bids and prices.")
@click.option("--judge", "judge_kind", default=None, help="Judge kind (default from config).")
@with_db
def demo(db: Any, db_path: Path, settings: Settings, seed: int, judge_kind: str | None) -> None:
    """Run a scripted market end to end and print what happened."""
    from notebazaar.pipeline.demo import seed_demo
    from notebazaar.pipeline.judge.factory import make_judge

    slug = f"demo-{seed}"
    if db.execute("SELECT 1 FROM communities WHERE slug = ?", [slug]).fetchone():
        raise click.ClickException(f"{db_path} already holds the demo for seed {seed}; use another --db")
    judge = make_judge(settings, db, kind=judge_kind)
    result = seed_demo(db, settings, judge, seed=seed, slug=slug)
    com = community.get_community(db, result.community_id)
    post = community.get_post(db, result.post_id)
    console.rule(f"[bold]Community {com.slug}")
    console.print(
        f"k={com.attention_slots} reserve={com.reserve} b={com.price_of_information} credits/nat "
        f"budget/market={com.budget_per_market} auction={com.auction}"
    )
    console.print("a reader funded the pool with 500 credits; each market takes its budget from it")
    console.rule("[bold]Post")
    console.print(escape(post["text"]))
    console.rule(f"[bold]Sealed offers (market {result.market_id})")
    for handle, r in result.receipts.items():
        console.print(
            f"{handle:>14}: offer {r.offer_id} bid {r.bid} price {r.price} receipt {r.commitment[:16]}…"
        )
    view = market.market_view(db, result.market_id)
    handles = {int(a["id"]): a["handle"].removeprefix(f"{slug}_") for a in db["accounts"].rows}
    table = Table(title="Attention auction and judge's decisions")
    for col in ("rank", "informer", "bid", "paid", "price", "p0", "p1", "value", "outcome"):
        table.add_column(col)
    inspections = {i["offer_id"]: i for i in view["inspections"]}
    for o in sorted(view["offers"], key=lambda o: o["rank"] or 999):
        i = inspections.get(o["id"])
        table.add_row(
            str(o["rank"]),
            handles[o["informer_id"]],
            str(o["bid"]),
            str(o["charge"]),
            str(o["price"]),
            f"{i['p_before']:.2f}" if i else "-",
            f"{i['p_after']:.2f}" if i else "-",
            f"{i['value']:.1f}" if i else "-",
            o["outcome"] or o["status"],
        )
    console.print(table)
    console.rule("[bold]Payments")
    console.print(
        f"spent from the market budget: {result.report.spent}; "
        f"returned to the pool: {result.report.returned}; "
        f"pool now {ledger.balance(db, ledger.pool(com.id))}"
    )
    for handle in result.receipts:
        console.print(
            f"{handle:>14}: wallet {ledger.balance(db, ledger.wallet(account_id_of(db, f'{slug}_{handle}')))}"
        )
    console.rule("[bold]Revealed notes")
    for r in view["reveals"]:
        console.print(
            escape(
                f"[{r['classification']}] {r['text']}  (by {handles[r['informer_id']]}, price {r['price']})"
            )
        )
        for s in json.loads(r["sources"]):
            console.print(f"    source: {escape(s)}")
    if not view["reveals"]:
        console.print("no note was bought")
    report = ledger.check(db)
    console.print(f"ledger check: {'ok' if report.ok else 'FAILED'}")
