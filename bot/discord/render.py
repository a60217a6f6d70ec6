"""How market objects look in Discord: embeds and short ephemeral texts.

Discord caps an embed description at 4096 characters and a field at 1024; longer values are cut
with an ellipsis rather than refused, since the note itself was already validated by the core.
"""

from __future__ import annotations

from typing import Any

import discord

from pipeline.market import Receipt
from pipeline.outbox import PendingReveal

MISLEADING_COLOUR = discord.Colour.orange()
NOT_MISLEADING_COLOUR = discord.Colour.green()
LABELS = {"misleading": "Misleading", "not_misleading": "Not misleading"}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def reveal_embed(item: PendingReveal) -> discord.Embed:
    """A revealed note: classification, text, sources, informer and the price the market paid."""
    embed = discord.Embed(
        title=f"Community note: {LABELS.get(item.classification, item.classification)}",
        description=_cut(item.text, 4096),
        colour=MISLEADING_COLOUR if item.classification == "misleading" else NOT_MISLEADING_COLOUR,
    )
    if item.sources:
        sources = "\n".join(f"{i}. {s}" for i, s in enumerate(item.sources, 1))
        embed.add_field(name="Sources", value=_cut(sources, 1024), inline=False)
    embed.add_field(name="Informer", value=_cut(item.informer, 256), inline=True)
    embed.add_field(name="Price paid", value=f"{item.price} credits", inline=True)
    embed.set_footer(text=f"note #{item.reveal_id} · bought by the notebazaar judge")
    return embed


def receipt_text(receipt: Receipt) -> str:
    return (
        f"Sealed offer #{receipt.offer_id} in market #{receipt.market_id}: bid {receipt.bid},"
        f" price {receipt.price} credits. Your note stays secret unless the judge buys it.\n"
        f"Commitment `{receipt.commitment}`\nSalt `{receipt.salt}` (keep it to prove what you sent)"
    )


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
