"""The judge: ``notebazaar judge check`` (can it work?), ``judge fit``, ``judge set`` and
``judge show`` (the embedded judge's parameters, fitted on labelled claims or set by hand)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from notebazaar.cli.base import echo_json, main, with_db
from notebazaar.pipeline.config import Settings


@main.group("judge")
def judge_group() -> None:
    """Check the judge, and fit, set or show the embedded judge's parameters."""


def _community_id(db: Any, slug: str | None) -> int | None:
    if slug is None:
        return None
    from notebazaar.pipeline import community

    return community.get_community(db, slug).id


@judge_group.command("check")
@click.option(
    "--judge",
    "judge_kind",
    type=click.Choice(["local", "openai"]),
    default=None,
    help="Judge kind (default from config).",
)
@click.option("--community", "slug", default=None, help="Use this community's prompt and parameters.")
@with_db
def judge_check(db: Any, db_path: Path, settings: Settings, judge_kind: str | None, slug: str | None) -> None:
    """Send a canned probe through the judge: what the server supports, tokens, seconds.

    Prints one JSON object; exits 1 with the reason when the judge cannot work."""
    from notebazaar.pipeline import prompts
    from notebazaar.pipeline.judge.check import check_judge
    from notebazaar.pipeline.judge.factory import make_judge

    kind = judge_kind or settings.judge.kind
    community_id = _community_id(db, slug)
    prompt_text = None
    if kind == "openai" and community_id is not None:
        prompt_text = str(prompts.active_prompt(db, community_id)["text"])
    try:
        judge = make_judge(settings, db, kind=kind, prompt_text=prompt_text)
    except ValueError as exc:  # a prompt saved before activation was checked
        raise click.ClickException(f"the judge cannot work: {exc}") from None
    report = check_judge(judge)
    out = report.as_dict()
    if kind == "openai":
        out |= {"base_url": settings.judge.openai.base_url, "model": settings.judge.openai.model}
    echo_json(out)
    if report.warning:
        click.echo(f"Warning: {report.warning}", err=True)
    if not report.ok:
        raise click.ClickException(f"the judge cannot work: {report.reason}")


@judge_group.command("fit")
@click.option(
    "--claims",
    "claims_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Labelled claims (JSONL) to fit on.",
)
@click.option(
    "--community",
    "slug",
    default=None,
    help="Store the parameters as this community's (default: the database's, for every community"
    " without its own).",
)
@click.option("--limit", type=int, default=None, help="Fit on the first N claims only.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampled non-evidence.")
@with_db
def judge_fit(
    db: Any,
    db_path: Path,
    settings: Settings,
    claims_path: Path,
    slug: str | None,
    limit: int | None,
    seed: int,
) -> None:
    """Fit the embedded judge's parameters on a labelled file and store them."""
    from notebazaar.index.embed import get_embedder
    from notebazaar.pipeline.claims import load_claims
    from notebazaar.pipeline.judge import params

    if limit is not None and limit < 1:
        raise click.ClickException("--limit must be at least 1")
    community_id = _community_id(db, slug)
    claims = load_claims(claims_path, limit=limit)
    embedder = get_embedder(
        settings.index.model, batch_size=settings.index.batch_size, sha256=settings.index.model_sha256
    )
    fitted, fit_report = params.fit(claims, embedder, seed=seed)
    params.store(db, community_id, fitted, fitted_on=claims_path.name, fit_report=fit_report)
    echo_json(
        {
            "community": slug,
            "fitted_on": claims_path.name,
            "params": params.as_dict(fitted),
            "fit_report": fit_report,
        }
    )


@judge_group.command("set")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.option(
    "--community",
    "slug",
    default=None,
    help="Change this community's parameters (default: the database's, for every community without its own).",
)
@with_db
def judge_set(
    db: Any, db_path: Path, settings: Settings, assignments: tuple[str, ...], slug: str | None
) -> None:
    """Change some of the embedded judge's parameters in force, e.g. ``newcomer_credit=5``; the
    others (and what they were fitted on) stay as they are."""
    from notebazaar.pipeline.errors import ValidationError
    from notebazaar.pipeline.judge import params

    changes = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.ClickException(f"{item!r} is not KEY=VALUE")
        changes[key.strip()] = value.strip()
    community_id = _community_id(db, slug)
    found = params.stored(db, community_id)
    try:
        changed = params.with_changes(found.params, changes)
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from None
    params.store(db, community_id, changed, fitted_on=found.fitted_on, fit_report=found.fit_report or {})
    echo_json({"community": slug, "params": params.as_dict(changed), "changed": sorted(changes)})


@judge_group.command("show")
@click.option(
    "--community", "slug", default=None, help="This community's parameters (default: the database's)."
)
@with_db
def judge_show(db: Any, db_path: Path, settings: Settings, slug: str | None) -> None:
    """The embedded judge's parameters in force, where they come from, and what each judge reads."""
    from notebazaar.pipeline.judge import params

    community_id = _community_id(db, slug)
    found = params.stored(db, community_id)
    out: dict[str, Any] = {
        "community": slug,
        "source": found.source,
        "fitted_on": found.fitted_on,
        "params": params.as_dict(found.params),
        "fit_report": found.fit_report,
        "reads": params.WHAT_EACH_JUDGE_READS,
    }
    click.echo(json.dumps(out, indent=2, ensure_ascii=False))
