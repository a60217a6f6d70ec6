"""Unit tests for the Reddit adapter's pieces: the PM format, Markdown escaping, the wiki page
format, and praw objects built from JSON with a Reddit instance that never connects."""

from __future__ import annotations

from typing import Any

import praw
import pytest
from sqlite_utils import Database

from notebazaar.bot.reddit import messages
from notebazaar.bot.reddit.markdown import escape_markdown, note_comment
from notebazaar.bot.reddit.state import get_state, set_state
from notebazaar.bot.reddit.watcher import Position, post_text
from notebazaar.bot.reddit.wiki import WikiConfigError, apply_wiki_config, parse_wiki_config
from notebazaar.pipeline import community


@pytest.fixture
def reddit() -> praw.Reddit:
    # Never used for a request: objects are parsed from JSON only.
    return praw.Reddit(client_id="x", client_secret="y", user_agent="test", check_for_updates=False)


def objectify(reddit: praw.Reddit, kind: str, data: dict[str, Any]) -> Any:
    return reddit._objector.objectify(data={"kind": kind, "data": data})


def test_praw_objects_from_json(reddit: praw.Reddit) -> None:
    sub = objectify(
        reddit,
        "t3",
        {
            "id": "abc",
            "name": "t3_abc",
            "title": "Title",
            "selftext": "Body\x07 text",
            "is_self": True,
            "url": "u",
            "subreddit": "FactCheck",
            "author": "poster",
            "created_utc": 1.0,
            "permalink": "/r/x",
        },
    )
    assert isinstance(sub, praw.models.Submission) and sub.fullname == "t3_abc"
    assert post_text(sub) == "Title\n\nBody text"  # control characters dropped
    link = objectify(
        reddit,
        "t3",
        {
            "id": "l",
            "title": "Look",
            "selftext": "",
            "is_self": False,
            "url": "https://example.org/a",
            "subreddit": "x",
        },
    )
    assert post_text(link) == "Look\n\nhttps://example.org/a"
    gone = objectify(reddit, "t1", {"id": "c1", "name": "t1_c1", "body": "[deleted]", "subreddit": "x"})
    assert isinstance(gone, praw.models.Comment) and post_text(gone) == ""
    msg = objectify(
        reddit,
        "t4",
        {
            "id": "m",
            "name": "t4_m",
            "author": "Alice",
            "dest": "bot",
            "subject": "note t3_abc",
            "body": "b",
            "replies": "",
            "subreddit": None,
            "new": True,
        },
    )
    assert isinstance(msg, praw.models.Message) and str(msg.author) == "Alice"


@pytest.mark.parametrize(
    ("value", "fullname"),
    [
        ("t3_AbC12", "t3_abc12"),
        ("t1_xyz", "t1_xyz"),
        ("https://www.reddit.com/r/factcheck/comments/abc12/some_title/", "t3_abc12"),
        ("https://old.reddit.com/r/factcheck/comments/abc12/some_title/def34/?context=3", "t1_def34"),
        ("<https://redd.it/abc12>", "t3_abc12"),
    ],
)
def test_parse_target(value: str, fullname: str) -> None:
    assert messages.parse_target(value) == fullname


def test_parse_note_message() -> None:
    body = (
        "\nClassification: Not misleading\nbid = 4\nprice: 10\n"
        "sources: https://a.org, Smith 2020\n\nLine 1\n\nLine 2\n"
    )
    command = messages.parse_command("note t3_abc", body)
    assert isinstance(command, messages.NoteCommand)
    assert (command.classification, command.bid, command.price) == ("not_misleading", 4, 10)
    assert command.sources == ("https://a.org", "Smith 2020")
    assert command.text == "Line 1\n\nLine 2"
    assert "Line 1" not in repr(command)
    assert messages.parse_command("re: withdraw #12", "") == messages.WithdrawCommand(12)
    assert messages.parse_command("Balance", "") == messages.BalanceCommand()


@pytest.mark.parametrize(
    ("subject", "body", "problem"),
    [
        ("hello", "", "must start with `note`"),
        ("note", "", "must name the post"),
        ("note t3_a", "bid: 1\nprice: 1\n\ntext", "missing field(s): classification"),
        ("note t3_a", "classification: true\nbid: 1\nprice: 1\n\ntext", "`classification` must be"),
        ("note t3_a", "classification: misleading\nbid: -1\nprice: 1\n\ntext", "`bid` must be a whole"),
        ("note t3_a", "classification: misleading\nbid: 1\nprice: 1", "note text is missing"),
        ("note t3_a", "classification: misleading\nbid: 1\nbid: 2\nprice: 1\n\nx", "`bid` is given twice"),
        ("note t3_a", "classification: misleading\nSecret claim here\nprice: 1\n\nx", "line 2 should be"),
        ("withdraw abc", "", "write the offer id"),
    ],
)
def test_parse_errors_name_the_problem(subject: str, body: str, problem: str) -> None:
    with pytest.raises(messages.MessageFormatError) as info:
        messages.parse_command(subject, body)
    assert problem in str(info.value)
    assert "Secret claim" not in str(info.value)  # a misplaced note line is never echoed


def test_escape_markdown_and_comment() -> None:
    assert escape_markdown("*a* [b](c) u/x ^y ~~z~~ > q") == r"\*a\* \[b\]\(c\) u\/x \^y \~\~z\~\~ \> q"
    assert escape_markdown("    code\n1. list") == "code\n1\\. list"
    body = note_comment(
        reveal_id=3,
        classification="misleading",
        text="Line one\n\n# two",
        sources=("https://x.org/a b", "http://ok.org/(1)"),
        informer="reddit:al_ice",
        price=9,
    )
    assert "> Line one\n>\n> \\# two" in body
    assert "* https\\:\\/\\/x\\.org\\/a b" in body  # a URL with a space is not a link
    assert "[http\\:\\/\\/ok\\.org\\/\\(1\\)](http://ok.org/%281%29)" in body
    assert "u\\/al\\_ice" in body and "reddit" not in body.split("^(")[1] and "9 credits" in body


def test_wiki_config_parsing() -> None:
    fenced = 'Settings for the bot:\n\n```toml\nreserve = 3\nauction = "gsp"\n```\n'
    assert parse_wiki_config(fenced).settings == {"reserve": 3, "auction": "gsp"}
    assert parse_wiki_config("prompt_version = 2").prompt_version == 2
    for bad, problem in [
        ("reserve = ", "not valid TOML"),
        ("colour = 1", "unknown key(s) colour"),
        ("reserve = true", "reserve must be a whole number"),
        ("prompt_version = 0", "prompt_version must be"),
    ]:
        with pytest.raises(WikiConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
            parse_wiki_config(bad)


def test_wiki_config_is_all_or_nothing(db: Database, world: Any) -> None:
    before = community.get_community(db, world.community_id)
    with pytest.raises(WikiConfigError, match="prompt_version 9 does not exist"):
        apply_wiki_config(
            db,
            world.community_id,
            parse_wiki_config("reserve = 9\nprompt_version = 9"),
            actor_id=world.moderator,
        )
    with pytest.raises(WikiConfigError, match="invalid community settings"):
        apply_wiki_config(
            db,
            world.community_id,
            parse_wiki_config('reserve = 9\nauction = "dutch"'),
            actor_id=world.moderator,
        )
    assert community.get_community(db, world.community_id) == before
    changed = apply_wiki_config(
        db, world.community_id, parse_wiki_config("reserve = 9"), actor_id=world.moderator
    )
    assert changed == ["reserve = 9"]
    assert (
        apply_wiki_config(db, world.community_id, parse_wiki_config("reserve = 9"), actor_id=world.moderator)
        == []
    )


def test_position_and_state(db: Database) -> None:
    position = Position(10.0, ["t3_a"])
    assert not position.is_new(9.0, "t3_z") and not position.is_new(10.0, "t3_a")
    assert position.is_new(10.0, "t3_b") and position.is_new(11.0, "t3_c")
    position.advance(10.0, "t3_b")
    position.advance(11.0, "t3_c")
    assert position == Position(11.0, ["t3_c"])
    set_state(db, "position:test", position.__dict__)
    set_state(db, "position:test", {"created_utc": 12.0, "fullnames": []})
    assert get_state(db, "position:test") == {"created_utc": 12.0, "fullnames": []}
    assert get_state(db, "missing") is None
