"""The product measures itself: simulate, eval, bench."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from notebazaar.cli.base import claims_run_options, console, db_option, main, with_db
from notebazaar.pipeline.config import Settings

# --- measuring the product ------------------------------------------------------------------------


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
@click.option(
    "--resolution",
    type=click.Choice(["label", "none", "ratings"]),
    default="label",
    show_default=True,
    help="label: each post resolves to its label after its market, so track records grow;"
    " none: no post ever resolves, every informer stays a newcomer;"
    " ratings: posts never resolve, a rater population rates the shown notes and bridging statuses"
    " are the only truth (adds rating_status_accuracy and misleading_shown_share).",
)
@click.option(
    "--coordinated-raters",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=0.0,
    show_default=True,
    help="With --resolution ratings: the share of raters who rate misleading informers' notes helpful"
    " and every other note not helpful.",
)
@click.option(
    "--writers",
    type=click.Choice(["on", "off"]),
    default="off",
    show_default=True,
    help="A learning note writer and its fixed twin join the informers (notebazaar.writer); the"
    " report adds writer_profit_per_offer and writer_offers, the plot their cumulative profit.",
)
@with_db(creates=True)
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
    resolution: str,
    writers: str,
    coordinated_raters: float,
) -> None:
    """Run informer populations against the judge on labelled claims; write a JSON report and a plot.

    Exits 1 (after writing the report) when the judge failed every call."""
    from notebazaar.pipeline.evaluate import format_table
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
        resolution=resolution,
        writer_factory=_writers(settings) if writers == "on" else None,
        coordinated_raters=coordinated_raters,
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    plot_path = out_path.with_suffix(".png")
    plot(state, plot_path)
    click.echo(f"simulate: {claims_path.name}\n{format_table([(kind, report)])}")
    console.print(
        f"{report['claims']} markets in {report['seconds']:.1f}s "
        f"({report['markets_per_second']:.2f}/s); report {out_path}, plot {plot_path}"
    )
    _say_what_failed([report])


def _say_what_failed(reports: list[dict[str, Any]]) -> None:
    """A warning for judge failures; exit 1 if the judge failed every call."""
    from notebazaar.pipeline.simulate import judge_failure

    for report in reports:
        failure = judge_failure(report)
        if failure:  # the run happened and its report stays: not a refusal, whose files are removed
            click.echo(f"Error: {failure}", err=True)
            sys.exit(1)
        errors = report.get("judge_errors") or {}
        if errors:
            failed = sum(errors.values())
            click.echo(
                f"Warning: {failed} of {report['judge_calls']} judge calls failed ("
                + ", ".join(f"{k} {v}" for k, v in sorted(errors.items(), key=lambda kv: -kv[1]))
                + "); those offers were not bought",
                err=True,
            )


def _writers(settings: Settings) -> Any:
    from notebazaar.writer.simulated import SimulatedWriters

    return SimulatedWriters(settings.writer)


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
    from notebazaar.pipeline.evaluate import evaluate, format_table, resolve_prompt

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
    click.echo(f"eval ({kind} judge): {claims_path.name}\n{format_table([(r['prompt'], r) for r in runs])}")
    if kind == "local":
        console.print("note: the embedded judge has no prompt; the prompts matter for --judge openai")
    _say_what_failed(runs)


@main.group(invoke_without_command=True)
@click.option(
    "--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), help="Where to write bench.json."
)
@click.option(
    "--markets", type=int, default=None, help="Markets in the end-to-end run (default 40; --scale: 20)."
)
@click.option("--offers", type=int, default=32, show_default=True, help="Offers per market.")
@click.option("--repeats", type=int, default=3, show_default=True, help="Runs per measurement (median).")
@click.option(
    "--profile",
    is_flag=True,
    help="Also profile one run of the markets (cProfile; the model in its own thread) and write where"
    " the market's own time goes to OUT's name with .profile.txt (raw profile: .profile.prof).",
)
@click.option(
    "--scale",
    is_flag=True,
    help="Measure how a market's cost grows with its community instead: 10^3, 10^4 and 10^5 resolved"
    ' posts with revealed notes (synthetic, seeded), writing {"scale": [...]} to OUT.',
)
@click.option(
    "--sizes",
    default="1000,10000,100000",
    show_default=True,
    help="With --scale: community sizes (resolved posts), comma-separated.",
)
@db_option("SQLite database (default: `db` in config.toml); the bench's state goes in a folder beside it.")
@click.pass_context
def bench(
    ctx: click.Context,
    db_path: Path | None,
    out_path: Path | None,
    markets: int | None,
    offers: int,
    repeats: int,
    profile: bool,
    scale: bool,
    sizes: str,
) -> None:
    """Measure embedding throughput, end-to-end market throughput, ledger speed and decision latency.

    ``bench bridging`` measures the bridging scorer."""
    from notebazaar.cli.base import _settings, setup_logging
    from notebazaar.pipeline.bench import run_bench

    if ctx.invoked_subcommand is not None:
        return  # `bench bridging`: its own options
    if out_path is None:
        raise click.ClickException("Missing option '--out'.")
    if (markets is not None and markets < 1) or offers < 1 or repeats < 1:
        raise click.ClickException("--markets, --offers and --repeats must be at least 1")
    settings = _settings()
    db_path = db_path or Path(settings.db)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    setup_logging(db_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if scale:
        from notebazaar.pipeline.bench_scale import run_scale

        try:
            wanted = [int(x) for x in sizes.split(",") if x.strip()]
        except ValueError:
            raise click.ClickException(
                f"--sizes must be whole numbers separated by commas, not {sizes!r}"
            ) from None
        if not wanted or min(wanted) < 1:
            raise click.ClickException("--sizes must be at least 1")
        result = run_scale(db_path.parent, settings, sizes=wanted, markets=markets or 20, offers=offers)
    else:
        profile_out = out_path.with_name(out_path.stem + ".profile.txt") if profile else None
        result = run_bench(
            db_path.parent,
            settings,
            markets=markets or 40,
            offers=offers,
            repeats=repeats,
            profile_out=profile_out,
        )
    out_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    table = Table(title="bench --scale" if scale else "bench")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [(str(r["posts"]), json.dumps(r)) for r in result["scale"]] if scale else result.items()
    for key, value in rows:
        if key == "profile":
            continue
        shown = (
            json.dumps(value)
            if isinstance(value, dict | list)
            else f"{value:.3f}"
            if isinstance(value, float)
            else str(value)
        )
        table.add_row(key, shown)
    console.print(table)
    if profile and not scale:
        console.print(f"profile: {out_path.with_name(out_path.stem + '.profile.txt')}")
