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

``flavour`` makes it behave like a real local server, quirks included:

* ``"openai"`` (default): takes every response format, returns what the script says.
* ``"llama_server"`` (llama.cpp's ``llama-server``): takes ``json_schema`` and ``json_object`` and
  turns the schema into a grammar, so a string field never runs past its ``maxLength`` (numbers are
  not bounded: a degenerate model can answer 1e15). Without ``max_tokens`` a model that runs away
  (``Reply(runaway=...)``) generates until the context (``n_ctx``) is full, at
  ``seconds_per_token``; with it, generation stops there with ``finish_reason: "length"``.
* ``"llama_cpp_python"`` (llama-cpp-python's ``llama_cpp.server``): the same generation, but a
  ``json_schema`` response format is answered with HTTP 500 before the model runs; ``json_object``
  with a ``schema`` beside it is constrained by that schema, without one not at all.

Both llama flavours report ``usage.prompt_tokens_details.cached_tokens``: the tokens of the prompt
that the previous request shared as a prefix (what llama.cpp's prompt cache reuses). Tokens are
counted as words and punctuation marks, roughly as a model's tokenizer would.
"""

from __future__ import annotations

import dataclasses
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
FLAVOURS = ("openai", "llama_server", "llama_cpp_python")


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
    # A model that runs away: ``content`` is what it writes before it starts repeating ``runaway``
    # inside a string; ``closing`` is what a grammar makes it write once the string hits its bound.
    runaway: str = ""
    closing: str = ""
    cached_tokens: int = 0
    # A server that trickles its answer: headers at once, then the body a byte at a time, this
    # many seconds apart (each read arrives well within any read timeout).
    trickle: float = 0.0


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


def runaway(prefix: str, loop: str = "the ", closing: str = "") -> Reply:
    """A degenerate answer: ``prefix``, then ``loop`` over and over inside a string field."""
    return Reply(content=prefix, runaway=loop, closing=closing)


_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def prompt_text(body: Body) -> str:
    """The request's messages as one text, as a chat template would render them."""
    return "".join(f"<{m.get('role')}>{m.get('content', '')}\n" for m in body.get("messages", []))


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

    def __init__(
        self,
        default: Script | None = None,
        *,
        flavour: str = "openai",
        n_ctx: int = 4096,
        seconds_per_token: float = 0.0,
    ) -> None:
        if flavour not in FLAVOURS:
            raise ValueError(f"flavour must be one of {FLAVOURS}")
        self.default = default
        self.flavour = flavour
        self.n_ctx = n_ctx
        self.seconds_per_token = seconds_per_token
        self._last_prompt = ""
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

    def refuses(self, body: Body) -> bool:
        """llama-cpp-python's server answers a json_schema response format with HTTP 500."""
        fmt = body.get("response_format") or {}
        return self.flavour == "llama_cpp_python" and fmt.get("type") == "json_schema"

    def _grammar_schema(self, body: Body) -> Body | None:
        """The schema the server turns into a grammar for this request, if any."""
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            return (fmt.get("json_schema") or {}).get("schema")
        if fmt.get("type") == "json_object":
            return fmt.get("schema")
        return None

    def generate(self, body: Body, reply: Reply) -> Reply:
        """What a llama.cpp server makes of the model's words: bounded by the grammar, cut at
        ``max_tokens`` or at the end of the context, and as slow as ``seconds_per_token``."""
        if self.flavour == "openai" or reply.status != 200:
            return reply
        prompt = prompt_text(body)
        with self._lock:
            shared = _shared_prefix(prompt, self._last_prompt)
            self._last_prompt = prompt
        prompt_tokens = count_tokens(prompt)
        cached = count_tokens(prompt[:shared]) if shared else 0
        limit = body.get("max_tokens") or body.get("n_predict") or (self.n_ctx - prompt_tokens)
        content = reply.content or ""
        finish = reply.finish_reason
        if reply.runaway:
            schema = self._grammar_schema(body) or {}
            field = _open_string_field(content)
            bound = ((schema.get("properties") or {}).get(field) or {}).get("maxLength")
            if bound is not None:  # the grammar closes the string at its bound
                loops = reply.runaway * (int(bound) // max(1, len(reply.runaway)) + 1)
                content = content + loops[: int(bound)] + reply.closing
            else:  # nothing stops it but the token limit
                room = max(0, int(limit) - count_tokens(content))
                content = content + reply.runaway * (room // max(1, count_tokens(reply.runaway)) + 1)
        tokens = count_tokens(content)
        if tokens > int(limit):
            content = " ".join(_TOKEN.findall(content)[: int(limit)])
            tokens, finish = int(limit), "length"
        return dataclasses.replace(
            reply,
            content=content,
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            completion_tokens=tokens,
            delay=reply.delay + tokens * self.seconds_per_token,
            cached_tokens=cached,
        )

    def _completion(self, body: Body, reply: Reply) -> Body:
        message: Body = {"role": "assistant", "content": reply.content, "refusal": reply.refusal}
        usage: Body = {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        }
        if self.flavour != "openai":
            usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
        return {
            "id": f"chatcmpl-fake-{self._count}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}
            ],
            "usage": usage,
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
            if server.refuses(body):
                with server._lock:
                    server.requests.append(body)
                error = {"error": {"message": "Internal Server Error", "type": "internal_server_error"}}
                self._send(500, error, {})
                return
            reply = server.generate(body, server._next(body))
            if reply.delay and server._stopping.wait(reply.delay):
                return  # shutting down: drop the sleeping reply
            if reply.status != 200:
                error = {"error": {"message": reply.error, "type": "scripted", "param": None, "code": None}}
                self._send(reply.status, error, reply.headers)
                return
            self._send(200, server._completion(body, reply), reply.headers, trickle=reply.trickle)

        def _send(self, status: int, payload: Body, headers: dict[str, str], trickle: float = 0.0) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if not trickle:
                    self.wfile.write(data)
                    return
                for i in range(len(data)):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    if server._stopping.wait(trickle):
                        return
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

    return Handler


def _shared_prefix(a: str, b: str) -> int:
    """How many leading characters two prompts share (what a prompt cache can reuse)."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def _open_string_field(prefix: str) -> str:
    """The field whose string value ``prefix`` leaves open (``'{"p": 1, "span": "ab'`` -> span)."""
    found = re.findall(r'"(\w+)"\s*:\s*"', prefix)
    return found[-1] if found else ""


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
