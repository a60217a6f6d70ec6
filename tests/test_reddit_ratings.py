"""Rating notes on Reddit, end to end through praw against the loopback Reddit: a reply with a
keyword to the bot's note comment, or a private message naming the note; one acknowledgement each,
across restarts; refusals answered and changing nothing; the comment edited when readers hide the
note."""

from __future__ import annotations

from typing import Any

import pytest
from sqlite_utils import Database

from notebazaar.bot.reddit.ratings import parse_level
from notebazaar.pipeline import community, moderation, statuses
from notebazaar.pipeline.config import Settings
from tests.test_core_helpers import snapshot as _snapshot
from tests.test_reddit_e2e import (  # noqa: F401  (fixtures)
    NOTE_BODY,
    RATELIMIT,
    FakeReddit,
    fake,
    make_bot,
    reddit_settings,
)


def _a_delivered_note(state: FakeReddit, url: str, db: Database, settings: Settings) -> tuple[Any, str, int]:
    informer = community.account_for_identity(db, "reddit", "alice", "Alice")
    community.mint(db, informer, 100, key="test:alice")
    bot = make_bot(url, db, settings)
    bot.tick()
    state.submission("abc", "Vaccine study", "A new study shows 30% of people are harmed by it.")
    bot.tick()
    state.message("m1", "Alice", f"note {url}/r/factcheck/comments/abc/x/", NOTE_BODY)
    bot.tick()
    db.execute("UPDATE markets SET closes_at = 0")
    report = bot.tick()
    assert report.delivered == 1, report
    comment, reveal_id = db.execute("SELECT external_id, reveal_id FROM outbox").fetchone()
    return bot, comment, int(reveal_id)


def snapshot(db: Database, table: str) -> list[tuple[object, ...]]:
    return _snapshot(db)[table]


@pytest.fixture
def note(
    fake: tuple[FakeReddit, str],  # noqa: F811
    db: Database,
    world: Any,
    reddit_settings: Settings,  # noqa: F811
) -> tuple[FakeReddit, str, Any, str, int]:
    """The loopback Reddit, its url, a bot, and the comment (fullname) of a note it delivered."""
    state, url = fake
    bot, comment, reveal_id = _a_delivered_note(state, url, db, reddit_settings)
    return state, url, bot, comment, reveal_id


def test_parse_level() -> None:
    assert parse_level("Helpful, thanks!") == "helpful"
    assert parse_level("  not helpful: wrong source") == "not_helpful"
    assert parse_level("!rate somewhat helpful") == "somewhat_helpful"
    assert parse_level("Somewhat-helpful") == "somewhat_helpful"
    assert parse_level("I do not find this helpful") is None
    assert parse_level("helpfulness is subjective") is None


def test_reply_keyword_rates_once_and_acknowledges_once(
    note: tuple[FakeReddit, str, Any, str, int],
    db: Database,
    reddit_settings: Settings,  # noqa: F811
) -> None:
    state, url, bot, comment, reveal_id = note
    reply = state.comment_reply("r1", "Bob", comment, "Not helpful: the source is about something else.")
    chat = state.comment_reply("r2", "Carol", comment, "Where did you find this?")
    bot.tick()
    rows = db.execute(
        "SELECT a.handle, g.level, g.surface FROM ratings g JOIN accounts a ON a.id = g.account_id"
    ).fetchall()
    assert [tuple(r) for r in rows] == [("reddit:Bob", "not_helpful", "reddit")]
    acks = [r for r in state.replies if r["thing_id"] == reply]
    assert len(acks) == 1 and f"rating of note {reveal_id} is recorded as **not helpful**" in acks[0]["text"]
    assert not [r for r in state.replies if r["thing_id"] == chat]  # a conversation, not a rating
    assert reply in state.read and chat in state.read

    # A restart with the reply unread again: no second rating, no second acknowledgement.
    next(m for m in state.inbox if m["name"] == reply)["new"] = True
    make_bot(url, db, reddit_settings).tick()
    assert db.execute("SELECT COUNT(*) FROM ratings").fetchone()[0] == 1
    assert len([r for r in state.replies if r["thing_id"] == reply]) == 1

    # Refusals are told why, once each, and change nothing: the informer's own note, the same
    # rating twice, a banned reader.
    own = state.comment_reply("r3", "Alice", comment, "helpful")
    twice = state.comment_reply("r4", "Bob", comment, "not helpful, as I said")
    moderator = community.create_account(db, "reddit-mod")
    community_id = int(db.execute("SELECT community_id FROM posts").fetchone()[0])
    community.grant(db, moderator, community_id, "moderator")
    eve = community.account_for_identity(db, "reddit", "eve", "Eve")
    moderation.ban(db, moderator, eve, community_id, "vote brigading")
    banned = state.comment_reply("r5", "Eve", comment, "helpful")
    before = snapshot(db, "ratings")
    bot.tick()
    for reply_id, reason in ((own, "cannot rate its own note"), (twice, "already rated"), (banned, "banned")):
        refusals = [r for r in state.replies if r["thing_id"] == reply_id]
        assert len(refusals) == 1 and reason in refusals[0]["text"], (reason, refusals)
    assert snapshot(db, "ratings") == before


def test_private_message_rates_a_note(
    note: tuple[FakeReddit, str, Any, str, int],
    db: Database,
    reddit_settings: Settings,  # noqa: F811
) -> None:
    state, _, bot, _, reveal_id = note
    ok = state.message("m2", "Dan", f"rate {reveal_id}", "somewhat helpful")
    unknown = state.message("m3", "Dan", "rate 9999", "helpful")
    no_level = state.message("m4", "Dan", f"rate {reveal_id}", "meh")
    bot.tick()
    assert db.execute("SELECT level, surface FROM ratings").fetchall() == [("somewhat_helpful", "reddit")]
    texts = {m: [r["text"] for r in state.replies if r["thing_id"] == m] for m in (ok, unknown, no_level)}
    assert len(texts[ok]) == 1 and "recorded as **somewhat helpful**" in texts[ok][0]
    assert "no published note 9999" in texts[unknown][0]
    assert "start the message with `helpful`" in texts[no_level][0]


def test_a_hidden_note_has_its_comment_edited(
    note: tuple[FakeReddit, str, Any, str, int],
    db: Database,
    reddit_settings: Settings,  # noqa: F811
) -> None:
    state, _, bot, comment, reveal_id = note
    community_id = int(db.execute("SELECT community_id FROM posts").fetchone()[0])
    statuses.hide(db, reveal_id, community_id, statuses.hide_reason(-0.5, 0.1, 8), now=1.0, detail={})
    report = bot.tick()
    assert report.hidden == 1, report
    assert len(state.edits) == 1 and state.edits[0]["thing_id"] == comment
    assert (
        "Community note hidden" in state.edits[0]["text"]
        and "readers rated it not helpful" in state.edits[0]["text"]
    )
    bot.tick()
    assert len(state.edits) == 1  # once


def test_a_rate_limited_acknowledgement_is_sent_later(
    note: tuple[FakeReddit, str, Any, str, int],
    db: Database,
) -> None:
    """The acknowledgement of a rating reply waits in the answers' queue when Reddit limits the bot,
    instead of being dropped."""
    state, _, bot, comment, _ = note
    reply = state.comment_reply("r1", "Bob", comment, "helpful")
    state.fail["/api/comment"] = [RATELIMIT]
    bot.tick()
    assert db.execute("SELECT COUNT(*) FROM ratings").fetchone()[0] == 1
    assert not [r for r in state.replies if r["thing_id"] == reply]
    due_now = "UPDATE bot_state SET value = json_set(value, '$.next_at', 0) WHERE key = ?"
    assert db.execute(due_now, [f"reddit:reply:{reply}"]).rowcount == 1  # the rate limit's wait is over
    assert bot.inbox.replies.hold_until > 0  # every answer waits for it, not only this one:
    posts_before = sum(1 for r in state.requests if r.endswith("/api/comment"))
    second = state.comment_reply("r2", "Carol", comment, "not helpful")
    bot.tick()
    assert db.execute("SELECT COUNT(*) FROM ratings").fetchone()[0] == 2  # rated, answer queued
    assert sum(1 for r in state.requests if r.endswith("/api/comment")) == posts_before
    bot.inbox.replies.hold_until = 0.0
    db.execute(due_now, [f"reddit:reply:{second}"])
    bot.tick()
    acks = [r for r in state.replies if r["thing_id"] == reply]
    assert len(acks) == 1 and "recorded as **helpful**" in acks[0]["text"]
    bot.tick()
    assert len([r for r in state.replies if r["thing_id"] == reply]) == 1


def test_a_comment_reddit_will_not_edit_does_not_hold_up_the_others(
    note: tuple[FakeReddit, str, Any, str, int],
    db: Database,
) -> None:
    state, _, bot, _, reveal_id = note
    community_id = int(db.execute("SELECT community_id FROM posts").fetchone()[0])
    statuses.hide(db, reveal_id, community_id, statuses.hide_reason(-0.5, 0.1, 8), now=1.0, detail={})
    too_old = (200, {"json": {"errors": [["TOO_OLD", "that's a piece of history now", "parent"]]}})
    state.fail["/api/editusertext"] = [too_old]
    bot.tick()
    assert db.execute("SELECT takedown FROM outbox").fetchone()[0] == "failed"
    bot.tick()
    assert state.edits == []  # given up, not retried every pass


def test_a_note_a_moderator_unpublished_is_taken_down_without_the_reason(
    note: tuple[FakeReddit, str, Any, str, int],
    db: Database,
) -> None:
    state, _, bot, comment, reveal_id = note
    community_id = int(db.execute("SELECT community_id FROM posts").fetchone()[0])
    moderator = community.create_account(db, "reddit-mod")
    community.grant(db, moderator, community_id, "moderator")
    moderation.unpublish(db, moderator, reveal_id, "private: see ticket 77")
    bot.tick()
    assert len(state.edits) == 1 and state.edits[0]["thing_id"] == comment
    assert "a moderator unpublished it" in state.edits[0]["text"]
    assert "ticket 77" not in state.edits[0]["text"]
