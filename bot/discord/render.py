"""How market objects look in Discord: embeds and short ephemeral texts.

Discord caps an embed description at 4096 characters, a field at 1024, an embed at 25 fields and
6000 characters in all; longer values are cut with an ellipsis rather than refused, since the note
itself was already validated by the core. A note's sources (up to 5 x 500 characters by default)
are spread over as many fields as they need.

A revealed note is untrusted text: its Markdown is escaped (a masked link ``[x](https://…)`` shows
as written, not as a link) and mass mentions are defused. The embed's footer carries the reveal's
marker (:func:`reveal_marker`), by which delivery finds a note it may already have posted.
"""

from __future__ import annotations

from typing import Any

import discord

from notebazaar.bot.discord.queries import SubMarket
from notebazaar.pipeline.market import Receipt
from notebazaar.pipeline.outbox import PendingReveal

MISLEADING_COLOUR = discord.Colour.orange()
NOT_MISLEADING_COLOUR = discord.Colour.green()
LABELS = {"misleading": "Misleading", "not_misleading": "Not misleading"}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


FIELD_CHARS = 1024
EMBED_CHARS = 6000
EMBED_FIELDS = 25


def escape(text: str) -> str:
    """Untrusted text shown as written: no Markdown, no links of its own, no mass mentions."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def reveal_marker(reveal_id: int) -> str:
    """What the footer of a reveal's message starts with; delivery looks for it."""
    return f"note #{int(reveal_id)} ·"


def _chunks(lines: list[str], limit: int) -> list[str]:
    """Lines packed into values of at most ``limit`` characters (a longer line is cut)."""
    chunks: list[str] = []
    for line in (_cut(line, limit) for line in lines):
        if chunks and len(chunks[-1]) + 1 + len(line) <= limit:
            chunks[-1] += "\n" + line
        else:
            chunks.append(line)
    return chunks


def reveal_embed(item: PendingReveal) -> discord.Embed:
    """A revealed note: classification, text, sources, informer and the price the market paid.

    The one place a reveal's Discord message is drawn; anything shown with the note extends it."""
    title = f"Community note: {LABELS.get(item.classification, item.classification)}"
    informer = _cut(escape(item.informer), 256)
    footer = f"{reveal_marker(item.reveal_id)} bought by the notebazaar judge"
    price = f"{item.price} credits"
    description = _cut(escape(item.text), 4096)
    fixed = len(title) + len(footer) + len("Informer") + len(informer) + len("Price paid") + len(price)
    room = EMBED_CHARS - fixed - len(description)
    embed = discord.Embed(
        title=title,
        description=description,
        colour=MISLEADING_COLOUR if item.classification == "misleading" else NOT_MISLEADING_COLOUR,
    )
    lines = [f"{i}. {escape(s)}" for i, s in enumerate(item.sources, 1)]
    for index, value in enumerate(_chunks(lines, FIELD_CHARS)[: EMBED_FIELDS - 2]):
        name = "Sources" if index == 0 else "Sources (continued)"
        if room < len(name) + 2:
            break
        value = _cut(value, min(len(value), room - len(name)))
        embed.add_field(name=name, value=value, inline=False)
        room -= len(name) + len(value)
    embed.add_field(name="Informer", value=informer, inline=True)
    embed.add_field(name="Price paid", value=price, inline=True)
    embed.set_footer(text=footer)
    return embed


def receipt_text(receipt: Receipt) -> str:
    return (
        f"Sealed offer #{receipt.offer_id} in market #{receipt.market_id}: bid {receipt.bid},"
        f" price {receipt.price} credits. Your note stays secret unless the judge buys it.\n"
        f"Commitment `{receipt.commitment}`\nSalt `{receipt.salt}` (keep it to prove what you sent)"
    )


def _teaser(target: SubMarket) -> str:
    """The parent offer's public teaser, safe to show (no formatting, no pings)."""
    if not target.teaser:
        return "(its informer gave no teaser)"
    return "“" + discord.utils.escape_mentions(discord.utils.escape_markdown(target.teaser)) + "”"


def sub_note_title(target: SubMarket) -> str:
    return _cut(f"Sub-note on offer #{target.parent_offer_id}", 45)  # Discord's limit for a modal title


def sub_market_subject(target: SubMarket) -> str:
    """What a sub-market is about, for the sub-note form: the offer's public teaser only."""
    where = f" on {target.post_url}" if target.post_url else ""
    return _cut(
        f"**Sub-market #{target.id}** is about sealed offer #{target.parent_offer_id}{where}.\n"
        f"Its public teaser: {_teaser(target)}\n"
        "Your note judges that offer, not the post: *Misleading* means the offer is unreliable."
        f" The offer itself stays sealed. Budget {target.budget} credits; bidding closes"
        f" <t:{int(target.closes_at)}:R>.",
        4000,
    )


def sub_receipt_text(receipt: Receipt, target: SubMarket) -> str:
    return (
        f"Sealed sub-note #{receipt.offer_id} in sub-market #{receipt.market_id}, about offer"
        f" #{target.parent_offer_id} {_teaser(target)}: bid {receipt.bid}, price {receipt.price} credits."
        " Your note stays secret unless the judge buys it, and a bought sub-note is revealed only if"
        " the offer it is about is bought.\n"
        f"Commitment `{receipt.commitment}`\nSalt `{receipt.salt}` (keep it to prove what you sent)"
    )


def sub_market_choice(target: SubMarket) -> str:
    """A sub-market as an autocomplete choice (at most 100 characters)."""
    teaser = f": {target.teaser}" if target.teaser else ""
    return _cut(f"#{target.id} about offer #{target.parent_offer_id}{teaser}", 100)


def offers_text(offers: list[dict[str, Any]]) -> str:
    if not offers:
        return "You have no offers yet. Submit one with /note submit."
    lines = []
    for o in offers:
        charge = "" if o["charge"] is None else f", charged {o['charge']}"
        outcome = f" ({o['outcome']})" if o["outcome"] and o["outcome"] != o["status"] else ""
        note = f", note #{o['reveal_id']}" if o["reveal_id"] else ""
        where = f" on {o['post_url']}" if o["post_url"] else ""
        closes = f", closes <t:{int(o['closes_at'])}:R>" if o["market_status"] == "open" else ""
        lines.append(
            f"#{o['id']} market #{o['market_id']}: **{o['status']}**{outcome}, bid {o['bid']},"
            f" price {o['price']}{charge}{note}{closes}{where}"
        )
    return _cut("\n".join(lines), 2000)


def market_embed(view: dict[str, Any]) -> discord.Embed:
    """A market's public state. While bidding is open, only the number of offers is shown."""
    market, post = view["market"], view["post"]
    embed = discord.Embed(title=f"Market #{market['id']}: {market['status']}", url=post["url"] or None)
    if market["status"] == "open":
        embed.add_field(name="Bidding closes", value=f"<t:{int(market['closes_at'])}:R>", inline=True)
    embed.add_field(name="Budget", value=f"{market['budget']} credits ({view['budget_left']} left)")
    embed.add_field(name="Sealed offers", value=str(len(view["offers"])))
    if view["inspections"]:
        bought = sum(1 for i in view["inspections"] if i["bought"])
        embed.add_field(name="Inspected", value=f"{len(view['inspections'])} ({bought} bought)")
    if view["reveals"]:
        notes = ", ".join(f"#{r['id']} ({LABELS.get(r['classification'], '?')})" for r in view["reveals"])
        embed.add_field(name="Revealed notes", value=_cut(notes, 1024), inline=False)
    subs = [s for s in view.get("sub_markets", []) if s["open"]]
    if subs:  # markets about one offer each; informers offer into them by market id
        listing = "\n".join(
            f"market #{s['id']} about offer #{s['parent_offer_id']}"
            f"{': ' + s['teaser'] if s['teaser'] else ''} (budget {s['budget']}, {s['seconds_left']}s left)"
            for s in subs
        )
        embed.add_field(name="Open sub-markets", value=_cut(listing, 1024), inline=False)
        embed.set_footer(text="Offer a sealed note about an offer: /note submarket market:<id>")
    return embed


def prompt_text(active: dict[str, Any], versions: list[dict[str, Any]]) -> str:
    listing = "\n".join(
        f"{'**→**' if v['id'] == active['id'] else '  '} v{v['version']} (id {v['id']})"
        f"{': ' + v['note'] if v['note'] else ''}"
        for v in versions
    )
    excerpt = _cut(active["text"], 1200).replace("```", "'''")
    return _cut(
        f"Active judge prompt: v{active['version']}. Activate another with /judge prompt version:<n>.\n"
        f"{listing}\n```\n{excerpt}\n```",
        2000,
    )
