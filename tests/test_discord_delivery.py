"""Revealed notes reach Discord once: as reply embeds or in a thread, across passes and restarts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlite_utils import Database

from notebazaar.bot.discord.commands import NotebazaarCog
from notebazaar.bot.discord.modal import NoteModal
from notebazaar.pipeline import community, ledger
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.judge.simple import SimpleJudge
from notebazaar.pipeline.settlement import close_market
from tests.conftest import World
from tests.test_discord_fakes import (
    CLAIM,
    QUIET,
    FakeChannel,
    FakeDiscord,
    FakeMessage,
    attach,
    make_bot,
    make_interaction,
    make_user,
    modal_payload,
    only_answer,
    server_error,
)
from tests.test_discord_fakes import discord_settings as _discord_settings

NOTE = (
    "No survey found 97 percent of scientists agree the vaccine causes autism; the study shows the opposite."
)


@pytest.fixture
def settings() -> Settings:
    return _discord_settings()


def _offer(
    db: Database, settings: Settings, message: FakeMessage, name: str, classification: str = "misleading"
) -> None:
    user = make_user(name)
    account = community.account_for_identity(db, "discord", str(user.id), user.name)
    community.mint(db, account, 100, key=f"test:discord:{name}")
    interaction = make_interaction(user)

    async def go() -> None:
        modal = NoteModal(db, settings)
        modal._refresh(
            interaction, modal_payload(message.jump_url, classification, NOTE, "https://x.org", "5 3"), {}
        )
        await modal.on_submit(interaction)

    asyncio.run(go())
    assert "Sealed offer" in (only_answer(interaction).content or "")


def _market_with_reveals(
    db: Database, settings: Settings, cog: NotebazaarCog, fake: FakeDiscord, informers: int = 1
) -> tuple[FakeChannel, FakeMessage, int]:
    channel = fake.channel(QUIET)
    message = channel.message(CLAIM, make_user("poster"))
    asyncio.run(cog.request_notes(make_interaction(make_user("reader")), message))  # type: ignore[arg-type]
    for i in range(informers):
        # alternate classifications, so each note moves the judge and is bought
        _offer(db, settings, message, f"informer{i}", ("misleading", "not_misleading")[i % 2])
    market_id = int(db.execute("SELECT id FROM markets").fetchone()[0])
    report = close_market(db, market_id, SimpleJudge(), force=True)
    assert sum(i.bought for i in report.inspections) == informers
    return channel, message, market_id


def test_reveals_are_posted_once_as_replies_even_across_restarts(
    db: Database, db_path: Path, settings: Settings, world: World
) -> None:
    bot, cog = make_bot(db_path, settings, db)
    fake = FakeDiscord()
    attach(bot, fake)
    channel, message, _ = _market_with_reveals(db, settings, cog, fake)

    first = asyncio.run(bot.delivery.run())
    second = asyncio.run(bot.delivery.run())
    assert len(first) == 1 and second == []
    assert len(channel.posted) == 1
    embed, reply_to = channel.posted[0]
    assert reply_to == message.id
    assert embed.title == "Community note: Misleading" and embed.description == NOTE
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Informer"] == "discord:informer0" and fields["Price paid"] == "3 credits"
    assert "https://x.org" in fields["Sources"]
    row = db["outbox"].get(first[0])
    assert row["status"] == "delivered" and row["external_id"].startswith(f"{QUIET}:")

    restarted, _ = make_bot(db_path, settings)  # a new process: its own connection to the same file
    attach(restarted, fake)
    try:
        assert asyncio.run(restarted.delivery.run()) == []
    finally:
        restarted.db.close()
    assert len(channel.posted) == 1


def test_concurrent_delivery_passes_post_once(
    db: Database, db_path: Path, settings: Settings, world: World
) -> None:
    bot, cog = make_bot(db_path, settings, db)
    fake = FakeDiscord()
    attach(bot, fake)
    channel, _, _ = _market_with_reveals(db, settings, cog, fake, informers=2)

    async def both() -> list[list[int]]:
        return list(await asyncio.gather(bot.delivery.run(), bot.delivery.run()))

    results = asyncio.run(both())
    assert sorted(len(r) for r in results) == [0, 2]
    assert len(channel.posted) == 2


def test_thread_mode_posts_in_one_thread_under_the_message(db: Database, db_path: Path, world: World) -> None:
    settings = _discord_settings(reply_mode="thread")
    bot, cog = make_bot(db_path, settings, db)
    fake = FakeDiscord()
    attach(bot, fake)
    channel, message, _ = _market_with_reveals(db, settings, cog, fake, informers=2)

    # the second note finds the thread the first one created (a thread has its message's id)
    assert len(asyncio.run(bot.delivery.run())) == 2
    assert asyncio.run(bot.delivery.run()) == []

    thread = fake.channels[message.id]
    assert thread.name == "Community notes" and len(thread.posted) == 2
    assert channel.threads_created == 1 and channel.posted == []


def test_failed_delivery_is_retried_then_delivered(
    db: Database, db_path: Path, settings: Settings, world: World
) -> None:
    bot, cog = make_bot(db_path, settings, db)
    fake = FakeDiscord()
    channel, _, _ = _market_with_reveals(db, settings, cog, fake)
    attach(bot, fake)
    fake.failures = [server_error(503)]  # Discord is down (after discord.py's own retries)
    started = time.time()
    assert asyncio.run(bot.delivery.run()) == []
    row = next(db["outbox"].rows)
    assert row["status"] == "pending" and row["attempts"] == 1 and "server error 503" in row["last_error"]
    first = settings.delivery.first_retry_seconds
    assert started + first / 2 <= row["next_attempt_at"] <= time.time() + first  # backoff, persisted
    assert asyncio.run(bot.delivery.run()) == []  # not due yet
    bot.delivery.clock = lambda: row["next_attempt_at"] + 1
    assert len(asyncio.run(bot.delivery.run())) == 1
    assert len(channel.posted) == 1


def test_unpublish_takes_the_message_down_and_it_is_never_reposted(
    db: Database, db_path: Path, settings: Settings, world: World
) -> None:
    bot, cog = make_bot(db_path, settings, db)
    fake = FakeDiscord()
    attach(bot, fake)
    channel, _, _ = _market_with_reveals(db, settings, cog, fake)
    asyncio.run(bot.delivery.run())
    reveal_id = int(db.execute("SELECT id FROM reveals").fetchone()[0])
    posted_id = int(next(db["outbox"].rows)["external_id"].split(":")[1])

    mod = make_user("admin", manage_guild=True)
    interaction = make_interaction(mod)
    asyncio.run(cog.note_unpublish.callback(cog, interaction, note=reveal_id, reason="doxxing"))
    assert "unpublished and its Discord message was deleted" in (only_answer(interaction).content or "")
    assert channel.messages[posted_id].deleted
    assert db["reveals"].get(reveal_id)["unpublished_at"] is not None
    assert asyncio.run(bot.delivery.run()) == []


def test_the_bot_closes_due_markets_and_delivers(
    db: Database, db_path: Path, settings: Settings, world: World
) -> None:
    bot, cog = make_bot(db_path, settings, db)
    fake = FakeDiscord()
    attach(bot, fake)
    channel = fake.channel(QUIET)
    message = channel.message(CLAIM, make_user("poster"))
    asyncio.run(cog.request_notes(make_interaction(make_user("reader")), message))  # type: ignore[arg-type]
    _offer(db, settings, message, "informer0")
    db.execute("UPDATE markets SET closes_at = 0")  # the bidding window has passed
    pool_before = ledger.balance(db, ledger.pool(world.community_id))
    try:
        closed, delivered = asyncio.run(bot.settle_and_deliver())
    finally:
        bot.closer.shutdown()
    assert len(closed) == 1 and len(delivered) == 1
    assert db["markets"].get(closed[0])["status"] == "settled"
    assert len(channel.posted) == 1
    assert ledger.balance(db, ledger.pool(world.community_id)) > pool_before - 200
    assert ledger.check(db).ok
