"""Running a market by hand: communities, credits, pools, posts, markets, offers (accounts: accounts.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from notebazaar.cli.base import account_id_of, echo_json, main, with_db
from notebazaar.pipeline import community, ledger, market
from notebazaar.pipeline.config import WINDOW_RANGE, Settings

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
@click.option("--writer-offers-per-day", type=int, default=None, help="A new automatic writer's daily cap.")
@click.option(
    "--writer-offers-per-right-note", type=int, default=None, help="Added to the cap per net right note."
)
@click.option(
    "--payment-hold-hours", type=int, default=None, help="Hours a bought note's price waits for readers."
)
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


@main.group("credits")
def credits_group() -> None:
    """Minting credits into wallets."""


@credits_group.command("mint")
@click.argument("handle")
@click.argument("amount", type=int)
@with_db
def credits_mint(db: Any, db_path: Path, settings: Settings, handle: str, amount: int) -> None:
    """Mint AMOUNT new credits into HANDLE's wallet."""
    account_id = account_id_of(db, handle)
    txn = community.mint(db, account_id, amount, limits=settings.limits)
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
    txn = community.fund_pool(db, com.id, account_id_of(db, handle), amount, limits=settings.limits)
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
    if window_seconds is not None and not 0 <= window_seconds <= WINDOW_RANGE[1]:
        raise click.ClickException(f"--window-seconds must be between 0 and {WINDOW_RANGE[1]} (30 days)")
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
@with_db(reads_only=True)
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
        account_id_of(db, informer),
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
    market.withdraw_offer(db, offer_id, account_id_of(db, informer))
    echo_json({"offer_id": offer_id, "status": "withdrawn"})
