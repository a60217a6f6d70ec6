"""A loopback OpenAI-compatible Chat Completions server for tests, so real HTTP goes through the real
``openai`` client (which runs on httpx2, where respx cannot intercept).

Usage::

    with FakeOpenAI() as server:
        server.script(answer(p_after=0.9, span="...", rationale="..."), rate_limited(), malformed())
        settings = OpenAISettings(base_url=server.base_url, max_retries=1, timeout_seconds=2)
        ...
        server.requests  # the JSON bodies received, in order

Each request takes the next scripted :class:`Reply`, or calls a scripted function with the request
body (a model that reads the prompt, e.g. an obedient model that follows an injected instruction).
With the script empty, ``default`` answers (a callable or a Reply); if that is None too, the server
answers 500 with ``x-should-retry: false`` so a test fails fast and visibly.

The server binds 127.0.0.1 on a free port, and ``stop`` (or leaving the ``with``) shuts it down and
wakes any reply still sleeping.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from notebazaar.pipeline.judge.spotlight import MARK_CANDIDATES

Body = dict[str, Any]


@dataclass
class Reply:
    """One scripted HTTP answer. ``content``/``refusal`` fill ``choices[0].message``; a ``status`` other
    than 200 sends ``error`` as an OpenAI error body; ``delay`` sleeps before answering."""

    content: str | None = None
    refusal: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    finish_reason: str = "stop"
    error: str = "scripted error"
    prompt_tokens: int = 100
    completion_tokens: int = 20


Script = Reply | Callable[[Body], Reply]


def answer(**fields: Any) -> Reply:
    """A well-formed JSON answer (the model's content is ``json.dumps(fields)``)."""
    return Reply(content=json.dumps(fields))


def malformed(content: str = '{"p_after": 0.9, "span": "unterminated') -> Reply:
    return Reply(content=content)


def refusal(text: str = "I can't help with that.") -> Reply:
    return Reply(content=None, refusal=text)


def rate_limited(retry_after_ms: int = 5) -> Reply:
    return Reply(status=429, headers={"retry-after-ms": str(retry_after_ms)}, error="rate limited")


def server_error(status: int = 500, retry: bool = False) -> Reply:
    return Reply(status=status, headers={"x-should-retry": "true" if retry else "false"})


def slow(seconds: float, reply: Reply | None = None) -> Reply:
    base = reply or answer(p=0.5)
    base.delay = seconds
    return base


def schema_name(body: Body) -> str:
    """The response_format JSON schema's name in a request ("InspectionAnswer", "PriorAnswer")."""
    fmt = body.get("response_format") or {}
    return str((fmt.get("json_schema") or {}).get("name", ""))


def user_message(body: Body) -> str:
    return "\n".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user")


def system_message(body: Body) -> str:
    return "\n".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "system")


class FakeOpenAI:
    """The server. Thread-safe: the handler threads share the script and the request list."""

    def __init__(self, default: Script | None = None) -> None:
        self.default = default
        self.requests: list[Body] = []
        self.paths: list[str] = []
        self.authorizations: list[str] = []
        self._script: deque[Script] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._count = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    # -- scripting -------------------------------------------------------------------------

    def script(self, *replies: Script) -> None:
        with self._lock:
            self._script.extend(replies)

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._script)

    def _next(self, body: Body) -> Reply:
        with self._lock:
            self.requests.append(body)
            item = self._script.popleft() if self._script else self.default
            self._count += 1
        if item is None:
            return Reply(status=500, headers={"x-should-retry": "false"}, error="no scripted reply left")
        return item(body) if callable(item) else item

    def _completion(self, body: Body, reply: Reply) -> Body:
        message: Body = {"role": "assistant", "content": reply.content, "refusal": reply.refusal}
        return {
            "id": f"chatcmpl-fake-{self._count}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}
            ],
            "usage": {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            },
        }


def _make_handler(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            raw = self.rfile.read(length)
            with server._lock:
                server.paths.append(self.path)
                server.authorizations.append(self.headers.get("authorization", ""))
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}}, {})
                return
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                self._send(400, {"error": {"message": "bad json", "type": "invalid_request_error"}}, {})
                return
            reply = server._next(body)
            if reply.delay and server._stopping.wait(reply.delay):
                return  # shutting down: drop the sleeping reply
            if reply.status != 200:
                error = {"error": {"message": reply.error, "type": "scripted", "param": None, "code": None}}
                self._send(reply.status, error, reply.headers)
                return
            self._send(200, server._completion(body, reply), reply.headers)

        def _send(self, status: int, payload: Body, headers: dict[str, str]) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

    return Handler


_BLOCK = re.compile(
    r"<<<BEGIN (?P<token>[0-9a-f]+) (?P<label>\w+)>>>\n(?P<body>.*?)\n<<<END (?P=token) (?P=label)>>>", re.S
)


def blocks(body: Body) -> dict[str, str]:
    """The spotlighted blocks of a request's user message, by label, with the datamark undone:
    what a model that follows the prompt's protocol would read as the data."""
    out = {}
    for m in _BLOCK.finditer(user_message(body)):
        text = m.group("body")
        mark = text[:1]
        if mark in MARK_CANDIDATES:
            text = "\n".join(line.removeprefix(f"{mark} ") for line in text.split("\n"))
        out[m.group("label")] = text
    return out


def spotlight_token(body: Body) -> str:
    m = _BLOCK.search(user_message(body))
    return m.group("token") if m else ""
