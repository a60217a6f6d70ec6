"""Revealed notes reach Discord once: as reply embeds or in a thread, across passes and restarts."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import MagicMock

import aiohttp
import pytest
from multidict import CIMultiDict
from sqlite_utils import Database
from yarl import URL

from notebazaar.bot.discord.client import NotebazaarBot
from notebazaar.bot.discord.commands import NotebazaarCog
from notebazaar.bot.discord.delivery import post_reveal
from notebazaar.bot.discord.modal import NoteModal
from notebazaar.bot.discord.poststate import DiscordPostCheck
from notebazaar.bot.discord.sends import MessageSends
from notebazaar.pipeline import community, ledger, outbox
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


def _bot_on_fake_discord(
    db_path: Path, settings: Settings, db: Database
) -> tuple[NotebazaarBot, NotebazaarCog, FakeDiscord]:
    """A bot and its cog on the test's database, its channel lookups routed to a fresh fake Discord."""
    bot, cog = make_bot(db_path, settings, db)
    fake = FakeDiscord()
    attach(bot, fake)
    return bot, cog, fake


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
    bot, cog, fake = _bot_on_fake_discord(db_path, settings, db)
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

    assert _delivered_after_a_restart(db_path, settings, fake) == []
    assert len(channel.posted) == 1


def test_concurrent_delivery_passes_post_once(
    db: Database, db_path: Path, settings: Settings, world: World
) -> None:
    bot, cog, fake = _bot_on_fake_discord(db_path, settings, db)
    channel, _, _ = _market_with_reveals(db, settings, cog, fake, informers=2)

    async def both() -> list[list[int]]:
        return list(await asyncio.gather(bot.delivery.run(), bot.delivery.run()))

    results = asyncio.run(both())
    assert sorted(len(r) for r in results) == [0, 2]
    assert len(channel.posted) == 2


def test_thread_mode_posts_in_one_thread_under_the_message(db: Database, db_path: Path, world: World) -> None:
    settings = _discord_settings(reply_mode="thread")
    bot, cog, fake = _bot_on_fake_discord(db_path, settings, db)
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
    bot, cog, fake = _bot_on_fake_discord(db_path, settings, db)
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
    bot, cog, fake = _bot_on_fake_discord(db_path, settings, db)
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


def _delivered_after_a_restart(db_path: Path, settings: Settings, fake: FakeDiscord) -> list[int]:
    """A new bot process (its own connection to the same file) runs one delivery pass."""
    restarted, _ = make_bot(db_path, settings)
    attach(restarted, fake)
    try:
        return asyncio.run(restarted.delivery.run())
    finally:
        restarted.db.close()


def _pending(db: Database) -> list[outbox.PendingReveal]:
    return outbox.pending(db, "discord", now=float("inf"))


@pytest.mark.parametrize("mode", ["reply", "thread"])
def test_a_note_posted_before_a_crash_is_found_and_adopted_not_posted_again(
    db: Database, db_path: Path, world: World, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _discord_settings(reply_mode=mode)
    bot, cog, fake = _bot_on_fake_discord(db_path, settings, db)
    channel, message, _ = _market_with_reveals(db, settings, cog, fake)
    [item] = _pending(db)
    # The crash: the attempt was recorded, Discord accepted the message, the process died before
    # the outbox heard of it.
    outbox.begin_attempt(db, item.outbox_id)
    sent = asyncio.run(post_reveal(bot, item, mode))
    where = fake.channels[message.id] if mode == "thread" else channel
    assert len(where.posted) == 1
    caplog.set_level(logging.INFO)
    assert len(_delivered_after_a_restart(db_path, settings, fake)) == 1
    assert len(where.posted) == 1  # adopted, not posted twice
    row = db["outbox"].get(item.outbox_id)
    assert row["status"] == "delivered" and row["external_id"] == f"{sent.channel.id}:{sent.id}"
    assert "found already posted" in caplog.text and fake.history_reads == 1


def test_a_note_posted_before_a_crash_in_a_busy_channel_is_found_past_the_chatter(
    db: Database, db_path: Path, world: World, settings: Settings
) -> None:
    # The post is two hours old and 150 messages came after it before the note was bought: one page
    # of history after the post (100 messages) ends before the bot's note, which used to be posted
    # again. The search starts at the moment the row was queued instead.
    bot, cog, fake = _bot_on_fake_discord(db_path, settings, db)
    channel = fake.channel(QUIET)
    hours_ago = time.time() - 7200
    message = channel.message(CLAIM, make_user("poster"), at=hours_ago)
    asyncio.run(cog.request_notes(make_interaction(make_user("reader")), message))  # type: ignore[arg-type]
    _offer(db, settings, message, "informer0")
    chatter = make_user("chatty")
    for i in range(150):
        channel.message(f"chatter {i}", chatter, at=hours_ago + 3600 + i)
    market_id = int(db.execute("SELECT id FROM markets").fetchone()[0])
    close_market(db, market_id, SimpleJudge(), force=True)
    [item] = _pending(db)
    outbox.begin_attempt(db, item.outbox_id)
    sent = asyncio.run(post_reveal(bot, item, "reply"))
    for i in range(3):  # and the channel goes on
        channel.message(f"later {i}", chatter)
    assert len(_delivered_after_a_restart(db_path, settings, fake)) == 1
    assert len(channel.posted) == 1  # adopted, not posted twice
    row = db["outbox"].get(item.outbox_id)
    assert row["status"] == "delivered" and row["external_id"] == f"{sent.channel.id}:{sent.id}"
    assert fake.history_reads == 1  # one page, from the moment the row was queued


def test_a_note_posted_in_a_busy_minute_before_a_crash_is_found(
    db: Database, db_path: Path, world: World, settings: Settings
) -> None:
    # 150 messages in the five minutes before the note (the clock-skew margin): more than one page
    # of history. The search pages on to the moment of the last attempt instead of stopping.
    bot, cog, fake = _bot_on_fake_discord(db_path, settings, db)
    channel, _, _ = _market_with_reveals(db, settings, cog, fake)
    chatter = make_user("chatty")
    for i in range(150):
        channel.message(f"chatter {i}", chatter, at=time.time() - 200 + i)
    [item] = _pending(db)
    outbox.begin_attempt(db, item.outbox_id)
    sent = asyncio.run(post_reveal(bot, item, "reply"))
    assert len(_delivered_after_a_restart(db_path, settings, fake)) == 1
    assert [m.id for m in channel.shown()] == [sent.id]  # adopted, not posted twice


@pytest.mark.parametrize("mode", ["reply", "thread"])
def test_a_message_discord_kept_twice_is_kept_once(
    db: Database, db_path: Path, world: World, mode: str
) -> None:
    # Discord saves the note and answers 502; discord.py sends it again by itself. The bot counts
    # the sends (http_trace), sees two, keeps the oldest copy and deletes the other.
    settings = _discord_settings(reply_mode=mode)
    bot, cog, fake = _bot_on_fake_discord(db_path, settings, db)
    channel, message, _ = _market_with_reveals(db, settings, cog, fake)
    fake.resends = 1
    assert len(asyncio.run(bot.delivery.run())) == 1
    where = fake.channels[message.id] if mode == "thread" else channel
    first, second = (m for m in where.messages.values() if m.author is fake.user)
    assert first.id < second.id and second.deleted and not first.deleted
    [row] = db["outbox"].rows
    assert row["status"] == "delivered" and row["external_id"] == f"{where.id}:{first.id}"


def test_copies_left_by_an_earlier_attempt_are_reduced_to_one(
    db: Database, db_path: Path, world: World, settings: Settings
) -> None:
    bot, cog, fake = _bot_on_fake_discord(db_path, settings, db)
    channel, _, _ = _market_with_reveals(db, settings, cog, fake)
    [item] = _pending(db)
    outbox.begin_attempt(db, item.outbox_id)
    fake.resends = 1
    asyncio.run(post_reveal(bot, item, "reply"))  # two copies, then the bot died
    assert len(channel.shown()) == 2
    assert len(asyncio.run(bot.delivery.run())) == 1
    [kept] = channel.shown()
    assert db["outbox"].get(item.outbox_id)["external_id"] == f"{channel.id}:{kept.id}"
    assert kept.id == min(m.id for m in channel.messages.values() if m.author is fake.user)


def test_message_sends_are_counted_per_channel_from_the_http_trace() -> None:
    sends = MessageSends()
    trace = sends.trace_config()
    [hook] = trace.on_request_start

    def start(method: str, url: str) -> aiohttp.TraceRequestStartParams:
        return aiohttp.TraceRequestStartParams(method, URL(url), CIMultiDict())

    api = "https://discord.com/api/v10"
    for method, url in [
        ("POST", f"{api}/channels/123/messages"),
        ("POST", f"{api}/channels/123/messages"),  # the resend
        ("POST", f"{api}/channels/456/messages"),
        ("GET", f"{api}/channels/123/messages"),  # reading history
        ("POST", f"{api}/channels/123/messages/789/threads"),  # starting a thread
        ("PATCH", f"{api}/channels/123/messages/789"),
    ]:
        asyncio.run(hook(MagicMock(), SimpleNamespace(), start(method, url)))
    assert (sends.count(123), sends.count(456), sends.count(789)) == (2, 1, 0)


def test_the_first_attempt_does_not_search_history(
    db: Database, db_path: Path, settings: Settings, world: World
) -> None:
    bot, cog, fake = _bot_on_fake_discord(db_path, settings, db)
    _market_with_reveals(db, settings, cog, fake)
    assert len(asyncio.run(bot.delivery.run())) == 1
    assert fake.history_reads == 0  # nothing can have been posted before the first attempt


def test_a_deleted_message_fails_the_note_at_once_and_it_can_be_retried(
    db: Database, db_path: Path, settings: Settings, world: World
) -> None:
    bot, cog, fake = _bot_on_fake_discord(db_path, settings, db)
    channel, message, _ = _market_with_reveals(db, settings, cog, fake)
    message.deleted = True
    assert asyncio.run(bot.delivery.run()) == []
    row = next(db["outbox"].rows)
    assert row["status"] == "failed" and "10008" in row["last_error"] and row["failed_at"] is not None
    bot.delivery.clock = lambda: time.time() + 10 * 24 * 3600
    assert asyncio.run(bot.delivery.run()) == []
    assert db["outbox"].get(row["id"])["attempts"] == 1  # a permanent failure is not retried by itself
    message.deleted = False  # say a moderator restored it: queue it again by hand
    outbox.retry(db, row["id"])
    assert len(asyncio.run(bot.delivery.run())) == 1 and len(channel.posted) == 1


def test_a_transient_failure_holds_the_other_notes_and_the_horizon_gives_up(
    db: Database, db_path: Path, world: World
) -> None:
    settings = _discord_settings()
    settings.delivery.give_up_after_hours = 2.0
    bot, cog, fake = _bot_on_fake_discord(db_path, settings, db)
    _market_with_reveals(db, settings, cog, fake, informers=2)
    start = now = time.time()
    bot.delivery.clock = lambda: now
    fake.failures = [server_error(502)]
    assert asyncio.run(bot.delivery.run()) == []
    first, second = db.query("SELECT * FROM outbox ORDER BY id")
    assert first["attempts"] == 1 and second["attempts"] == 0  # Discord is down: no point asking again
    assert second["next_attempt_at"] >= first["next_attempt_at"] > now
    waits = []
    for _ in range(100):  # Discord stays down: attempts with growing waits, then both give up
        fake.failures = [server_error(502)] * 2
        due = [r["next_attempt_at"] for r in db.query("SELECT * FROM outbox WHERE status = 'pending'")]
        if not due:
            break
        waits.append(min(due) - now)
        now = min(due) + 0.001
        asyncio.run(bot.delivery.run())
    rows = list(db.query("SELECT * FROM outbox ORDER BY id"))
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert all("gave up after" in r["last_error"] for r in rows)
    assert now - start >= 2 * 3600  # not before the horizon
    # waits grew (10 s apart would be 720 tries); the held row shared them
    assert rows[0]["attempts"] <= 16 and rows[1]["attempts"] <= 2
    assert max(waits) <= settings.delivery.max_retry_seconds + 1 and waits[3] > waits[0]


def test_closing_finishes_the_note_in_hand_and_leaves_the_rest(
    db: Database, db_path: Path, settings: Settings, world: World
) -> None:
    bot, cog, fake = _bot_on_fake_discord(db_path, settings, db)
    channel, message, _ = _market_with_reveals(db, settings, cog, fake, informers=2)

    async def scenario() -> list[int]:
        gate = asyncio.Event()
        reply = message.reply

        async def slow_reply(**kwargs: object) -> FakeMessage:
            await gate.wait()  # Discord is slow to answer the first post
            return await reply(**kwargs)  # type: ignore[arg-type]

        message.reply = slow_reply  # type: ignore[method-assign]
        passing = asyncio.create_task(bot.delivery.run())
        await asyncio.sleep(0.05)
        closing = asyncio.create_task(bot.close())
        await asyncio.sleep(0.05)
        assert not closing.done()  # waits for the note in hand
        gate.set()
        await closing
        return await passing

    assert len(asyncio.run(scenario())) == 1
    statuses = [r["status"] for r in db.query("SELECT status FROM outbox ORDER BY id")]
    assert statuses == ["delivered", "pending"] and len(channel.posted) == 1


def test_a_market_on_a_deleted_message_is_cancelled_before_settling(
    db: Database, db_path: Path, settings: Settings, world: World
) -> None:
    bot, cog, fake = _bot_on_fake_discord(db_path, settings, db)
    channel = fake.channel(QUIET)
    message = channel.message(CLAIM, make_user("poster"))
    pool_before = ledger.balance(db, ledger.pool(world.community_id))
    asyncio.run(cog.request_notes(make_interaction(make_user("reader")), message))  # type: ignore[arg-type]
    _offer(db, settings, message, "informer0")
    [informer] = [r[0] for r in db.execute("SELECT informer_id FROM offers")]
    assert ledger.balance(db, ledger.wallet(informer)) == 95  # minted 100, bid 5 in escrow
    db.execute("UPDATE markets SET closes_at = 0")

    async def settle() -> tuple[list[int], list[int]]:
        bot.closer.post_check = DiscordPostCheck(bot, asyncio.get_running_loop())
        return await bot.settle_and_deliver()

    async def discord_down(message_id: int) -> None:
        raise server_error(503)

    try:
        channel.fetch_message = discord_down  # type: ignore[method-assign]
        closed, _ = asyncio.run(settle())  # cannot tell: the market waits for the next pass
        assert closed == [] and db.execute("SELECT status FROM markets").fetchone()[0] == "open"
        del channel.fetch_message  # Discord answers again: the message is gone
        message.deleted = True
        closed, delivered = asyncio.run(settle())
    finally:
        bot.closer.shutdown()
    assert len(closed) == 1 and delivered == []
    market = next(db["markets"].rows)
    assert market["status"] == "settled" and "10008" in market["cancel_reason"]
    assert ledger.balance(db, ledger.wallet(informer)) == 100  # the bid came back
    assert ledger.balance(db, ledger.pool(world.community_id)) == pool_before  # and the budget
    assert db.execute("SELECT COUNT(*) FROM reveals").fetchone()[0] == 0
    assert channel.posted == [] and ledger.check(db).ok


def test_the_reveal_embed_escapes_markdown_and_spreads_sources_over_fields() -> None:
    from notebazaar.bot.discord.render import reveal_embed

    sources = tuple(f"https://example.org/{i}/" + "x" * 470 + f" source_{i}" for i in range(5))  # 5 x ~500
    item = outbox.PendingReveal(
        outbox_id=1,
        reveal_id=42,
        post_id=1,
        post_platform="discord",
        post_external_id="1:2",
        post_url=None,
        classification="misleading",
        text="See [the study](https://evil.example) **now** @everyone\n# not a heading",
        sources=sources,
        informer="discord:al_ice",
        price=3,
        attempts=0,
    )
    embed = reveal_embed(item)
    assert embed.description is not None
    assert "\\[the study](https://evil.example)" in embed.description  # shown as written, not a link
    assert "\\*\\*now\\*\\*" in embed.description and "\\# not a heading" in embed.description
    assert "@everyone" not in embed.description  # defused (a zero-width space after the @)
    source_fields = [f for f in embed.fields if f.name.startswith("Sources")]
    assert len(source_fields) >= 3 and all(len(f.value or "") <= 1024 for f in source_fields)
    shown = "\n".join(f.value or "" for f in source_fields)
    assert all(f"source\\_{i}" in shown for i in range(5))  # every source, none cut off
    assert len(embed) <= 6000 and len(embed.fields) <= 25
    assert embed.footer.text is not None and embed.footer.text.startswith("note #42 ·")
    assert {f.name: f.value for f in embed.fields}["Informer"] == "discord:al\\_ice"
