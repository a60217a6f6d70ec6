"""/note submarket: offering a sealed sub-note into an open sub-market from Discord (issue 8)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from notebazaar.bot.discord import queries, render
from notebazaar.bot.discord.commands import NotebazaarCog
from notebazaar.bot.discord.modal import SubNoteModal
from notebazaar.pipeline import community, ledger, market
from notebazaar.pipeline.config import Settings
from tests.conftest import World
from tests.test_discord_fakes import (
    CLAIM,
    QUIET,
    FakeDiscord,
    make_bot,
    make_interaction,
    make_user,
    only_answer,
)
from tests.test_discord_fakes import discord_settings as _discord_settings

PARENT_NOTE = "SEALEDPARENT the survey behind this claim was never published"
TEASER = "Lancet, 2010 retraction"
SUB_NOTE = "SUBNOTE the parent's source is a retracted paper; the retraction notice is public."


@pytest.fixture
def settings() -> Settings:
    return _discord_settings()


@pytest.fixture
def cog(db: Database, db_path: Path, settings: Settings, world: World) -> NotebazaarCog:
    return make_bot(db_path, settings, db)[1]


@pytest.fixture
def sub(db: Database, cog: NotebazaarCog, world: World) -> dict[str, int]:
    """A market opened on a member's message, a sealed offer with a teaser in it, and an open
    sub-market about that offer."""
    message = FakeDiscord().channel(QUIET).message(CLAIM, make_user("poster"))
    asyncio.run(cog.request_notes(make_interaction(make_user("reader")), message))  # type: ignore[arg-type]
    post_id = int(next(db["posts"].rows_where("platform = 'discord'"))["id"])
    top = int(queries.market_for_post(db, post_id)["id"])
    parent = market.submit_offer(
        db,
        top,
        world.informers[0],
        classification="misleading",
        text=PARENT_NOTE,
        bid=2,
        price=8,
        teaser=TEASER,
    ).offer_id
    sub_id = market.open_market(db, post_id, parent_offer_id=parent, budget=20, window_seconds=600)
    return {"post": post_id, "top": top, "parent": parent, "sub": sub_id}


def _informer(db: Database, credits: int = 100) -> tuple[Any, int]:
    user = make_user("subinformer")
    account = community.account_for_identity(db, "discord", str(user.id), user.name)
    community.mint(db, account, credits, key=f"test:discord:mint:{user.id}")
    return user, account


def _open_form(cog: NotebazaarCog, user: Any, market_id: int, **kw: Any) -> Any:
    interaction = make_interaction(user, **kw)
    asyncio.run(cog.note_submarket.callback(cog, interaction, market=market_id))  # type: ignore[arg-type]
    return interaction


def _sub_note_payload(classification: str, note: str, sources: str, terms: str) -> list[dict[str, Any]]:
    """A MODAL_SUBMIT for the sub-note form: the text display comes back without a custom id."""

    def text(custom_id: str, value: str) -> dict[str, Any]:
        return {"type": 18, "component": {"type": 4, "custom_id": custom_id, "value": value}}

    return [
        {"type": 10, "id": 1},
        {"type": 18, "component": {"type": 3, "custom_id": "classification", "values": [classification]}},
        text("note", note),
        text("sources", sources),
        text("terms", terms),
    ]


def _submit(modal: SubNoteModal, user: Any, components: list[dict[str, Any]]) -> Any:
    interaction = make_interaction(user)

    async def go() -> None:
        modal._refresh(interaction, components, {})  # what discord.py does with a MODAL_SUBMIT payload
        await modal.on_submit(interaction)

    asyncio.run(go())
    return interaction


def _state(db: Database) -> tuple[int, int, dict[str, int]]:
    return db["offers"].count, db["offer_keys"].count, ledger.balances(db)


def test_the_form_names_the_sub_market_and_the_offers_teaser_only(
    db: Database, cog: NotebazaarCog, sub: dict[str, int]
) -> None:
    user, _ = _informer(db)
    interaction = _open_form(cog, user, sub["sub"])
    modal = interaction.response.modal
    assert isinstance(modal, SubNoteModal) and modal.target.id == sub["sub"]
    assert not interaction.response.deferred  # the modal is the first response
    payload = modal.to_dict()
    assert len(payload["components"]) == 5  # Discord's limit for a modal
    assert len(payload["title"]) <= 45 and f"offer #{sub['parent']}" in payload["title"]
    shown = json.dumps(payload, ensure_ascii=False)
    assert TEASER in shown and f"Sub-market #{sub['sub']}" in shown
    assert "SEALEDPARENT" not in shown  # the offer the sub-market is about stays sealed


def test_a_sub_note_is_sealed_into_the_sub_market(
    db: Database,
    db_path: Path,
    cog: NotebazaarCog,
    sub: dict[str, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    user, account = _informer(db)
    modal = _open_form(cog, user, sub["sub"]).response.modal
    sources = "https://www.thelancet.com/retraction\n"
    interaction = _submit(modal, user, _sub_note_payload("misleading", SUB_NOTE, sources, "3 7"))

    answer = only_answer(interaction)
    assert answer.ephemeral and interaction.response.deferred
    rows = list(db["offers"].rows_where("informer_id = ?", [account]))
    assert len(rows) == 1
    offer = rows[0]
    assert (offer["market_id"], offer["status"], offer["bid"], offer["price"]) == (sub["sub"], "sealed", 3, 7)
    assert offer["ciphertext"] and SUB_NOTE.encode() not in offer["ciphertext"]
    content = answer.content or ""
    assert f"sub-note #{offer['id']} in sub-market #{sub['sub']}" in content and TEASER in content
    assert offer["commitment"] in content
    assert "SUBNOTE" not in content and "SEALEDPARENT" not in content
    assert ledger.balance(db, ledger.wallet(account)) == 97
    assert ledger.balance(db, ledger.escrow(sub["sub"])) == 3
    assert market.market_view(db, sub["top"])["sub_markets"][0]["offers"] == 1

    # No plaintext anywhere in the database files, nor in the log.
    db.execute("PRAGMA wal_checkpoint(FULL)")
    for path in db_path.parent.glob(db_path.name + "*"):
        raw = path.read_bytes()
        assert b"SUBNOTE" not in raw and b"thelancet" not in raw, path.name
    assert "SUBNOTE" not in caplog.text and "thelancet" not in caplog.text
    assert f"offer {offer['id']} sealed in market {sub['sub']}" in caplog.text


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        ("unknown", "no sub-market #999999"),
        ("top", "is a post's market, not a sub-market"),
        ("settled", "is settled; it takes no more offers"),
        ("window_over", "bidding window has ended"),
        ("other_community", "no sub-market #"),
    ],
)
def test_a_bad_sub_market_is_refused_before_the_form_and_nothing_is_written(
    db: Database, cog: NotebazaarCog, sub: dict[str, int], world: World, which: str, expected: str
) -> None:
    market_id = {"unknown": 999_999, "top": sub["top"]}.get(which, sub["sub"])
    if which == "settled":
        db.execute("UPDATE markets SET status = 'settled' WHERE id = ?", [sub["sub"]])
    elif which == "window_over":
        db.execute("UPDATE markets SET closes_at = ? WHERE id = ?", [time.time() - 1, sub["sub"]])
    elif which == "other_community":
        other = community.create_community(db, "elsewhere")
        db.execute("UPDATE markets SET community_id = ? WHERE id = ?", [other.id, sub["sub"]])
    user, _ = _informer(db)
    before = _state(db)
    interaction = _open_form(cog, user, market_id)

    assert interaction.response.modal is None
    answer = only_answer(interaction)
    assert answer.ephemeral and expected in (answer.content or ""), answer.content
    assert "SEALEDPARENT" not in (answer.content or "")
    assert _state(db) == before


def test_outside_a_linked_server_is_refused(db: Database, cog: NotebazaarCog, sub: dict[str, int]) -> None:
    user, _ = _informer(db)
    interaction = _open_form(cog, user, sub["sub"], guild_id=42)
    assert interaction.response.modal is None
    assert "not linked" in (only_answer(interaction).content or "")


@pytest.mark.parametrize("closed_by", ["settlement", "window"])
def test_a_sub_market_that_closes_while_the_form_is_open_takes_nothing(
    db: Database, cog: NotebazaarCog, sub: dict[str, int], closed_by: str
) -> None:
    user, _ = _informer(db)
    modal = _open_form(cog, user, sub["sub"]).response.modal
    if closed_by == "settlement":
        db.execute("UPDATE markets SET status = 'closing' WHERE id = ?", [sub["sub"]])
    else:
        db.execute("UPDATE markets SET closes_at = ? WHERE id = ?", [time.time() - 1, sub["sub"]])
    before = _state(db)
    interaction = _submit(modal, user, _sub_note_payload("misleading", SUB_NOTE, "", "3 7"))

    answer = only_answer(interaction)
    assert answer.ephemeral and "takes no more offers" in (answer.content or ""), answer.content
    assert "SUBNOTE" not in (answer.content or "")
    assert _state(db) == before


@pytest.mark.parametrize(
    ("classification", "terms", "expected"),
    [
        ("misleading", "five seven", "terms must be two whole numbers"),
        ("misleading", "500 7", "wallet holds"),
        ("true", "3 7", "classification must be"),
    ],
)
def test_bad_sub_note_input_is_refused_and_changes_nothing(
    db: Database, cog: NotebazaarCog, sub: dict[str, int], classification: str, terms: str, expected: str
) -> None:
    user, _ = _informer(db)
    modal = _open_form(cog, user, sub["sub"]).response.modal
    before = _state(db)
    interaction = _submit(modal, user, _sub_note_payload(classification, SUB_NOTE, "", terms))
    answer = only_answer(interaction)
    assert answer.ephemeral and expected in (answer.content or ""), answer.content
    assert _state(db) == before


def test_autocomplete_lists_this_servers_open_sub_markets(
    db: Database, cog: NotebazaarCog, sub: dict[str, int], world: World
) -> None:
    def choices(current: str, **kw: Any) -> list[Any]:
        interaction = make_interaction(make_user("informer"), **kw)
        return asyncio.run(cog.sub_market_choices(interaction, current))  # type: ignore[arg-type]

    listed = choices("")
    assert [(c.value, c.name) for c in listed] == [
        (sub["sub"], f"#{sub['sub']} about offer #{sub['parent']}: {TEASER}")
    ]
    assert [c.value for c in choices("lancet")] == [sub["sub"]]
    assert [c.value for c in choices(f"#{sub['sub']}")] == [sub["sub"]]
    assert choices("nothing like it") == []
    assert choices("", guild_id=42) == []  # an unlinked server gets no choices, not an error
    db.execute("UPDATE markets SET status = 'settled' WHERE id = ?", [sub["sub"]])
    assert choices("") == []


def test_market_show_points_informers_at_the_command(
    db: Database, cog: NotebazaarCog, sub: dict[str, int]
) -> None:
    embed = render.market_embed(market.market_view(db, sub["top"]))
    fields = {f.name: f.value for f in embed.fields}
    assert f"market #{sub['sub']} about offer #{sub['parent']}: {TEASER}" in fields["Open sub-markets"]
    assert "/note submarket" in (embed.footer.text or "")
