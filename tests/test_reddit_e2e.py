"""End to end: the bot, through real praw/prawcore, against a loopback server that plays Reddit.

The server answers only the endpoints the bot uses and records every write, so the tests check
what the bot actually sends: the note comment (escaped Markdown, posted once even across a
restart), the distinguish/sticky call, the PM receipt, the modmail about a bad wiki page.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
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
    requests: list[str] = field(default_factory=list)
    edits: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_id: int = 1000

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

    def message(self, mid: str, author: str, subject: str, body: str) -> str:
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
                "created_utc": time.time(),
                "parent_id": None,
                "first_message_name": None,
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
            return self._route(method, path, query, form)

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
        if path == "/message/unread":  # private messages (t4) and comment replies (t1)
            return 200, _listing("t4", [m for m in self.inbox if m["new"]])
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
        if path == "/api/distinguish":
            self.distinguished.append(form)
            return 200, {"json": {"errors": [], "data": {"things": []}}}
        if path == "/api/compose":
            self.composed.append(form)
            return 200, {"json": {"errors": []}}
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
        self.replies.append({"thing_id": thing, "text": form["text"]})
        if thing.startswith("t4_"):
            return 200, {"json": {"errors": [], "data": {"things": []}}}
        self.next_id += 1
        cid = f"c{self.next_id}"
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
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

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


def make_bot(url: str, db: Database, settings: Settings) -> RedditBot:
    return RedditBot(
        connect(settings, **praw_kwargs(url)), db, settings, BuyingJudge(), wiki_interval_seconds=0
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
    v2 = prompts.create_version(db, "A stricter judge prompt.")
    assert prompts.get_version(db, v2)["version"] == 2
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

    state.wiki[f"{SUB}/notebazaar"] = {"content": "reserve = 1", "revision": "rev3", "editor": "stranger"}
    bot.tick()
    assert community.get_community(db, world.community_id).reserve == 7
    assert "not by a moderator" in state.composed[-1]["text"]


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
    bot = make_bot(url, db, reddit_settings)
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
    assert rows[1][0] == "pending"  # rate limited: waits for the next tick
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
