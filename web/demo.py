"""The web demo: on first run, a community with one settled market (a revealed note), a few posts with
open markets holding sealed offers, and logins for a moderator, an informer and a reader.

The demo passwords are public (printed and documented): they are for a local demo only.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from notebazaar.pipeline import community, market
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.demo import seed_demo
from notebazaar.pipeline.errors import NotFound
from notebazaar.pipeline.judge import Judge
from notebazaar.web.auth import hash_password, set_password


@dataclass(frozen=True)
class DemoLogin:
    handle: str
    password: str
    roles: tuple[str, ...]


# (handle suffix, password, roles); handles are "<community slug>_<suffix>", e.g. demo_moderator.
DEMO_LOGINS = (
    ("moderator", "moderator-demo-only", ("reader", "informer", "moderator")),
    ("informer", "informer-demo-only", ("reader", "informer")),
    ("reader", "reader-demo-only", ("reader",)),
)


def demo_logins(slug: str) -> list[DemoLogin]:
    return [DemoLogin(f"{slug}_{suffix}", password, roles) for suffix, password, roles in DEMO_LOGINS]


OPEN_POSTS = (
    (
        "A new study shows that wind turbines cause more bird deaths than cats, so wind power is"
        " worse for wildlife than anything else we do.",
        [
            (
                "ice_watcher",
                "misleading",
                "Cats kill over a billion birds a year in the US; wind turbines"
                " kill a few hundred thousand. The study compares the wrong numbers.",
                6,
                10,
            )
        ],
    ),
    (
        "Electric cars produce more carbon dioxide over their lifetime than petrol cars because"
        " making batteries is so dirty.",
        [
            (
                "echo_chamber",
                "misleading",
                "Lifecycle studies find electric cars emit less carbon"
                " dioxide than petrol cars after one to two years of driving, battery making included.",
                4,
                8,
            ),
            ("off_topic", "not_misleading", "Petrol prices went up last week.", 3, 5),
        ],
    ),
    (
        "Our city will ban gas stoves in all existing homes starting next month.",
        [],
    ),
)


def ensure_demo(db: Database, settings: Settings, judge: Judge, *, slug: str) -> list[DemoLogin] | None:
    """Seed the demo community unless it exists; return the demo logins when it was just seeded."""
    try:
        community.get_community(db, slug)
        return None
    except NotFound:
        pass
    result = seed_demo(db, settings, judge, slug=slug)
    com_id = result.community_id
    logins = demo_logins(slug)
    for login in logins:
        try:  # pipeline.demo already made <slug>_reader, without a password
            account = int(community.get_account(db, login.handle)["id"])
            set_password(db, account, login.password)
        except NotFound:
            account = community.create_account(db, login.handle, password_hash=hash_password(login.password))
        for role in login.roles:
            community.grant(db, account, com_id, role)
        community.mint(db, account, 1_000, key=f"demo:{slug}:web:{login.handle}")
    reader = int(community.get_account(db, f"{slug}_reader")["id"])
    community.fund_pool(db, com_id, reader, 800, key=f"demo:{slug}:web:fund")
    for i, (text, offers) in enumerate(OPEN_POSTS, start=2):
        post_id = community.add_post(
            db, com_id, text, platform="web", external_id=f"{slug}-post-{i}", author="demo_poster"
        )
        market_id = market.open_market(db, post_id)
        for handle, classification, note, bid, price in offers:
            informer = int(community.get_account(db, f"{slug}_{handle}")["id"])
            market.submit_offer(
                db,
                market_id,
                informer,
                classification=classification,
                text=note,
                bid=bid,
                price=price,
                limits=settings.limits,
            )
    return logins
