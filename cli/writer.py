"""``notebazaar writer``: run the automatic note writer against a server, and export what it learned."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from notebazaar.cli.base import _settings, console, main
from notebazaar.pipeline.errors import NotebazaarError


class _WriterGroup(click.Group):
    """``--source corpus FILE`` names its file right after the source; it is read as ``--corpus FILE``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rewritten, i = [], 0
        while i < len(args):
            after = args[i + 1 : i + 3]
            if args[i] == "--source" and len(after) == 2 and after[0] == "corpus" and after[1][:1] != "-":
                rewritten += ["--source", "corpus", "--corpus", after[1]]
                i += 3
                continue
            rewritten.append(args[i])
            i += 1
        return super().parse_args(ctx, rewritten)


def _log_to(state: Path) -> None:
    state.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(state / "writer.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


@main.group("writer", cls=_WriterGroup, invoke_without_command=True)
@click.option("--server", default=None, help="The notebazaar server (default: [writer] server).")
@click.option(
    "--source",
    type=click.Choice(["corpus", "openai"]),
    default=None,
    help="corpus FILE: retrieval over your own passages; openai: a model writes from them (needs --corpus).",
)
@click.option(
    "--corpus",
    "corpus_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The writer's passages (JSONL with text, or plain-text paragraphs).",
)
@click.option(
    "--state",
    "state",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/writer"),
    show_default=True,
    help="The writer's own folder: its log, its notes and salts, never the market's database.",
)
@click.option("--community", default=None, help="Offer only here (default: [writer] community, or all).")
@click.option("--rounds", type=int, default=None, help="Stop after N rounds (default: run until stopped).")
@click.option(
    "--interval", type=float, default=None, help="Seconds between rounds ([writer] interval_seconds)."
)
@click.pass_context
def writer_group(
    ctx: click.Context,
    server: str | None,
    source: str | None,
    corpus_path: Path | None,
    state: Path,
    community: str | None,
    rounds: int | None,
    interval: float | None,
) -> None:
    """An automatic note writer: offers sealed notes through the JSON API and learns from its rewards.

    The API token comes from the environment variable named by [writer] token_env
    (NOTEBAZAAR_WRITER_TOKEN). Run: notebazaar writer --source corpus FILE --server URL --state DIR."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings().writer
    if source is None:
        raise click.ClickException("give --source corpus FILE or --source openai --corpus FILE")
    if corpus_path is None:
        raise click.ClickException(f"--source {source} needs the writer's passages: --corpus FILE")
    if rounds is not None and rounds < 1:
        raise click.ClickException("--rounds must be at least 1")
    token = os.environ.get(settings.token_env)
    if not token:
        raise click.ClickException(f"set {settings.token_env} to the writer account's API token")
    from notebazaar.writer.core import Writer
    from notebazaar.writer.log import StateError, WriterLog
    from notebazaar.writer.runner import ApiError, MarketApi, WriterRunner
    from notebazaar.writer.sources import CorpusSource, NoteSource, OpenAISource

    _log_to(state)
    server = server or settings.server
    try:
        retrieval = CorpusSource.from_file(corpus_path)
        note_source: NoteSource = retrieval if source == "corpus" else OpenAISource(retrieval, settings)
    except (NotebazaarError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    log = WriterLog(state)
    api = MarketApi(server, token, timeout=settings.timeout_seconds, retries=settings.retries)
    writer = Writer(
        note_source,
        log,
        alpha=settings.alpha,
        prior_strength=settings.prior_strength,
        decay=settings.decay,
        offers_per_market=settings.offers_per_market,
    )
    runner = WriterRunner(api, writer, community=community if community is not None else settings.community)
    try:
        runner.start(server)
        failed = runner.run(rounds=rounds, interval=interval or settings.interval_seconds)
    except (ApiError, StateError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        failed = 0
    finally:
        api.close()
        log.close()
    notes = list(WriterLog(state).notes())
    rewarded = [n for n in notes if n["reward"] is not None]
    console.print(
        f"writer: {len(notes)} offers logged, {len(rewarded)} rewarded,"
        f" reward {sum(n['reward'] for n in rewarded)} credits; state {state}"
    )
    if failed:
        raise click.ClickException(f"{failed} round(s) failed; see {state / 'writer.log'}")


@writer_group.command("export-preferences")
@click.option("--state", "state", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--rewards-out",
    "rewards_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Scalar-reward records (default: rewards.jsonl beside --out).",
)
def export_preferences(state: Path, out: Path, rewards_out: Path | None) -> None:
    """Preference pairs (TRL's prompt/chosen/rejected, for DPOTrainer and RewardTrainer) and scalar
    reward records (prompt/completion/label/reward) from the writer's log."""
    from notebazaar.writer.log import StateError
    from notebazaar.writer.preferences import export_preferences as run_export

    try:
        pairs, records = run_export(state, out, rewards_out)
    except StateError as exc:
        raise click.ClickException(str(exc)) from None
    records_path = rewards_out or out.with_name("rewards.jsonl")
    console.print(f"{pairs} preference pairs -> {out}; {records} reward records -> {records_path}")
