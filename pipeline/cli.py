"""The ``notebazaar`` command line. Every command takes ``--db PATH`` after the subcommand; its
default comes from config.toml. A refused request prints ``Error: <what is wrong>`` and exits 1.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from notebazaar.pipeline import community, ledger, market
from notebazaar.pipeline.config import Settings, load_settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.errors import NotebazaarError

console = Console(width=max(100, Console().width))


def _settings() -> Settings:
    ctx = click.get_current_context()
    root = ctx.find_root()
    if root.obj is None:
        root.obj = load_settings()
    return root.obj  # type: ignore[no-any-return]


def setup_logging(db_path: Path) -> None:
    """Log to ``notebazaar.log`` beside the database. Log lines carry ids and amounts, never notes."""
    log_file = db_path.parent / "notebazaar.log"
    root = logging.getLogger()
    if any(getattr(h, "baseFilename", None) == str(log_file.resolve()) for h in root.handlers):
        return
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def with_db(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--db PATH``, open the database, and turn refusals into clean errors."""

    @click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="SQLite database (default: `db` in config.toml). Its folder holds all state.",
    )
    @functools.wraps(func)
    def wrapper(db_path: Path | None, **kwargs: Any) -> Any:
        settings = _settings()
        path = db_path or Path(settings.db)
        db = open_db(path)
        setup_logging(path)
        try:
            return func(db=db, db_path=path, settings=settings, **kwargs)
        except NotebazaarError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            db.close()

    return wrapper


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, sort_keys=True))


def _account(db: Any, handle: str) -> int:
    return int(community.get_account(db, handle)["id"])


@click.group()
@click.version_option(package_name="notebazaar")
def main() -> None:
    """notebazaar: community notes bought by an amnesic judge in a sealed information market."""


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
            f"{handle:>14}: wallet {ledger.balance(db, ledger.wallet(_account(db, f'{slug}_{handle}')))}"
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


# --- ledger -------------------------------------------------------------------------------


@main.group("ledger")
def ledger_group() -> None:
    """Inspect the double-entry ledger."""


@ledger_group.command("check")
@with_db
def ledger_check(db: Any, db_path: Path, settings: Settings) -> None:
    """Verify every transaction balances and all balances add up to what was minted."""
    report = ledger.check(db)
    click.echo(
        f"transactions: {report.transactions}  accounts: {report.accounts}  "
        f"minted: {report.minted}  circulating: {report.circulating}"
    )
    if report.ok:
        click.echo("ok")
        return
    for problem in report.problems():
        click.echo(f"FAIL: {problem}", err=True)
    sys.exit(1)


@ledger_group.command("balances")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per account.")
@with_db
def ledger_balances(db: Any, db_path: Path, settings: Settings, as_json: bool) -> None:
    """Every ledger account and its balance."""
    rows = ledger.balances(db)
    if as_json:
        for row in rows:
            echo_json(row)
        return
    table = Table()
    for col in ("account", "kind", "balance"):
        table.add_column(col)
    for row in rows:
        table.add_row(str(row["account"]), str(row["kind"]), str(row["balance"]))
    console.print(table)


# --- export -------------------------------------------------------------------------------


@main.group("export")
def export_group() -> None:
    """Export data as JSON lines."""


@export_group.command("revealed")
@with_db
def export_revealed(db: Any, db_path: Path, settings: Settings) -> None:
    """One JSON line per revealed note: post id, text, classification, sources, informer, price."""
    for r in db.query(
        "SELECT r.post_id, r.text, r.classification, r.sources, a.handle AS informer, r.price,"
        " r.market_id, r.id FROM reveals r JOIN accounts a ON a.id = r.informer_id"
        " JOIN markets m ON m.id = r.market_id"
        " WHERE r.unpublished_at IS NULL AND m.parent_offer_id IS NULL ORDER BY r.id"
    ):
        echo_json(
            {
                "post_id": r["post_id"],
                "note": r["text"],
                "classification": r["classification"],
                "sources": json.loads(r["sources"]),
                "informer": r["informer"],
                "price_paid": r["price"],
                "market_id": r["market_id"],
                "reveal_id": r["id"],
            }
        )


# --- running a market by hand ---------------------------------------------------------------


@main.group("community")
def community_group() -> None:
    """Communities and their market settings."""


@community_group.command("create")
@click.argument("slug")
@click.option("--name", default=None)
@click.option("--attention-slots", type=int, default=None)
@click.option("--reserve", type=int, default=None)
@click.option("--window-seconds", type=int, default=None)
@click.option("--price-of-information", type=int, default=None)
@click.option("--budget-per-market", type=int, default=None)
@click.option("--auction", type=click.Choice(["gsp", "first_price"]), default=None)
@with_db
def community_create(
    db: Any, db_path: Path, settings: Settings, slug: str, name: str | None, **overrides: Any
) -> None:
    """Create a community; unset settings come from config.toml's [market]."""
    values = settings.market.model_dump() | {k: v for k, v in overrides.items() if v is not None}
    try:
        market_settings = type(settings.market)(**values)
    except Exception as exc:
        raise click.ClickException(f"invalid community settings: {exc}") from None
    com = community.create_community(db, slug, name=name, settings=market_settings)
    echo_json(com.__dict__)


@main.group("account")
def account_group() -> None:
    """Accounts and roles."""


@account_group.command("create")
@click.argument("handle")
@click.option("--community", "slug", default=None, help="Grant roles in this community.")
@click.option("--role", "roles", multiple=True, type=click.Choice(community.ROLES))
@with_db
def account_create(
    db: Any, db_path: Path, settings: Settings, handle: str, slug: str | None, roles: tuple[str, ...]
) -> None:
    """Create an account, optionally with roles in a community."""
    if roles and not slug:
        raise click.ClickException("--role needs --community")
    account_id = community.create_account(db, handle)
    if slug:
        com = community.get_community(db, slug)
        for role in roles or ("reader", "informer"):
            community.grant(db, account_id, com.id, role)
    echo_json({"id": account_id, "handle": handle})


@main.group("credits")
def credits_group() -> None:
    """Minting credits into wallets."""


@credits_group.command("mint")
@click.argument("handle")
@click.argument("amount", type=int)
@with_db
def credits_mint(db: Any, db_path: Path, settings: Settings, handle: str, amount: int) -> None:
    """Mint AMOUNT new credits into HANDLE's wallet."""
    account_id = _account(db, handle)
    txn = community.mint(db, account_id, amount)
    echo_json({"transaction": txn, "wallet": ledger.balance(db, ledger.wallet(account_id))})


@main.group("pool")
def pool_group() -> None:
    """The reader-funded pool of a community."""


@pool_group.command("fund")
@click.argument("slug")
@click.argument("amount", type=int)
@click.option("--from", "handle", required=True, help="The reader whose wallet pays.")
@with_db
def pool_fund(db: Any, db_path: Path, settings: Settings, slug: str, amount: int, handle: str) -> None:
    """Move AMOUNT credits from a reader's wallet into the community pool."""
    com = community.get_community(db, slug)
    txn = community.fund_pool(db, com.id, _account(db, handle), amount)
    echo_json({"transaction": txn, "pool": ledger.balance(db, ledger.pool(com.id))})


@main.group("post")
def post_group() -> None:
    """Posts that markets open on."""


@post_group.command("add")
@click.argument("slug")
@click.argument("text")
@click.option("--url", default=None)
@click.option("--author", default=None)
@with_db
def post_add(
    db: Any, db_path: Path, settings: Settings, slug: str, text: str, url: str | None, author: str | None
) -> None:
    """Add a post to a community."""
    com = community.get_community(db, slug)
    echo_json({"post_id": community.add_post(db, com.id, text, url=url, author=author)})


@post_group.command("resolve")
@click.argument("post_id", type=int)
@click.argument("resolution", type=click.Choice(["misleading", "not_misleading"]))
@with_db
def post_resolve(db: Any, db_path: Path, settings: Settings, post_id: int, resolution: str) -> None:
    """Record the truth about a post; informers' track records update."""
    market.resolve_post(db, post_id, resolution)
    echo_json({"post_id": post_id, "resolution": resolution})


@main.group("market")
def market_group() -> None:
    """Open, close and show markets."""


@market_group.command("open")
@click.argument("post_id", type=int)
@click.option("--window-seconds", type=int, default=None, help="Override the community's window.")
@with_db
def market_open(db: Any, db_path: Path, settings: Settings, post_id: int, window_seconds: int | None) -> None:
    """Open the market on a post, with a budget from the community pool."""
    if window_seconds is not None and window_seconds < 0:
        raise click.ClickException("--window-seconds must be at least 0")
    market_id = market.open_market(db, post_id, window_seconds=window_seconds)
    m = market.get_market(db, market_id)
    echo_json({"market_id": market_id, "budget": m["budget"], "closes_at": m["closes_at"]})


@market_group.command("close")
@click.argument("market_id", type=int)
@click.option("--force", is_flag=True, help="Close before the bidding window has elapsed.")
@click.option("--judge", "judge_kind", default=None, help="Judge kind (default from config).")
@with_db
def market_close(
    db: Any, db_path: Path, settings: Settings, market_id: int, force: bool, judge_kind: str | None
) -> None:
    """Close a market: auction, inspections, payments, reveals. Safe to repeat.

    With ``[recursion] enabled``, an uncertain offer opens a sub-market about it and the market
    pauses: ``waiting_on`` lists the sub-markets to close first; then run this again to resume."""
    from notebazaar.pipeline.judge.factory import make_judge
    from notebazaar.pipeline.settlement import close_market

    market.get_market(db, market_id)
    report = close_market(
        db,
        market_id,
        make_judge(settings, db, kind=judge_kind),
        force=force,
        recursion_settings=settings.recursion if settings.recursion.enabled else None,
    )
    if report.already_settled:
        click.echo(f"market {market_id} was already settled; nothing changed")
    if report.waiting_on:
        ids = ", ".join(str(i) for i in report.waiting_on)
        click.echo(
            f"market {market_id} is paused until its sub-market(s) {ids} settle: close each with"
            f" `notebazaar market close <id>` (add --force before its window ends), then close market"
            f" {market_id} again"
        )
    echo_json(
        market.market_view(db, market_id)["market"] | {"spent": report.spent, "waiting_on": report.waiting_on}
    )


@market_group.command("show")
@click.argument("market_id", type=int)
@with_db
def market_show(db: Any, db_path: Path, settings: Settings, market_id: int) -> None:
    """A market's public state as JSON (no sealed content)."""
    echo_json(market.market_view(db, market_id))


@main.group("offer")
def offer_group() -> None:
    """Sealed offers."""


@offer_group.command("submit")
@click.argument("market_id", type=int)
@click.option("--informer", required=True, help="The informer's handle.")
@click.option("--classification", required=True, type=click.Choice(["misleading", "not_misleading"]))
@click.option("--text", default=None, help="The note (or --text-file).")
@click.option("--text-file", type=click.File("rb"), default=None, help="Read the note from a file.")
@click.option("--source", "sources", multiple=True, help="A link or citation; repeat for more.")
@click.option("--bid", type=int, required=True, help="Credits paid for the judge's attention.")
@click.option("--price", type=int, required=True, help="Credits paid only if the note is bought.")
@click.option("--teaser", default=None, help="A short public teaser (optional).")
@with_db
def offer_submit(
    db: Any,
    db_path: Path,
    settings: Settings,
    market_id: int,
    informer: str,
    classification: str,
    text: str | None,
    text_file: Any,
    sources: tuple[str, ...],
    bid: int,
    price: int,
    teaser: str | None,
) -> None:
    """Submit a sealed note; prints the receipt (keep its salt to prove authorship)."""
    if (text is None) == (text_file is None):
        raise click.ClickException("give the note as exactly one of --text or --text-file")
    body: str | bytes = text if text is not None else text_file.read()
    receipt = market.submit_offer(
        db,
        market_id,
        _account(db, informer),
        classification=classification,
        text=body,
        sources=list(sources),
        bid=bid,
        price=price,
        limits=settings.limits,
        teaser=teaser,
    )
    echo_json(receipt.as_dict())


@offer_group.command("withdraw")
@click.argument("offer_id", type=int)
@click.option("--informer", required=True, help="The informer's handle.")
@with_db
def offer_withdraw(db: Any, db_path: Path, settings: Settings, offer_id: int, informer: str) -> None:
    """Withdraw a sealed offer before close; the bid is refunded and the note shredded."""
    market.withdraw_offer(db, offer_id, _account(db, informer))
    echo_json({"offer_id": offer_id, "status": "withdrawn"})


# --- retrieval corpus -------------------------------------------------------------------------


@main.group("corpus")
def corpus_group() -> None:
    """The trusted reference corpus the judge retrieves from."""


@corpus_group.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--community", "slug", default=None, help="Limit to one community (default: all).")
@with_db
def corpus_add(db: Any, db_path: Path, settings: Settings, file: Path, slug: str | None) -> None:
    """Load FILE (JSONL with a "text" field per line, or plain text, one passage per paragraph)."""
    from notebazaar.index.corpus import add_corpus_file

    community_id = community.get_community(db, slug).id if slug else None
    added = add_corpus_file(db, db_path, file, settings=settings, community_id=community_id)
    echo_json({"added": added})


# --- measuring the product ------------------------------------------------------------------------


def _at_least_one(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise click.ClickException(f"--{param.name} must be at least 1")
    return value


def claims_run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options shared by the commands that replay labelled claims (simulate, eval)."""
    for option in reversed(
        [
            click.option(
                "--claims",
                "claims_path",
                required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="Labelled claims (JSONL).",
            ),
            click.option(
                "--judge",
                "judge_kind",
                type=click.Choice(["local", "openai", "simple"]),
                default=None,
                help="Judge kind (default from config).",
            ),
            click.option("--seed", type=int, default=0, show_default=True),
            click.option(
                "--limit", type=int, default=None, callback=_at_least_one, help="Use only the first N claims."
            ),
        ]
    ):
        func = option(func)
    return func


@main.command()
@claims_run_options
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write report.json; the plot goes beside it.",
)
@click.option(
    "--recursion",
    type=click.Choice(["on", "off"]),
    default=None,
    help="Sub-markets about uncertain offers, with debunker informers ([recursion] in config.toml)."
    " Given either way, the report adds subnote_purchases and misleading_bought_share.",
)
@with_db
def simulate(
    db: Any,
    db_path: Path,
    settings: Settings,
    claims_path: Path,
    judge_kind: str | None,
    seed: int,
    limit: int | None,
    out_path: Path,
    recursion: str | None,
) -> None:
    """Run informer populations against the judge on labelled claims; write a JSON report and a plot."""
    from notebazaar.pipeline.evaluate import quality_table
    from notebazaar.pipeline.simulate import plot
    from notebazaar.pipeline.simulate import simulate as run_simulation

    db.close()
    kind = judge_kind or settings.judge.kind
    report, state = run_simulation(
        claims_path,
        db_path,
        settings=settings,
        judge_kind=kind,
        seed=seed,
        limit=limit,
        progress=sys.stderr.isatty(),
        recursion=None if recursion is None else recursion == "on",
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    plot_path = out_path.with_suffix(".png")
    plot(state, plot_path)
    console.print(quality_table([(kind, report)], f"simulate: {claims_path.name}"))
    console.print(
        f"{report['claims']} markets in {report['seconds']:.1f}s "
        f"({report['markets_per_second']:.2f}/s); report {out_path}, plot {plot_path}"
    )


@main.command("eval")
@claims_run_options
@click.option(
    "--prompt",
    "prompt_specs",
    multiple=True,
    required=True,
    help="A prompt version id, a version of the judge prompt like v2, or a file. Give two to compare.",
)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@with_db
def eval_command(
    db: Any,
    db_path: Path,
    settings: Settings,
    claims_path: Path,
    prompt_specs: tuple[str, ...],
    judge_kind: str | None,
    seed: int,
    limit: int | None,
    out_path: Path,
) -> None:
    """Replay labelled claims through a judge configuration in shadow: nothing published, no credits move."""
    from notebazaar.pipeline.evaluate import evaluate, quality_table, resolve_prompt

    if len(prompt_specs) > 2:
        raise click.ClickException("give one --prompt, or two to compare")
    kind = judge_kind or settings.judge.kind
    resolved = [resolve_prompt(db, spec) for spec in prompt_specs]
    runs = []
    for label, text in resolved:
        report = evaluate(
            claims_path,
            settings=settings,
            judge_kind=kind,
            prompt_text=text,
            limit=limit,
            seed=seed,
            reference_db=db,
            progress=sys.stderr.isatty(),
        )
        runs.append({"prompt": label, **report})
    out = {**runs[0], "runs": runs}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    console.print(quality_table([(r["prompt"], r) for r in runs], f"eval ({kind} judge): {claims_path.name}"))
    if kind == "local":
        console.print("note: the embedded judge has no prompt; the prompts matter for --judge openai")


@main.command()
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--markets", type=int, default=40, show_default=True, help="Markets in the end-to-end run.")
@click.option("--offers", type=int, default=32, show_default=True, help="Offers per market.")
@click.option("--repeats", type=int, default=3, show_default=True, help="Runs per measurement (median).")
@with_db
def bench(
    db: Any, db_path: Path, settings: Settings, out_path: Path, markets: int, offers: int, repeats: int
) -> None:
    """Measure embedding throughput, end-to-end market throughput, ledger speed and decision latency."""
    from notebazaar.pipeline.bench import run_bench

    if markets < 1 or offers < 1 or repeats < 1:
        raise click.ClickException("--markets, --offers and --repeats must be at least 1")
    db.close()
    result = run_bench(db_path.parent, settings, markets=markets, offers=offers, repeats=repeats)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    table = Table(title="bench")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        shown = (
            json.dumps(value)
            if isinstance(value, dict)
            else f"{value:.3f}"
            if isinstance(value, float)
            else str(value)
        )
        table.add_row(key, shown)
    console.print(table)


# --- surfaces -----------------------------------------------------------------------------------


@main.command()
@click.option("--host", default=None, help="Default from config [web].")
@click.option("--port", type=int, default=None, help="Default from config [web].")
@click.option(
    "--demo/--no-demo",
    "seed_demo",
    default=False,
    help="Seed a demo community with posts, informers and notes on first run.",
)
@with_db
def serve(
    db: Any, db_path: Path, settings: Settings, host: str | None, port: int | None, seed_demo: bool
) -> None:
    """Run the web app and the pipeline worker that closes markets on schedule."""
    from notebazaar.web.server import run_server

    db.close()
    run_server(
        db_path, settings, host=host or settings.web.host, port=port or settings.web.port, seed_demo=seed_demo
    )


@main.command("discord")
@with_db
def discord_command(db: Any, db_path: Path, settings: Settings) -> None:
    """Run the Discord bot (token from $DISCORD_TOKEN)."""
    from notebazaar.bot.discord.runner import run_discord

    db.close()
    run_discord(db_path, settings)


@main.command("reddit")
@with_db
def reddit_command(db: Any, db_path: Path, settings: Settings) -> None:
    """Run the Reddit bot (credentials from the environment or praw.ini)."""
    from notebazaar.bot.reddit.runner import run_reddit

    db.close()
    run_reddit(db_path, settings)


if __name__ == "__main__":
    main()
