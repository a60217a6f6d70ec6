"""/note submit and its modal: sealing an offer from a Discord form, and refusing bad input."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sqlite_utils import Database

from notebazaar.bot.discord.modal import NoteModal, parse_terms
from notebazaar.bot.discord.refs import parse_message_ref
from notebazaar.pipeline import ledger
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.errors import ValidationError
from tests.conftest import World
from tests.test_discord_fakes import (
    CLAIM,
    QUIET,
    FakeDiscord,
    make_bot,
    make_interaction,
    make_user,
    modal_payload,
    only_answer,
)
from tests.test_discord_fakes import discord_settings as _discord_settings

NOTE = "The cited survey does not exist; the vaccine autism claim was retracted by The Lancet in 2010."


@pytest.fixture
def settings() -> Settings:
    return _discord_settings()


@pytest.fixture
def opened(db: Database, db_path: Path, settings: Settings, world: World) -> dict[str, object]:
    """A bot, and a market opened on a member's message through "Request notes"."""
    bot, cog = make_bot(db_path, settings, db)
    message = FakeDiscord().channel(QUIET).message(CLAIM, make_user("poster"))
    asyncio.run(cog.request_notes(make_interaction(make_user("reader")), message))  # type: ignore[arg-type]
    return {"bot": bot, "cog": cog, "message": message}


def _submit(db: Database, settings: Settings, user: object, components: list[dict[str, object]]) -> object:
    interaction = make_interaction(user)  # type: ignore[arg-type]

    async def go() -> None:
        modal = NoteModal(db, settings)
        modal._refresh(interaction, components, {})  # what discord.py does with a MODAL_SUBMIT payload
        await modal.on_submit(interaction)

    asyncio.run(go())
    return interaction


def test_note_submit_opens_the_modal_as_first_response(opened: dict[str, object]) -> None:
    cog = opened["cog"]
    interaction = make_interaction(make_user("informer"))
    link = opened["message"].jump_url  # type: ignore[attr-defined]
    asyncio.run(cog.note_submit.callback(cog, interaction, post=link))  # type: ignore[attr-defined]
    modal = interaction.response.modal
    assert isinstance(modal, NoteModal)
    assert not interaction.response.deferred
    assert modal.post.value == link
    payload = modal.to_dict()
    assert len(payload["components"]) == 5  # Discord's limit for a modal
    for label in payload["components"]:
        assert label["type"] == 18 and len(label["label"]) <= 45 and len(label.get("description", "")) <= 100


def test_note_submit_outside_a_linked_server_is_refused_before_the_form(opened: dict[str, object]) -> None:
    cog = opened["cog"]
    interaction = make_interaction(make_user("informer"), guild_id=42)
    asyncio.run(cog.note_submit.callback(cog, interaction))  # type: ignore[attr-defined]
    assert interaction.response.modal is None
    answer = only_answer(interaction)
    assert answer.ephemeral and "not linked" in (answer.content or "")


def test_modal_submit_seals_an_offer_and_sends_an_ephemeral_receipt(
    db: Database, settings: Settings, opened: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user = make_user("informer")
    from notebazaar.pipeline import community

    account = community.account_for_identity(db, "discord", str(user.id), user.name)
    community.mint(db, account, 100, key="test:discord:mint")
    link = opened["message"].jump_url  # type: ignore[attr-defined]
    sources = "https://www.thelancet.com/retraction\n\n  https://example.org/survey  "
    interaction = _submit(
        db, settings, user, modal_payload(link, "misleading", NOTE, sources, "bid 5 price 20")
    )

    answer = only_answer(interaction)
    assert answer.ephemeral
    offers = list(db["offers"].rows)
    assert len(offers) == 1
    offer = offers[0]
    assert (offer["status"], offer["bid"], offer["price"], offer["informer_id"]) == ("sealed", 5, 20, account)
    assert f"Sealed offer #{offer['id']}" in (answer.content or "")
    assert offer["commitment"] in (answer.content or "")
    assert ledger.balance(db, ledger.wallet(account)) == 95
    assert interaction.response.deferred  # acknowledged first, receipt as a follow-up
    assert NOTE not in caplog.text and "thelancet" not in caplog.text
    assert f"offer {offer['id']} sealed" in caplog.text  # ids and amounts are logged


@pytest.mark.parametrize(
    ("classification", "terms", "post", "expected"),
    [
        ("misleading", "-5 20", None, "bid must be at least"),
        ("misleading", "5 -1", None, "price must be at least"),
        ("true", "5 20", None, "classification must be"),
        ("misleading", "five twenty", None, "terms must be two whole numbers"),
        ("misleading", "5 20", "https://discord.com/channels/1/2/3", "no market is open"),
        ("misleading", "5 20", "not a link", "message link"),
        ("misleading", "5000 20", None, "wallet holds"),
    ],
)
def test_bad_modal_input_is_refused_ephemerally_and_changes_nothing(
    db: Database,
    settings: Settings,
    opened: dict[str, object],
    classification: str,
    terms: str,
    post: str | None,
    expected: str,
) -> None:
    user = make_user("informer")
    from notebazaar.pipeline import community

    account = community.account_for_identity(db, "discord", str(user.id), user.name)
    community.mint(db, account, 100, key="test:discord:mint")
    before = ledger.balances(db)
    link = post or opened["message"].jump_url  # type: ignore[attr-defined]
    interaction = _submit(db, settings, user, modal_payload(link, classification, NOTE, "", terms))

    answer = only_answer(interaction)
    assert answer.ephemeral and expected in (answer.content or ""), answer.content
    assert NOTE not in (answer.content or "")
    assert db["offers"].count == 0
    assert ledger.balances(db) == before


def test_a_banned_informer_is_refused(
    db: Database, settings: Settings, opened: dict[str, object], world: World
) -> None:
    from notebazaar.pipeline import community, moderation

    user = make_user("spammer")
    account = community.account_for_identity(db, "discord", str(user.id), user.name)
    community.mint(db, account, 100, key="test:discord:mint")
    moderation.ban(db, world.moderator, account, world.community_id, "spam")
    link = opened["message"].jump_url  # type: ignore[attr-defined]
    interaction = _submit(db, settings, user, modal_payload(link, "misleading", NOTE, "", "5 20"))
    assert "banned" in (only_answer(interaction).content or "")
    assert db["offers"].count == 0


def test_message_references_and_terms_parse() -> None:
    ref = parse_message_ref("https://ptb.discord.com/channels/10/20/30")
    assert (ref.guild_id, ref.channel_id, ref.message_id) == (10, 20, 30)
    assert parse_message_ref("<https://discord.com/channels/10/20/30>").message_id == 30
    assert parse_message_ref("20:30").channel_id == 20
    assert parse_message_ref(" 30 ").channel_id is None
    with pytest.raises(ValidationError):
        parse_message_ref("https://example.com/channels/1/2/3")
    assert parse_terms("5 20") == (5, 20)
    assert parse_terms("bid: 5, price: 20") == (5, 20)
    assert parse_terms("-1 3") == (-1, 3)
    for bad in ("", "5", "5 6 7", "5.5 2", "1e3 2"):
        with pytest.raises(ValidationError):
            parse_terms(bad)


def test_a_receipt_discord_refuses_twice_is_sent_as_a_direct_message(
    db: Database, settings: Settings, opened: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The offer is sealed before its receipt is shown; a failed follow-up must not turn into
    "try again" (a second offer), and the receipt, the salt's only copy, reaches the informer."""
    from unittest.mock import AsyncMock, MagicMock

    import discord

    from notebazaar.bot.discord import modal as modal_module
    from notebazaar.pipeline import community

    user = make_user("informer")
    user.send = AsyncMock()
    account = community.account_for_identity(db, "discord", str(user.id), user.name)
    community.mint(db, account, 100, key="test:discord:mint")
    unavailable = discord.DiscordServerError(MagicMock(status=503, reason="Service Unavailable"), "x")
    monkeypatch.setattr(modal_module, "send", AsyncMock(side_effect=unavailable))
    link = opened["message"].jump_url  # type: ignore[attr-defined]
    _submit(db, settings, user, modal_payload(link, "misleading", NOTE, "", "bid 5 price 20"))
    offers = list(db["offers"].rows)
    assert [o["status"] for o in offers] == ["sealed"]
    user.send.assert_awaited_once()
    assert offers[0]["commitment"] in user.send.await_args.args[0]
