"""The Discord bot never touches SQLite on its event loop, defers before slow work, and checks a
post before opening the note form.

Which thread ran each SQL statement is read from SQLite itself (``set_trace_callback`` runs in the
thread that executes the statement), so the test does not depend on timing: a statement on the loop's
thread is a statement that could stall the gateway heartbeat while another process holds the lock.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from notebazaar.bot.discord import commands as commands_module
from notebazaar.bot.discord.commands import NotebazaarCog
from notebazaar.bot.discord.modal import NoteModal
from notebazaar.pipeline import community, prompts
from notebazaar.pipeline.config import Settings
from tests.conftest import World
from tests.test_discord_fakes import (
    CLAIM,
    QUIET,
    WATCHED,
    FakeDiscord,
    FakeMessage,
    answers,
    attach,
    make_bot,
    make_interaction,
    make_user,
    modal_payload,
    only_answer,
)
from tests.test_discord_fakes import discord_settings as _discord_settings


@pytest.fixture
def settings() -> Settings:
    return _discord_settings(check_worthiness="all")


@pytest.fixture
def setup(db: Database, db_path: Path, settings: Settings, world: World) -> dict[str, Any]:
    bot, cog = make_bot(db_path, settings, db)
    fake = FakeDiscord()
    attach(bot, fake)
    message = fake.channel(QUIET).message(CLAIM, make_user("poster"))
    asyncio.run(cog.request_notes(make_interaction(make_user("reader")), message))  # type: ignore[arg-type]
    moderator = make_user("moddy")
    account = community.account_for_identity(db, "discord", str(moderator.id), moderator.name)
    community.grant(db, account, world.community_id, "moderator")
    community.mint(db, account, 500, key="test:moddy")
    prompts.create_version(db, "a second prompt")
    return {"bot": bot, "cog": cog, "fake": fake, "message": message, "moderator": moderator}


def _sql_threads(db: Database, run: Callable[[], Awaitable[Any]]) -> tuple[int, set[int]]:
    """Run ``run`` on a fresh event loop; the loop's thread and the threads that executed SQL."""
    seen: set[int] = set()

    async def main() -> int:
        db.conn.set_trace_callback(lambda sql: seen.add(threading.get_ident()))
        try:
            await run()
        finally:
            db.conn.set_trace_callback(None)
        return threading.get_ident()

    return asyncio.run(main()), seen


def _calls(setup: dict[str, Any]) -> dict[str, Callable[[Any], Awaitable[Any]]]:
    cog: NotebazaarCog = setup["cog"]
    message: FakeMessage = setup["message"]
    link = message.jump_url
    return {
        "note status": lambda i: cog.note_status.callback(cog, i),
        "wallet": lambda i: cog.wallet.callback(cog, i),
        "pool fund": lambda i: cog.pool_fund.callback(cog, i, amount=5),
        "market show": lambda i: cog.market_show.callback(cog, i, post=link),
        "request notes": lambda i: cog.request_notes(i, message),
        "judge prompt": lambda i: cog.judge_prompt.callback(cog, i, version=2),
        "note unpublish": lambda i: cog.note_unpublish.callback(cog, i, note=99, reason="x"),
        "informer ban": lambda i: cog.informer_ban.callback(cog, i, user=make_user("victim"), reason="x"),
        "informer unban": lambda i: cog.informer_unban.callback(cog, i, user=make_user("victim")),
        "note submit": lambda i: cog.note_submit.callback(cog, i, post=link),
        "note submarket": lambda i: cog.note_submarket.callback(cog, i, market=7),
        "autocomplete": lambda i: cog.sub_market_choices(i, ""),
    }


DEFERRED = {"note status", "wallet", "pool fund", "market show", "request notes", "judge prompt"}
DEFERRED |= {"note unpublish", "informer ban", "informer unban"}


@pytest.mark.parametrize("name", sorted(DEFERRED | {"note submit", "note submarket", "autocomplete"}))
def test_commands_run_no_sql_on_the_event_loop(db: Database, setup: dict[str, Any], name: str) -> None:
    interaction = make_interaction(setup["moderator"])
    call = _calls(setup)[name]
    loop_thread, sql_threads = _sql_threads(db, lambda: call(interaction))
    assert sql_threads, "the command asked the database nothing"
    assert loop_thread not in sql_threads
    if name in DEFERRED:  # slow work behind an acknowledgement, the answer as a follow-up
        assert interaction.response.deferred and answers(interaction)


def test_the_watcher_modal_and_delivery_run_no_sql_on_the_event_loop(
    db: Database, setup: dict[str, Any], settings: Settings, world: World
) -> None:
    cog: NotebazaarCog = setup["cog"]
    fake: FakeDiscord = setup["fake"]
    watched = fake.channel(WATCHED).message(CLAIM + " Watched.", make_user("someone"))
    loop_thread, sql = _sql_threads(db, lambda: cog.on_message(watched))  # type: ignore[arg-type]
    assert sql and loop_thread not in sql
    assert db.execute("SELECT COUNT(*) FROM markets").fetchone()[0] == 2

    informer = make_user("inf")
    account = community.account_for_identity(db, "discord", str(informer.id), informer.name)
    community.mint(db, account, 100, key="test:inf")
    interaction = make_interaction(informer)

    async def submit() -> None:
        modal = NoteModal(db, settings, off_loop=cog.off_loop)
        payload = modal_payload(setup["message"].jump_url, "misleading", "No such survey exists.", "", "5 3")
        modal._refresh(interaction, payload, {})
        await modal.on_submit(interaction)

    loop_thread, sql = _sql_threads(db, submit)
    assert sql and loop_thread not in sql and "Sealed offer" in (only_answer(interaction).content or "")

    db.execute("UPDATE markets SET closes_at = 0")
    from notebazaar.pipeline.judge.simple import SimpleJudge
    from notebazaar.pipeline.settlement import close_due

    close_due(db, SimpleJudge())
    loop_thread, sql = _sql_threads(db, setup["bot"].delivery.run)
    assert sql and loop_thread not in sql


def test_note_submit_refuses_before_the_form_when_no_market_takes_notes(
    db: Database, setup: dict[str, Any]
) -> None:
    cog: NotebazaarCog = setup["cog"]
    message: FakeMessage = setup["message"]
    stranger = make_interaction(make_user("informer"))
    other = setup["fake"].channel(QUIET).message("no market here", make_user("poster"))
    asyncio.run(cog.note_submit.callback(cog, stranger, post=other.jump_url))
    assert stranger.response.modal is None  # nobody types a note that cannot be offered
    assert "no market is open on that message" in (only_answer(stranger).content or "")

    db.execute("UPDATE markets SET closes_at = 0")
    late = make_interaction(make_user("informer"))
    asyncio.run(cog.note_submit.callback(cog, late, post=message.jump_url))
    assert late.response.modal is None and "takes no more notes" in (only_answer(late).content or "")

    unlinked = make_interaction(make_user("informer"), guild_id=999)
    asyncio.run(cog.note_submit.callback(cog, unlinked, post=message.jump_url))
    assert unlinked.response.modal is None and "not linked" in (only_answer(unlinked).content or "")


def test_note_submit_opens_the_form_anyway_when_the_database_is_too_slow_to_check(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cog: NotebazaarCog = setup["cog"]
    monkeypatch.setattr(commands_module, "FORM_CHECK_SECONDS", 0.1)
    interaction = make_interaction(make_user("informer"))
    cog.off_loop._lock.acquire()  # another call holds the bot's connection for a while
    opened_at: list[bool] = []

    async def go() -> None:
        await cog.note_submit.callback(cog, interaction, post=setup["message"].jump_url)
        opened_at.append(cog.off_loop._lock.locked())

    release = threading.Timer(1.0, cog.off_loop._lock.release)  # asyncio.run waits for its threads
    release.start()
    try:
        asyncio.run(go())
    finally:
        release.join()
    assert isinstance(interaction.response.modal, NoteModal)  # within Discord's 3 s; checked on submit
    assert opened_at == [True]  # the form did not wait for the database
