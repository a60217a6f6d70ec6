"""``notebazaar writer``: the writer as a client of a notebazaar server's JSON API.

Each round it reads its account (``GET /api/me``), lists the open markets of its communities
(``GET /api/posts``, then ``GET /api/posts/{id}`` for a market's public numbers), asks the learning
core (:mod:`notebazaar.writer.core`) what to offer on each market it has not offered in yet, submits
sealed offers (``POST /api/posts/{id}/offers`` with an ``Idempotency-Key``, so a retried submission is
one offer), logs each receipt, then reads its rewards (``GET /api/me/rewards``) and learns.

Transport: httpx2 with its transport's connection retries; a refusal (a 4xx, e.g. the community's
writer cap) skips that market for the round, a server or network error ends the round, and the
next round tries again. Nothing here knows how the market settles: it only reads what the API says.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2

from notebazaar.writer.choices import Choice, MarketContext
from notebazaar.writer.core import Writer

log = logging.getLogger(__name__)

FULL_READ_EVERY = 10  # rounds: then every reward is read again, to catch statuses given after a sale


@contextlib.contextmanager
def _expected_answers(what: str) -> Iterator[None]:
    """An answer without the fields the market API always sends (``--server`` pointing at another
    service, say) is one clear error, not a traceback."""
    try:
        yield
    except (KeyError, TypeError, AttributeError) as exc:
        raise ApiError(
            f"unexpected answer from {what} ({type(exc).__name__}: {exc}); is --server a notebazaar server?"
        ) from None


class ApiError(Exception):
    """The server refused a request, or could not be reached; the message says which and why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class MarketApi:
    """The few endpoints the writer uses, with a bearer token."""

    def __init__(
        self,
        server: str,
        token: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        transport: httpx2.BaseTransport | None = None,
    ) -> None:
        self.client = httpx2.Client(
            base_url=server.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": "notebazaar-writer"},
            timeout=timeout,
            transport=transport or httpx2.HTTPTransport(retries=retries),
        )

    def close(self) -> None:
        self.client.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx2.TransportError as exc:
            raise ApiError(f"{method} {path}: cannot reach the server ({type(exc).__name__})") from None
        if response.status_code >= 400:
            try:
                body = response.json()
                detail = (body.get("detail") or body.get("error")) if isinstance(body, dict) else None
                detail = detail or response.text
            except ValueError:
                detail = response.text
            raise ApiError(f"{method} {path}: {response.status_code} {detail}"[:300], response.status_code)
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"{method} {path}: the server's answer is not JSON") from None

    def me(self) -> dict[str, Any]:
        return self._call("GET", "/api/me")  # type: ignore[no-any-return]

    def register_writer(self) -> dict[str, Any]:
        return self._call("POST", "/api/me/writer")  # type: ignore[no-any-return]

    def posts(self, community: str) -> list[dict[str, Any]]:
        return self._call("GET", "/api/posts", params={"community": community, "limit": 200})  # type: ignore[no-any-return]

    def post(self, post_id: int) -> dict[str, Any]:
        return self._call("GET", f"/api/posts/{post_id}")  # type: ignore[no-any-return]

    def submit(self, post_id: int, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        return self._call(  # type: ignore[no-any-return]
            "POST", f"/api/posts/{post_id}/offers", json=body, headers={"Idempotency-Key": idempotency_key}
        )

    def rewards(self, since: float | None) -> list[dict[str, Any]]:
        params = {} if since is None else {"since": since}
        return self._call("GET", "/api/me/rewards", params=params)  # type: ignore[no-any-return]


@dataclass
class RoundReport:
    offered: list[int] = field(default_factory=list)  # offer ids
    refused: list[str] = field(default_factory=list)  # one line per refused submission
    learned: int = 0  # rewards new or changed


def idempotency_key(account_id: int, market_id: int, choice: Choice) -> str:
    """The same choice on the same market by the same account is the same key, across restarts."""
    digest = hashlib.sha256(
        f"{choice.arm.classification}\x00{choice.candidate.text}\x00{choice.bid}\x00{choice.price}".encode()
    ).hexdigest()[:24]
    return f"writer-{account_id}-{market_id}-{digest}"


class WriterRunner:
    """Rounds of: find open markets, offer, read rewards, learn."""

    def __init__(self, api: MarketApi, writer: Writer, *, community: str = "") -> None:
        self.api = api
        self.writer = writer
        self.community = community
        self.me: dict[str, Any] = {}
        self.rounds = 0
        # Markets already weighed in this run, offered into or not: the same post at temperature 0
        # gives the same drafts, so asking the model again each round would only repeat them.
        self.considered: set[int] = set()

    def start(self, server: str) -> None:
        """Who we are; the state folder is tied to this server and account; declare ourselves a writer."""
        with _expected_answers("/api/me"):
            self._start(server)

    def _start(self, server: str) -> None:
        self.me = self.api.me()
        self.writer.log.bind("server", server.rstrip("/"))
        self.writer.log.bind("account", str(self.me["account_id"]))
        self.api.register_writer()

    def _communities(self) -> list[str]:
        informs = sorted({r["community"] for r in self.me.get("roles", []) if r["role"] == "informer"})
        if self.community:
            if self.community not in informs:
                raise ApiError(f"this account is not an informer in {self.community!r}")
            return [self.community]
        return informs

    def round(self) -> RoundReport:
        with _expected_answers("the market API"):
            return self._round()

    def _round(self) -> RoundReport:
        report = RoundReport()
        self.me = self.api.me()
        wallet = int(self.me["wallet"])
        done = self.writer.log.offered_markets()
        for slug in self._communities():
            for post in self.api.posts(slug):
                if post.get("market_status") != "open" or post.get("market_id") in done | self.considered:
                    continue
                detail = self.api.post(int(post["id"]))
                market = detail.get("market") or {}
                if market.get("status") != "open" or not market.get("seconds_left"):
                    continue
                context = MarketContext.from_info(
                    {
                        "market_id": market["id"],
                        "post_id": detail["id"],
                        "post_text": detail["text"],
                        "attention_slots": market["attention_slots"],
                        "reserve": market["reserve"],
                        "price_of_information": market["price_of_information"],
                        "budget_left": market["budget_left"],
                        "sealed_offers": market["sealed_offers"],
                    }
                )
                self.considered.add(int(market["id"]))
                for choice in self.writer.choose(context, wallet=wallet):
                    wallet -= self._offer(context, choice, report)
        self.rounds += 1
        since = self.writer.log.pending_since()
        if self.rounds % FULL_READ_EVERY == 0:
            report.learned = self.writer.learn(self.api.rewards(None))
        elif since is not None:
            report.learned = self.writer.learn(self.api.rewards(since))
        log.info(
            "writer round: %s offers, %s refused, %s rewards learned",
            len(report.offered),
            len(report.refused),
            report.learned,
        )
        return report

    def _offer(self, context: MarketContext, choice: Choice, report: RoundReport) -> int:
        """Submit one choice; returns the credits it escrowed (0 if refused)."""
        body = {
            "classification": choice.arm.classification,
            "text": choice.candidate.text,
            "sources": list(choice.candidate.sources),
            "bid": choice.bid,
            "price": choice.price,
        }
        key = idempotency_key(int(self.me["account_id"]), context.market_id, choice)
        try:
            receipt = self.api.submit(context.post_id, body, key)
        except ApiError as exc:
            if exc.status is None or exc.status >= 500:
                raise
            report.refused.append(str(exc))
            log.info("writer: market %s refused an offer (%s)", context.market_id, exc.status)
            return 0
        self.writer.placed(context, choice, receipt)
        report.offered.append(int(receipt["offer_id"]))
        log.info(
            "writer: offer %s in market %s (bid %s, price %s)",
            receipt["offer_id"],
            context.market_id,
            choice.bid,
            choice.price,
        )
        return choice.bid

    def run(self, *, rounds: int | None, interval: float) -> int:
        """Rounds until ``rounds`` are done (None: until stopped); returns how many failed."""
        failed, done = 0, 0
        while rounds is None or done < rounds:
            try:
                self.round()
            except ApiError as exc:
                failed += 1
                log.warning("writer round failed: %s", exc)
            done += 1
            if rounds is None or done < rounds:
                time.sleep(interval)
        return failed
