"""``notebazaar serve``: seed the demo if asked, then run the web app (and its worker) under uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path

import uvicorn
from rich.console import Console
from rich.table import Table

from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.judge.factory import make_judge
from notebazaar.web.app import create_app
from notebazaar.web.demo import DemoLogin, ensure_demo


def print_logins(console: Console, logins: list[DemoLogin]) -> None:
    table = Table(title="Demo logins (DEMO ONLY: these passwords are public)")
    for column in ("handle", "password", "roles"):
        table.add_column(column)
    for login in logins:
        table.add_row(login.handle, login.password, ", ".join(login.roles))
    console.print(table)


def run_server(db_path: Path, settings: Settings, *, host: str, port: int, seed_demo: bool) -> None:
    """Serve until interrupted. The worker closing due markets starts and stops with the app."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    console = Console()
    db = open_db(db_path)
    judge = make_judge(settings, db)
    if seed_demo:
        logins = ensure_demo(db, settings, judge, slug=settings.web.demo_community)
        if logins:
            console.print(f"Seeded the demo community {settings.web.demo_community!r}.")
            print_logins(console, logins)
        else:
            console.print(
                f"The demo community {settings.web.demo_community!r} exists; demo logins are in docs/web.md."
            )
    # The demo gives each new account its own sign-up credits; production gives [web] signup_credits.
    grant = settings.web.demo_signup_credits if seed_demo else None
    app = create_app(db_path, settings, judge=judge, signup_grant=grant)
    console.print(f"notebazaar web app on http://{host}:{port}/ (API docs at /docs, schema at /openapi.json)")
    try:
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        db.close()  # kept open while serving: the judge may read the database
