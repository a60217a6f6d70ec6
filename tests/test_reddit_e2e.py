"""End to end: the bot, through real praw/prawcore, against a loopback server that plays Reddit.

The server answers only the endpoints the bot uses and records every write, so the tests check
what the bot actually sends: the note comment (escaped Markdown, posted once even across a
restart), the distinguish/sticky call, the PM receipt, the modmail about a bad wiki page.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlite_utils import Database

from notebazaar.bot.reddit.client import RedditSetupError, connect
from notebazaar.bot.reddit.runner import RedditBot, run_reddit
from notebazaar.pipeline import community, ledger, prompts
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.judge import Context, NoteView, PostView, Verdict
from notebazaar.pipeline.settlement import close_due

BOT = "nb_bot"
SUB = "factcheck"


@dataclass
class FakeReddit:
    """Reddit's state as the loopback server sees it, and a log of what the bot wrote."""

    submissions: list[dict[str, Any]] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)
    inbox: list[dict[str, Any]] = field(default_factory=list)
    wiki: dict[str, dict[str, Any]] = field(default_factory=dict)
    moderators: dict[str, list[str]] = field(default_factory=dict)
    replies: list[dict[str, str]] = field(default_factory=list)
    distinguished: list[dict[str, str]] = field(default_factory=list)
    composed: list[dict[str, str]] = field(default_factory=list)
    read: list[str] = field(default_factory=list)
    fail: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    # Answers given after the request was carried out (Reddit saved the comment, then a 502).
    fail_after: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    edits: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_id: int = 1000
    bot_comments: list[dict[str, Any]] = field(default_factory=list)  # newest first, as Reddit lists them
    banned_from: set[str] = field(default_factory=set)
    # Hold the answer to POST /api/comment (after the comment exists) until `release` is set.
    hold_comments: bool = False
    comment_posted: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def submission(self, sid: str, title: str, body: str, *, sub: str = SUB, age: float = 0.0) -> str:
        self.submissions.insert(
            0,
            {
                "id": sid,
                "name": f"t3_{sid}",
                "title": title,
                "selftext": body,
                "is_self": True,
                "url": f"https://www.reddit.com/r/{sub}/comments/{sid}/x/",
                "permalink": f"/r/{sub}/comments/{sid}/x/",
                "subreddit": sub,
                "author": "poster",
                "created_utc": time.time() - age,
            },
        )
        return f"t3_{sid}"

    def message(self, mid: str, author: str, subject: str, body: str, *, age: float = 0.0) -> str:
        self.inbox.append(
            {
                "id": mid,
                "name": f"t4_{mid}",
                "author": author,
                "dest": BOT,
                "subject": subject,
                "body": body,
                "new": True,
                "was_comment": False,
                "replies": "",
                "subreddit": None,
                "parent_id": None,
                "first_message_name": None,
                "created_utc": time.time() - age,
            }
        )
        return f"t4_{mid}"

    def comment_reply(self, cid: str, author: str, parent: str, body: str) -> str:
        """A reply to one of the bot's comments, as it arrives in the bot's inbox."""
        self.inbox.append(
            {
                "id": cid,
                "name": f"t1_{cid}",
                "author": author,
                "body": body,
                "parent_id": parent,
                "link_id": "t3_x",
                "subreddit": SUB,
                "context": f"/r/{SUB}/comments/x/x/{cid}/?context=3",
                "new": True,
                "was_comment": True,
                "created_utc": time.time(),
            }
        )
        return f"t1_{cid}"

    # --- HTTP ------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], form: dict[str, str]) -> tuple[int, Any]:
        path = path.rstrip("/")
        with self.lock:
            self.requests.append(f"{method} {path}")
            planned = self.fail.get(path)
            if planned:
                return planned.pop(0)
            answer = self._route(method, path, query, form)
            after = self.fail_after.get(path)
            return after.pop(0) if after else answer

    def _route(self, method: str, path: str, query: dict[str, str], form: dict[str, str]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if path == "/api/v1/access_token":
            return 200, {"access_token": "token", "token_type": "bearer", "expires_in": 3600, "scope": "*"}
        if path == "/api/v1/me":
            return 200, {"name": BOT, "id": "bot1"}
        if parts[0] == "r" and len(parts) == 3 and parts[2] in ("new", "comments"):
            subs = {s.lower() for s in parts[1].split("+")}
            items = self.submissions if parts[2] == "new" else self.comments
            kind = "t3" if parts[2] == "new" else "t1"
            chosen = [i for i in items if i["subreddit"].lower() in subs]
            before = query.get("before")
            if before:
                names = [i["name"] for i in chosen]
                chosen = chosen[: names.index(before)] if before in names else []
            return 200, _listing(kind, chosen[: int(query.get("limit", 100))])
        if path == "/message/unread":  # newest first, as Reddit lists it
            unread = sorted((m for m in self.inbox if m["new"]), key=lambda m: -m["created_utc"])
            return 200, _listing("t4", unread)
        if path == "/api/editusertext":  # Reddit answers with the edited comment
            self.edits.append(form)
            cid = form["thing_id"][3:]
            data = {
                "id": cid,
                "name": form["thing_id"],
                "body": form["text"],
                "author": BOT,
                "subreddit": SUB,
            }
            return 200, {"json": {"errors": [], "data": {"things": [{"kind": "t1", "data": data}]}}}
        if path == "/api/read_message":
            for name in form["id"].split(","):
                self.read.append(name)
                for m in self.inbox:
                    if m["name"] == name:
                        m["new"] = False
            return 200, {}
        if path == "/api/comment":
            return self._comment(form)
        if path == "/api/del":
            self.deleted.append(form["id"])
            self.bot_comments = [c for c in self.bot_comments if c["name"] != form["id"]]
            self.replies = [r for r in self.replies if r.get("name") != form["id"]]
            return 200, {}
        if path == "/api/distinguish":
            self.distinguished.append(form)
            return 200, {"json": {"errors": [], "data": {"things": []}}}
        if path == "/api/compose":
            self.composed.append(form)
            return 200, {"json": {"errors": []}}
        if parts[0] == "r" and parts[2:] == ["about"]:
            banned = parts[1].lower() in self.banned_from
            return 200, {
                "kind": "t5",
                "data": {"display_name": parts[1], "name": "t5_sub", "id": "sub", "user_is_banned": banned},
            }
        if parts[:1] == ["user"] and parts[2:] == ["comments"]:
            mine = [c for c in self.bot_comments if c["author"].lower() == parts[1].lower()]
            return 200, _listing("t1", mine[: int(query.get("limit", 25))])
        if path == "/api/info":
            wanted = set(query["id"].split(","))
            found = [i for i in self.submissions + self.comments if i["name"] in wanted]
            return 200, _listing("t3", found)
        if parts[0] == "r" and parts[2:4] == ["about", "moderators"]:
            user = query.get("user", "")
            names = [n for n in self.moderators.get(parts[1].lower(), []) if n.lower() == user.lower()]
            children = [{"name": n, "id": f"t2_{n}", "mod_permissions": ["all"], "date": 0} for n in names]
            return 200, {"kind": "UserList", "data": {"children": children}}
        if parts[0] == "r" and len(parts) == 4 and parts[2] == "wiki":
            page = self.wiki.get(f"{parts[1].lower()}/{parts[3]}")
            if page is None:
                return 404, {"reason": "PAGE_NOT_CREATED", "message": "Not Found", "error": 404}
            editor = {"kind": "t2", "data": {"name": page["editor"], "id": "ed"}}
            return 200, {
                "kind": "wikipage",
                "data": {
                    "content_md": page["content"],
                    "revision_id": page["revision"],
                    "revision_by": editor,
                    "revision_date": time.time(),
                    "may_revise": True,
                },
            }
        return 404, {"message": "Not Found", "error": 404}

    def _comment(self, form: dict[str, str]) -> tuple[int, Any]:
        thing = form["thing_id"]
        if thing.startswith("t4_"):
            self.replies.append({"thing_id": thing, "text": form["text"]})
            return 200, {"json": {"errors": [], "data": {"things": []}}}
        self.next_id += 1
        cid = f"c{self.next_id}"
        self.replies.append({"thing_id": thing, "text": form["text"], "name": f"t1_{cid}"})
        data = {
            "id": cid,
            "name": f"t1_{cid}",
            "body": form["text"],
            "author": BOT,
            "parent_id": thing,
            "link_id": thing if thing.startswith("t3_") else "t3_x",
            "subreddit": SUB,
            "permalink": f"/r/{SUB}/comments/x/x/{cid}/",
            "created_utc": time.time(),
        }
        self.bot_comments.insert(0, data)
        return 200, {"json": {"errors": [], "data": {"things": [{"kind": "t1", "data": data}]}}}


def _listing(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    children = [
        {"kind": kind if kind != "t3" or i["name"].startswith("t3_") else "t1", "data": i} for i in items
    ]
    if kind == "t4":  # the inbox holds comment replies (t1) beside messages
        children = [{"kind": i["name"][:2], "data": i} for i in items]
    return {"kind": "Listing", "data": {"children": children, "after": None, "before": None}}


@pytest.fixture
def fake() -> Iterator[tuple[FakeReddit, str]]:
    state = FakeReddit()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            form = {k: v[-1] for k, v in parse_qs(raw).items()}
            status, body = state.handle(method, url.path, query, form)
            if state.hold_comments and url.path.rstrip("/") == "/api/comment" and status == 200:
                state.comment_posted.set()  # Reddit has the comment; the bot has not heard back yet
                state.release.wait(30)
            payload = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the bot was killed while waiting for this answer
                pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class BuyingJudge:
    """Believes every note completely: p moves to 0.95 (misleading) or 0.05. Enough to buy."""

    name = "test-buyer"

    def prior(self, post: PostView, context: Context) -> float:
        return 0.5

    def inspect(self, post: PostView, context: Context, note: NoteView, p_before: float) -> Verdict:
        return Verdict(p_before, 0.95 if note.classification == "misleading" else 0.05)


def praw_kwargs(url: str) -> dict[str, Any]:
    return {
        "client_id": "id",
        "client_secret": "secret",
        "username": BOT,
        "password": "pw",
        "oauth_url": url,
        "reddit_url": url,
    }


@pytest.fixture
def reddit_settings() -> Settings:
    return Settings(reddit={"subreddits": {SUB: "testers"}, "check_worthiness": "keywords", "min_chars": 20})


class Clock:
    """The bot's clock, moved by the test: backoff waits pass without waiting."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_bot(url: str, db: Database, settings: Settings, clock: Callable[[], float] = time.time) -> RedditBot:
    return RedditBot(
        connect(settings, **praw_kwargs(url)),
        db,
        settings,
        BuyingJudge(),
        wiki_interval_seconds=0,
        clock=clock,
    )


NOTE_BODY = (
    "classification: misleading\n"
    "bid: 5\n"
    "price: 20\n"
    "sources: https://example.org/study_(2020), not a link\n"
    "\n"
    "The study says *3%*, not 30%. See [this](http://evil.example) u/someone\n"
    "# not a heading"
)


def test_market_note_receipt_reveal_once(
    fake: tuple[FakeReddit, str],
    db: Database,
    world: Any,
    reddit_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    state, url = fake
    caplog.set_level(logging.DEBUG)
    informer = community.account_for_identity(db, "reddit", "alice", "Alice")
    community.mint(db, informer, 100, key="test:alice")
    state.moderators[SUB] = [BOT]
    bot = make_bot(url, db, reddit_settings)
    bot.tick()  # first run: the position starts now; nothing old is judged

    post = state.submission("abc", "Vaccine study", "A new study shows 30% of people are harmed by it.")
    state.submission("def", "cat", "my cat is cute")  # not check-worthy
    report = bot.tick()
    assert report.new_items == 2, report
    posts = list(db["posts"].rows_where("platform = 'reddit'"))
    assert [p["external_id"] for p in posts] == [post]
    assert posts[0]["url"].endswith("/r/factcheck/comments/abc/x/")
    market_id = db.execute("SELECT id FROM markets WHERE post_id = ?", [posts[0]["id"]]).fetchone()[0]

    msg = state.message("m1", "Alice", f"note {url}/r/factcheck/comments/abc/x/", NOTE_BODY)
    report = bot.tick()
    assert report.messages == 1 and not report.errors, report
    offer = db.execute(
        "SELECT id, bid, price, commitment FROM offers WHERE market_id = ?", [market_id]
    ).fetchall()
    assert len(offer) == 1 and offer[0][1:3] == (5, 20)
    receipt = [r for r in state.replies if r["thing_id"] == msg]
    assert len(receipt) == 1
    assert f"offer **{offer[0][0]}**" in receipt[0]["text"] and offer[0][3] in receipt[0]["text"]
    assert "salt:" in receipt[0]["text"]
    assert msg in state.read
    assert ledger.balance(db, ledger.wallet(informer)) == 95

    # A restart: the message is unread again (say mark-read was lost); it must not be submitted twice.
    next(m for m in state.inbox if m["name"] == msg)["new"] = True
    bot = make_bot(url, db, reddit_settings)
    bot.tick()
    assert db.execute("SELECT COUNT(*) FROM offers").fetchone()[0] == 1
    assert len([r for r in state.replies if r["thing_id"] == msg]) == 1
    assert "The study says" not in caplog.text  # the sealed note is never logged

    db.execute("UPDATE markets SET closes_at = 0 WHERE id = ?", [market_id])
    report = bot.tick()
    assert report.closed == [market_id] and report.delivered == 1, report
    notes = [r for r in state.replies if r["thing_id"] == post]
    assert len(notes) == 1
    text = notes[0]["text"]
    assert r"\*3%\*" in text and r"\[this\]\(http\:\/\/evil\.example\)" in text
    assert r"u\/someone" in text and "> \\# not a heading" in text
    assert "u\\/someone\n>\n> \\# not a heading" in text  # two lines stay two paragraphs
    assert "^(Note 1 by u\\/Alice," in text  # the informer as u/Alice, without linking or pinging
    assert text.endswith("[](#notebazaar-note-1)")  # the hidden marker a restarted bot looks for
    assert "[https\\:\\/\\/example\\.org\\/study\\_\\(2020\\)](https://example.org/study_%282020%29)" in text
    assert "* not a link" in text
    assert state.distinguished and state.distinguished[0]["sticky"] == "True"
    comment_fullname = db.execute("SELECT external_id FROM outbox").fetchone()[0]
    assert state.distinguished[0]["id"] == comment_fullname

    # Restarted again: the note is not posted twice, and the old posts do not open new markets.
    bot = make_bot(url, db, reddit_settings)
    for _ in range(2):
        bot.tick()
    assert len([r for r in state.replies if r["thing_id"] == post]) == 1
    assert db.execute("SELECT COUNT(*) FROM markets").fetchone()[0] == 1


def test_restart_catches_up_on_items_posted_while_down(
    fake: tuple[FakeReddit, str], db: Database, world: Any, reddit_settings: Settings
) -> None:
    state, url = fake
    bot = make_bot(url, db, reddit_settings)
    state.submission("old", "Old claim", "Scientists say 99% agree on this data.", age=3600)
    bot.tick()  # first run: "old" predates the bot and is skipped
    assert db.execute("SELECT COUNT(*) FROM posts").fetchone()[0] == 0
    del bot
    for i in range(3):  # posted while the bot is down
        state.submission(f"new{i}", f"Claim {i}", f"Research shows {i + 10} percent of cases rose.")
    bot = make_bot(url, db, reddit_settings)
    bot.tick()
    ids = [r[0] for r in db.execute("SELECT external_id FROM posts ORDER BY id")]
    assert ids == ["t3_new0", "t3_new1", "t3_new2"]


def test_bad_message_gets_a_clear_error(
    fake: tuple[FakeReddit, str], db: Database, world: Any, reddit_settings: Settings
) -> None:
    state, url = fake
    bot = make_bot(url, db, reddit_settings)
    state.submission("abc", "Claim", "Research shows 40% fewer cases after the data came out.")
    bot.tick()
    msg = state.message(
        "m2", "Bob", "note t3_abc", "classification: misleading\nbid: five\nprice: 1\n\nA note"
    )
    bot.tick()
    reply = next(r for r in state.replies if r["thing_id"] == msg)
    assert "`bid` must be a whole number" in reply["text"] and "nothing was changed" in reply["text"]
    assert db.execute("SELECT COUNT(*) FROM offers").fetchone()[0] == 0
    assert msg in state.read


def test_wiki_config_applied_and_bad_page_reported(
    fake: tuple[FakeReddit, str], db: Database, world: Any, reddit_settings: Settings
) -> None:
    state, url = fake
    state.moderators[SUB] = [BOT, "modjane"]
    v2 = prompts.create_version(db, "A stricter judge prompt. Data: $token, $mark.")
    assert prompts.get_version(db, v2, community_id=None)["version"] == 2
    state.wiki[f"{SUB}/notebazaar"] = {
        "content": '    reserve = 7\n    auction = "first_price"\n    prompt_version = 2\n',
        "revision": "rev1",
        "editor": "modjane",
    }
    bot = make_bot(url, db, reddit_settings)
    report = bot.tick()
    assert report.wiki_applied == [SUB], report
    com = community.get_community(db, world.community_id)
    assert (com.reserve, com.auction, com.active_prompt_id) == (7, "first_price", v2)
    actors = {
        r[0]
        for r in db.execute(
            "SELECT a.handle FROM audit_log l JOIN accounts a ON a.id = l.actor_id"
            " WHERE l.action IN ('community.settings', 'prompt.activate')"
        )
    }
    assert actors == {f"reddit:{BOT}"}

    state.wiki[f"{SUB}/notebazaar"] = {
        "content": "reserve = -1\nslots = 2",
        "revision": "rev2",
        "editor": "modjane",
    }
    for _ in range(2):
        bot.tick()
    assert community.get_community(db, world.community_id).reserve == 7  # last good config stays
    assert len(state.composed) == 1  # reported once, not on every tick
    assert state.composed[0]["to"] == f"#{SUB}" and "slots" in state.composed[0]["text"]
    report = state.composed[0]["text"]
    lines = [line for line in report.splitlines() if line.startswith("* ")]
    assert lines == [  # every problem, one line each, in words a moderator can act on
        "* unknown key(s) slots; the keys are attention_slots, reserve, window_seconds,"
        " price_of_information, budget_per_market, auction, writer_offers_per_day,"
        " writer_offers_per_right_note, payment_hold_hours, prompt_version",
        "* `reserve = -1`: input should be greater than or equal to 0",
    ]
    assert "pydantic" not in report and "docs/reddit.md" not in report and "http" not in report

    state.wiki[f"{SUB}/notebazaar"] = {"content": "reserve = 1", "revision": "rev3", "editor": "stranger"}
    bot.tick()
    assert community.get_community(db, world.community_id).reserve == 7
    assert "not by a moderator" in state.composed[-1]["text"]

    documented = Settings(
        reddit=reddit_settings.reddit.model_dump() | {"docs_url": "https://notes.example.org/wiki-format"}
    )
    bot = make_bot(url, db, documented)
    state.wiki[f"{SUB}/notebazaar"] = {
        "content": 'auction = "dutch"',
        "revision": "rev4",
        "editor": "modjane",
    }
    bot.tick()
    assert "* `auction = 'dutch'`: input should be 'gsp' or 'first_price'" in state.composed[-1]["text"]
    assert state.composed[-1]["text"].endswith("The format: https://notes.example.org/wiki-format")


def test_deleted_post_and_rate_limit_do_not_lose_state(
    fake: tuple[FakeReddit, str],
    db: Database,
    world: Any,
    reddit_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state, url = fake
    monkeypatch.setattr("praw.models.util.time.sleep", lambda s: None)
    informer = community.account_for_identity(db, "reddit", "alice", "Alice")
    community.mint(db, informer, 100, key="test:alice")
    clock = Clock()
    bot = make_bot(url, db, reddit_settings, clock)
    bot.tick()
    state.submission("abc", "Claim", "Research shows 40% fewer cases after the data came out.")
    state.submission("ghi", "Claim 2", "A report says 12 million people moved last year.")
    state.fail["/r/factcheck/new"] = [(429, {"message": "Too Many Requests", "error": 429})]
    report = bot.tick()  # the stream rides out one 429 (exception_handler) and goes on
    assert report.new_items == 2 and not report.errors, report
    for sid in ("abc", "ghi"):
        state.message(
            f"m{sid}",
            "Alice",
            f"note t3_{sid}",
            "classification: misleading\nbid: 3\nprice: 5\n\nIt is wrong.",
        )
    bot.tick()
    db.execute("UPDATE markets SET closes_at = 0")
    state.fail["/api/comment"] = [
        (200, {"json": {"errors": [["DELETED_COMMENT", "that comment has been deleted", "parent"]]}}),
        (429, {"message": "Too Many Requests", "error": 429}),
    ]
    report = bot.tick()
    rows = db.execute("SELECT status, last_error FROM outbox ORDER BY id").fetchall()
    assert rows[0][0] == "failed" and "DELETED_COMMENT" in rows[0][1]
    assert rows[1][0] == "pending"  # rate limited: waits for its next attempt
    assert bot.tick().delivered == 0  # not due yet: Reddit asked for a pause
    clock.advance(61)
    report = bot.tick()
    assert report.delivered == 1
    assert db.execute("SELECT status FROM outbox ORDER BY id").fetchall()[1][0] == "delivered"


def test_setup_errors_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("praw_client_id", "praw_client_secret", "praw_username", "praw_password", "praw_site"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no praw.ini here
    db_path = tmp_path / "nb.db"
    with pytest.raises(RedditSetupError, match="no subreddits configured"):
        run_reddit(db_path, Settings())
    with pytest.raises(RedditSetupError, match="does not exist"):
        run_reddit(db_path, Settings(reddit={"subreddits": {SUB: "nope"}}))
    with pytest.raises(RedditSetupError, match="credentials"):
        connect(Settings())
    with pytest.raises(RedditSetupError, match="needs a Reddit account"):
        connect(Settings(), client_id="id", client_secret="secret")
    db = open_db(db_path)
    db.close()


# --- delivery whatever Reddit does ---------------------------------------------------------------

SERVER_ERROR = (500, {"message": "Internal Server Error", "error": 500})
RATELIMIT = (
    200,
    {
        "json": {
            "errors": [
                [
                    "RATELIMIT",
                    "Looks like you've been doing that a lot."
                    " Take a break for 9 minutes before trying again.",
                    "ratelimit",
                ]
            ]
        }
    },
)


def _open_post_with_offer(state: FakeReddit, bot: RedditBot, db: Database, sid: str, author: str) -> str:
    """A check-worthy submission with a market and one sealed offer from ``author``."""
    informer = community.account_for_identity(db, "reddit", author.lower(), author)
    community.mint(db, informer, 100, key=f"test:{author}:{sid}")
    post = state.submission(sid, f"Claim {sid}", f"Research shows {len(sid) + 30}% more cases this year.")
    bot.tick()
    state.message(f"m{sid}", author, f"note {post}", "classification: misleading\nbid: 3\nprice: 5\n\nWrong.")
    bot.tick()
    assert (
        db.execute(
            "SELECT COUNT(*) FROM offers o JOIN markets m ON m.id = o.market_id JOIN posts p"
            " ON p.id = m.post_id WHERE p.external_id = ?",
            [post],
        ).fetchone()[0]
        == 1
    )
    return post


def _a_note_due(
    state: FakeReddit, url: str, db: Database, settings: Settings, clock: Callable[[], float] = time.time
) -> tuple[RedditBot, str]:
    """A bot, and a post whose market (one sealed offer from Alice) is due to close on the next tick."""
    bot = make_bot(url, db, settings, clock)
    bot.tick()
    post = _open_post_with_offer(state, bot, db, "abc", "Alice")
    db.execute("UPDATE markets SET closes_at = 0")
    return bot, post


def _notes_on(state: FakeReddit, post: str) -> list[dict[str, str]]:
    return [r for r in state.replies if r["thing_id"] == post]


def _outbox(db: Database) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM outbox ORDER BY id"))


@pytest.fixture
def no_prawcore_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """prawcore retries a 5xx twice, sleeping up to 4 s; the test's clock is the bot's, not the wall's."""
    monkeypatch.setattr("prawcore.sessions.time.sleep", lambda s: None)


def test_server_error_bursts_are_ridden_out_with_growing_waits(
    fake: tuple[FakeReddit, str], db: Database, world: Any, reddit_settings: Settings, no_prawcore_sleep: None
) -> None:
    state, url = fake
    clock = Clock()
    bot, post = _a_note_due(state, url, db, reddit_settings, clock)
    # Four of the bot's attempts fail (prawcore tries each one three times); the old bot gave up
    # after five attempts ten seconds apart, so a minute of 500s lost the note for good.
    state.fail["/api/comment"] = [SERVER_ERROR] * 12
    state.fail["/message/unread"] = [SERVER_ERROR] * 3  # the rest of the bot rides it out too
    waits = []
    for _ in range(4):
        started = clock()
        report = bot.tick()
        [row] = _outbox(db)
        assert row["status"] == "pending" and "HTTP 500" in row["last_error"], row
        waits.append(row["next_attempt_at"] - started)
        posts_before = len(state.requests)
        assert bot.tick().delivered == 0  # not due yet: nothing is sent to Reddit's comment endpoint
        assert "POST /api/comment" not in state.requests[posts_before:]
        clock.advance(waits[-1] + 0.01)
    first = reddit_settings.delivery.first_retry_seconds
    for attempt, wait in enumerate(waits, start=1):  # equal jitter: between half and all of first * 2^(n-1)
        assert first * 2 ** (attempt - 1) / 2 <= wait <= first * 2 ** (attempt - 1), waits
    report = bot.tick()
    assert report.delivered == 1, report
    [row] = _outbox(db)
    assert row["status"] == "delivered" and row["attempts"] == 5
    assert len(_notes_on(state, post)) == 1  # the failed attempts had posted nothing, and nothing twice
    assert ledger.check(db).ok


BAD_GATEWAY = (502, {"message": "Bad Gateway", "error": 502})


def test_a_comment_prawcore_resent_after_reddit_saved_it_is_kept_once(
    fake: tuple[FakeReddit, str], db: Database, world: Any, reddit_settings: Settings, no_prawcore_sleep: None
) -> None:
    # Reddit saves the note and answers 502; prawcore sends it again inside the same reply() and
    # the second one succeeds. Two copies were left under the post.
    state, url = fake
    bot, post = _a_note_due(state, url, db, reddit_settings)
    state.fail_after["/api/comment"] = [BAD_GATEWAY]
    sends_before = state.requests.count("POST /api/comment")
    assert bot.tick().delivered == 1
    [note] = _notes_on(state, post)  # one copy left
    assert state.requests.count("POST /api/comment") - sends_before == 2 and len(state.deleted) == 1
    [row] = _outbox(db)
    assert row["status"] == "delivered" and row["external_id"] == note["name"]  # the one kept
    assert note["name"] != state.deleted[0]


def test_copies_saved_by_failed_sends_are_reduced_to_one_on_the_next_attempt(
    fake: tuple[FakeReddit, str], db: Database, world: Any, reddit_settings: Settings, no_prawcore_sleep: None
) -> None:
    # All three of prawcore's sends are saved and answered 502: the attempt fails with three copies
    # on Reddit. The next attempt adopts the oldest and deletes the other two.
    state, url = fake
    clock = Clock()
    bot, post = _a_note_due(state, url, db, reddit_settings, clock)
    state.fail_after["/api/comment"] = [BAD_GATEWAY] * 3
    assert bot.tick().delivered == 0
    assert len(_notes_on(state, post)) == 3
    [row] = _outbox(db)
    clock.advance(row["next_attempt_at"] - clock() + 1)
    assert bot.tick().delivered == 1
    [note] = _notes_on(state, post)
    [row] = _outbox(db)
    assert row["status"] == "delivered" and row["external_id"] == note["name"] == "t1_c1001"  # the oldest
    assert sorted(state.deleted) == ["t1_c1002", "t1_c1003"]


def test_ratelimit_wait_is_honoured_for_every_note(
    fake: tuple[FakeReddit, str], db: Database, world: Any, reddit_settings: Settings, no_prawcore_sleep: None
) -> None:
    state, url = fake
    clock = Clock()
    bot = make_bot(url, db, reddit_settings, clock)
    bot.tick()
    posts = [
        _open_post_with_offer(state, bot, db, sid, name) for sid, name in (("aaa", "Alice"), ("bbb", "Bob"))
    ]
    db.execute("UPDATE markets SET closes_at = 0")
    state.fail["/api/comment"] = [RATELIMIT]
    start = clock()
    bot.tick()
    rows = _outbox(db)
    assert [r["status"] for r in rows] == ["pending", "pending"]
    assert rows[0]["last_error"] == "RATELIMIT" and rows[0]["next_attempt_at"] >= start + 540
    assert rows[1]["attempts"] == 0 and rows[1]["next_attempt_at"] >= start + 540  # held as well
    for _ in range(3):  # eight minutes later, still waiting: no comment is attempted
        clock.advance(160)
        before = len(state.requests)
        bot.tick()
        assert "POST /api/comment" not in state.requests[before:]
    clock.advance(61)
    assert bot.tick().delivered == 2
    assert [len(_notes_on(state, p)) for p in posts] == [1, 1]


@pytest.mark.parametrize("how", ["deleted", "locked", "banned"])
def test_a_market_on_a_post_that_cannot_show_notes_is_cancelled(
    fake: tuple[FakeReddit, str], db: Database, world: Any, reddit_settings: Settings, how: str
) -> None:
    state, url = fake
    bot = make_bot(url, db, reddit_settings)
    bot.tick()
    pool_before = ledger.balance(db, ledger.pool(world.community_id))
    post = _open_post_with_offer(state, bot, db, "abc", "Alice")
    informer = community.account_for_identity(db, "reddit", "alice", "Alice")
    assert ledger.balance(db, ledger.wallet(informer)) == 97  # the bid is in escrow
    item = next(s for s in state.submissions if s["name"] == post)
    if how == "deleted":
        item |= {"selftext": "[deleted]", "author": "[deleted]"}
    elif how == "locked":
        item["locked"] = True
    else:
        state.banned_from.add(SUB)
    db.execute("UPDATE markets SET closes_at = 0")
    report = bot.tick()
    [market] = db.query("SELECT * FROM markets")
    assert market["status"] == "settled" and market["cancelled_at"] is not None, report
    assert {"deleted": "deleted", "locked": "locked", "banned": "banned"}[how] in market["cancel_reason"]
    assert ledger.balance(db, ledger.wallet(informer)) == 100  # the bid came back
    assert ledger.balance(db, ledger.pool(world.community_id)) == pool_before  # and the budget
    assert db.execute("SELECT status, ciphertext FROM offers").fetchone() == ("shredded", None)
    assert db.execute("SELECT COUNT(*) FROM reveals").fetchone()[0] == 0
    assert _notes_on(state, post) == [] and ledger.check(db).ok
    audit = db.execute("SELECT action FROM audit_log WHERE action = 'market.cancel'").fetchall()
    assert len(audit) == 1


def test_a_post_that_cannot_be_checked_now_waits_for_the_next_pass(
    fake: tuple[FakeReddit, str], db: Database, world: Any, reddit_settings: Settings, no_prawcore_sleep: None
) -> None:
    state, url = fake
    bot, post = _a_note_due(state, url, db, reddit_settings)
    state.fail["/api/info"] = [SERVER_ERROR] * 3
    assert bot.tick().closed == []
    assert db.execute("SELECT status FROM markets").fetchone()[0] == "open"
    report = bot.tick()
    assert len(report.closed) == 1 and report.delivered == 1
    assert len(_notes_on(state, post)) == 1


def test_a_receipt_whose_reply_failed_is_sent_later_with_its_salt(
    fake: tuple[FakeReddit, str],
    db: Database,
    db_path: Path,
    world: Any,
    reddit_settings: Settings,
    no_prawcore_sleep: None,
) -> None:
    from notebazaar.pipeline.sealing import NoteContent, verify_receipt

    state, url = fake
    clock = Clock()
    bot = make_bot(url, db, reddit_settings, clock)
    bot.tick()
    informer = community.account_for_identity(db, "reddit", "alice", "Alice")
    community.mint(db, informer, 100, key="test:alice")
    post = state.submission("abc", "Claim", "Research shows 40% fewer cases after the data came out.")
    bot.tick()
    msg = state.message(
        "m1", "Alice", f"note {post}", "classification: misleading\nbid: 3\nprice: 5\n\nWrong."
    )
    state.fail["/api/comment"] = [SERVER_ERROR] * 3  # the reply with the receipt fails
    bot.tick()
    assert db.execute("SELECT COUNT(*) FROM offers").fetchone()[0] == 1 and msg in state.read
    assert [r for r in state.replies if r["thing_id"] == msg] == []
    bot = make_bot(url, db, reddit_settings, clock)  # a restart does not lose it either
    clock.advance(reddit_settings.delivery.first_retry_seconds + 1)
    bot.tick()
    [receipt] = [r for r in state.replies if r["thing_id"] == msg]
    salt = receipt["text"].split("salt: ", 1)[1].split()[0]
    commitment = db.execute("SELECT commitment FROM offers").fetchone()[0]
    assert verify_receipt(NoteContent("misleading", "Wrong.", ()), salt, commitment)
    bot.tick()
    assert len([r for r in state.replies if r["thing_id"] == msg]) == 1
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for path in db_path.parent.iterdir():  # delivered: the salt is kept nowhere in the state folder
        assert salt.encode() not in path.read_bytes(), path


def test_the_inbox_is_handled_oldest_first(
    fake: tuple[FakeReddit, str], db: Database, world: Any, reddit_settings: Settings
) -> None:
    state, url = fake
    bot = make_bot(url, db, reddit_settings)
    bot.tick()
    post = state.submission("abc", "Claim", "Research shows 40% fewer cases after the data came out.")
    bot.tick()
    names = ["Carol", "Alice", "Bob"]  # sent in this order, oldest first
    for age, name in zip((30, 20, 10), names, strict=True):
        account = community.account_for_identity(db, "reddit", name.lower(), name)
        community.mint(db, account, 100, key=f"test:{name}")
        state.message(
            f"m{name}", name, f"note {post}", "classification: misleading\nbid: 3\nprice: 5\n\nX.", age=age
        )
    bot.tick()
    handles = [
        r[0]
        for r in db.execute(
            "SELECT a.handle FROM offers o JOIN accounts a ON a.id = o.informer_id ORDER BY o.id"
        )
    ]
    assert handles == [f"reddit:{n}" for n in names]


# --- kill -9 and SIGTERM, with the real command in its own process ----------------------------------


def _bought_note_waiting(state: FakeReddit, url: str, db: Database, reddit_settings: Settings) -> str:
    """A settled market whose bought note waits in the outbox (the test settles it, not the bot)."""
    _, post = _a_note_due(state, url, db, reddit_settings)
    assert close_due(db, BuyingJudge()) != []
    [row] = _outbox(db)
    assert row["status"] == "pending" and row["attempts"] == 0
    return post


def _start_bot(tmp_path: Path, url: str, db_path: Path) -> subprocess.Popen[str]:
    """``notebazaar reddit`` in a process of its own, praw pointed at the loopback Reddit by praw.ini."""
    (tmp_path / "praw.ini").write_text(
        f"[loopback]\nclient_id=id\nclient_secret=secret\nusername={BOT}\npassword=pw\n"
        f"oauth_url={url}\nreddit_url={url}\n",
        encoding="utf-8",
    )
    (tmp_path / "nb.toml").write_text(
        f'[reddit]\nsubreddits = {{ {SUB} = "testers" }}\ntick_seconds = 0.1\nmin_chars = 20\n'
        '[judge]\nkind = "openai"\n',  # never called here; it needs no model loaded at start
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith(("praw_", "notebazaar_"))}
    env |= {"praw_site": "loopback", "NOTEBAZAAR_CONFIG": str(tmp_path / "nb.toml"), "PYTHONUNBUFFERED": "1"}
    cli = Path(sys.executable).with_name("notebazaar")
    return subprocess.Popen(
        [str(cli), "reddit", "--db", str(db_path)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_between_posting_and_recording_posts_the_note_once(
    fake: tuple[FakeReddit, str],
    db: Database,
    db_path: Path,
    tmp_path: Path,
    world: Any,
    reddit_settings: Settings,
) -> None:
    state, url = fake
    post = _bought_note_waiting(state, url, db, reddit_settings)
    state.hold_comments = True  # Reddit takes the comment, the bot never hears back: kill it then
    first = _start_bot(tmp_path, url, db_path)
    try:
        assert state.comment_posted.wait(60), (
            first.stderr.read() if first.poll() is not None else "no comment"
        )
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        first.kill()
        state.hold_comments = False
        state.release.set()
    [row] = _outbox(db)
    assert row["status"] == "pending" and row["attempts"] == 1 and row["external_id"] is None
    assert len(_notes_on(state, post)) == 1  # on Reddit, not in the outbox: the double-post window

    second = _start_bot(tmp_path, url, db_path)
    try:
        _wait_for(lambda: _outbox(db)[0]["status"] == "delivered", "the restarted bot to record the note")
        second.send_signal(signal.SIGTERM)
        _, stderr = second.communicate(timeout=30)
    finally:
        second.kill()
    assert second.returncode == 0, stderr
    [row] = _outbox(db)
    [comment] = [c for c in state.bot_comments if c["parent_id"] == post]
    assert row["external_id"] == comment["name"]  # adopted, not posted again
    assert len(_notes_on(state, post)) == 1
    assert "found already posted" in stderr and "SIGTERM" in stderr
    assert "Wrong." not in stderr  # the note's text is never logged


@pytest.mark.slow
def test_sigterm_mid_delivery_finishes_the_note_in_hand_and_exits_cleanly(
    fake: tuple[FakeReddit, str],
    db: Database,
    db_path: Path,
    tmp_path: Path,
    world: Any,
    reddit_settings: Settings,
) -> None:
    state, url = fake
    post = _bought_note_waiting(state, url, db, reddit_settings)
    state.hold_comments = True
    bot = _start_bot(tmp_path, url, db_path)
    try:
        assert state.comment_posted.wait(60), "the bot never posted"
        bot.send_signal(signal.SIGTERM)  # while the reply is in flight
        time.sleep(0.3)
        assert bot.poll() is None  # it does not die with the note in hand
        state.release.set()
        _, stderr = bot.communicate(timeout=30)
    finally:
        bot.kill()
        state.release.set()
    assert bot.returncode == 0, stderr
    [row] = _outbox(db)
    assert row["status"] == "delivered" and row["external_id"] is not None  # no lost note
    assert len(_notes_on(state, post)) == 1
    assert "stopped (SIGTERM)" in stderr and "Traceback" not in stderr
    log_file = (db_path.parent / "notebazaar.log").read_text(encoding="utf-8")
    assert "stopped (SIGTERM)" in log_file  # stderr and the file both have it


def test_a_refused_note_on_a_post_new_to_the_bot_records_nothing(
    fake: tuple[FakeReddit, str], db: Database, world: Any, reddit_settings: Settings
) -> None:
    state, url = fake
    bot = make_bot(url, db, reddit_settings)
    bot.tick()
    post = state.submission("cat", "my cat", "my cat is cute")  # not check-worthy: the bot skipped it
    bot.tick()
    assert db.execute("SELECT COUNT(*) FROM posts").fetchone()[0] == 0
    pool = ledger.balance(db, ledger.pool(world.community_id))
    msg = state.message("m1", "Poor", f"note {post}", "classification: misleading\nbid: 3\nprice: 5\n\nNo.")
    bot.tick()  # Poor has no credits for the bid: refused
    reply = next(r for r in state.replies if r["thing_id"] == msg)
    assert "not accepted" in reply["text"] and "wallet holds 0" in reply["text"]
    assert db.execute("SELECT COUNT(*) FROM posts").fetchone()[0] == 0  # nothing recorded
    assert db.execute("SELECT COUNT(*) FROM markets").fetchone()[0] == 0
    assert ledger.balance(db, ledger.pool(world.community_id)) == pool  # no budget moved
