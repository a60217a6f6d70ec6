"""The private-message commands informers send the bot, and the replies it sends back.

A person types these in Reddit's message form, so the format is forgiving about case and spacing
and every refusal names the line at fault. Commands (the subject line):

* ``note <post>``: a sealed note on a post; ``<post>`` is a fullname (``t3_abc123``, ``t1_def456``)
  or a link to the post or comment. The body holds ``field: value`` lines (``classification``,
  ``bid``, ``price``, optional ``sources`` and ``teaser``), a blank line, then the note text.
* ``note market <id>``: a sealed note into a market by id, which is how to offer into a
  sub-market (a market about one offer, listed with the post's market): there ``misleading`` means
  "that offer is misleading". Same body as above.
* ``withdraw <offer id>``: take back a sealed offer before its market closes.
* ``balance``: the wallet balance.
* ``rate <note number>``: rate a revealed note; the body starts with ``helpful``,
  ``somewhat helpful`` or ``not helpful`` (:mod:`notebazaar.bot.reddit.ratings`).

Parsing never logs or echoes the note text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from notebazaar.pipeline.errors import ValidationError
from notebazaar.pipeline.market import Receipt

_FULLNAME = re.compile(r"^t([13])_([a-z0-9]{1,13})$", re.IGNORECASE)
_PERMALINK = re.compile(r"/comments/([a-z0-9]{1,13})(?:/[^/?#]*/([a-z0-9]{1,13}))?", re.IGNORECASE)
_SHORTLINK = re.compile(r"^(?:https?://)?redd\.it/([a-z0-9]{1,13})/?$", re.IGNORECASE)
_MARKET = re.compile(r"^market\s+#?(\d{1,12})$", re.IGNORECASE)
_FIELD = re.compile(r"^\s*([A-Za-z_ ]+?)\s*[:=]\s*(.*?)\s*$")
_CLASSIFICATION = {
    "misleading": "misleading",
    "not misleading": "not_misleading",
    "not_misleading": "not_misleading",
    "not-misleading": "not_misleading",
}
FIELDS = ("classification", "bid", "price", "sources", "teaser")
HELP = (
    "Send a sealed note with the subject `note <link to the post or comment>` and a body like:\n\n"
    "    classification: misleading\n"
    "    bid: 5\n"
    "    price: 20\n"
    "    sources: https://example.org/study, https://example.org/data\n"
    "\n"
    "    The note text, after one blank line.\n\n"
    "To offer a note about an offer (into a sub-market), use the subject `note market <id>`.\n\n"
    "Other subjects: `withdraw <offer id>`, `balance`, and `rate <note number>` with `helpful`,"
    " `somewhat helpful` or `not helpful` as the body (or reply to a note with one of those words)."
)


class MessageFormatError(ValidationError):
    """A private message the bot cannot read; the message says which part is wrong."""


@dataclass(frozen=True)
class NoteCommand:
    target: str  # the post's fullname, t3_... or t1_..., or market:<id> for a market by id
    classification: str
    bid: int
    price: int
    sources: tuple[str, ...]
    teaser: str | None
    text: str

    def __repr__(self) -> str:  # keep the sealed text out of logs and tracebacks
        return f"NoteCommand(target={self.target}, bid={self.bid}, price={self.price}, text=<hidden>)"


@dataclass(frozen=True)
class WithdrawCommand:
    offer_id: int


@dataclass(frozen=True)
class BalanceCommand:
    pass


@dataclass(frozen=True)
class RateCommand:
    reveal_id: int
    level: str


Command = NoteCommand | WithdrawCommand | BalanceCommand | RateCommand


def parse_target(value: str) -> str:
    """A post's fullname from a fullname, a permalink or a redd.it short link; or ``market:<id>``
    from ``market <id>`` (a note into a market by id, such as a sub-market)."""
    value = value.strip().strip("<>")
    if match := _MARKET.match(value):
        return f"market:{int(match.group(1))}"
    if match := _FULLNAME.match(value):
        return f"t{match.group(1)}_{match.group(2).lower()}"
    if match := _SHORTLINK.match(value):
        return f"t3_{match.group(1).lower()}"
    if match := _PERMALINK.search(value):
        if match.group(2):
            return f"t1_{match.group(2).lower()}"
        return f"t3_{match.group(1).lower()}"
    raise MessageFormatError(
        "the subject must name the post after `note`: a link to the post or comment, or its"
        " fullname such as t3_abc123"
    )


def _whole_number(name: str, value: str) -> int:
    if not re.fullmatch(r"\d{1,12}", value):
        raise MessageFormatError(f"`{name}` must be a whole number of credits, not {value!r}")
    return int(value)


def parse_note_body(target: str, body: str) -> NoteCommand:
    """The fields and text of a note message. Raises MessageFormatError naming the problem."""
    lines = body.replace("\r\n", "\n").split("\n")
    fields: dict[str, str] = {}
    index = 0
    while index < len(lines) and not lines[index].strip():
        index += 1  # blank lines before the fields
    while index < len(lines) and lines[index].strip():
        match = _FIELD.match(lines[index])
        name = match.group(1).strip().lower().replace(" ", "_") if match else ""
        if not match or name not in FIELDS:
            raise MessageFormatError(
                f"line {index + 1} should be a `field: value` line (one of {', '.join(FIELDS)})"
                " or the blank line before the note text"
            )
        if name in fields:
            raise MessageFormatError(f"`{name}` is given twice")
        fields[name] = match.group(2)
        index += 1
    text = "\n".join(lines[index:]).strip()
    missing = [f for f in ("classification", "bid", "price") if f not in fields]
    if missing:
        raise MessageFormatError(f"missing field(s): {', '.join(missing)}")
    if not text:
        raise MessageFormatError("the note text is missing: write it after the fields and one blank line")
    classification = _CLASSIFICATION.get(fields["classification"].strip().lower())
    if classification is None:
        raise MessageFormatError("`classification` must be `misleading` or `not misleading`")
    sources = tuple(s.strip() for s in re.split(r"\s*,\s*", fields.get("sources", "")) if s.strip())
    return NoteCommand(
        target=target,
        classification=classification,
        bid=_whole_number("bid", fields["bid"]),
        price=_whole_number("price", fields["price"]),
        sources=sources,
        teaser=fields.get("teaser") or None,
        text=text,
    )


def parse_command(subject: str, body: str) -> Command:
    """The command a private message holds."""
    words = subject.strip().split(None, 1)
    verb = words[0].lower() if words else ""
    rest = words[1].strip() if len(words) > 1 else ""
    if verb in ("re:",) and rest:  # a reply in a thread with the bot keeps its subject
        return parse_command(rest, body)
    if verb == "note":
        return parse_note_body(parse_target(rest), body)
    if verb == "withdraw":
        if not re.fullmatch(r"#?\d{1,12}", rest):
            raise MessageFormatError("write the offer id after `withdraw`, e.g. `withdraw 42`")
        return WithdrawCommand(int(rest.lstrip("#")))
    if verb == "balance":
        return BalanceCommand()
    if verb == "rate":
        from notebazaar.bot.reddit.ratings import parse_level

        if not re.fullmatch(r"#?\d{1,12}", rest):
            raise MessageFormatError("write the note's number after `rate`, e.g. `rate 42`")
        level = parse_level(body)
        if level is None:
            raise MessageFormatError("start the message with `helpful`, `somewhat helpful` or `not helpful`")
        return RateCommand(int(rest.lstrip("#")), level)
    raise MessageFormatError(
        f"the subject must start with `note`, `withdraw`, `balance` or `rate`.\n\n{HELP}"
    )


def receipt_reply(receipt: Receipt, target: str) -> str:
    return (
        f"Your sealed note on {target} is offer **{receipt.offer_id}** in market {receipt.market_id}"
        f" (bid {receipt.bid}, price {receipt.price}). The bid is held in escrow until the market"
        " closes.\n\n"
        f"Receipt (keep it: with the salt you can prove you wrote the note):\n\n"
        f"    offer: {receipt.offer_id}\n"
        f"    commitment: {receipt.commitment}\n"
        f"    salt: {receipt.salt}\n\n"
        "The salt is kept nowhere else once this message reached you. To take the note back before"
        " the market closes,"
        f" send `withdraw {receipt.offer_id}`."
    )


def withdrawn_reply(offer_id: int) -> str:
    return f"Offer {offer_id} is withdrawn: the bid is refunded and the note shredded."


def late_receipt_reply(offer_id: int, commitment: str) -> str:
    """A receipt re-sent after an interrupted reply; the salt was never stored, so it is gone."""
    return (
        f"Your sealed note is offer **{offer_id}** (commitment `{commitment}`). The first reply with"
        " its salt could not be sent and the salt is never stored, so it cannot be shown again; if you"
        f" need proof of authorship, send `withdraw {offer_id}` and submit the note again."
    )


def error_reply(problem: str) -> str:
    return f"Your message was not accepted; nothing was changed.\n\nProblem: {problem}"
