"""The embedded judge through real markets: determinism, relevance, echo, track record, reference
support, the injection rule ("no injection note is ever bought where an irrelevant note at the same
price would not be") and its per-market amnesia (prepare/forget).

One database and one judge (one loaded model) serve the module; each test works in its own
community, so base rates, track records and retrieval filters of one test never reach another.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from notebazaar.pipeline import community, credit, ledger, market, moderation, ratings, records, rewards
from notebazaar.pipeline.config import MarketSettings, Settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.errors import ValidationError
from notebazaar.pipeline.judge import Context, NoteView, PostView, TrackRecord
from notebazaar.pipeline.judge.factory import make_judge
from notebazaar.pipeline.judge.local import RECORD_BELOW_STRANGER, LocalJudge
from notebazaar.pipeline.judge.params import LocalJudgeParams
from notebazaar.pipeline.judge.simple import SimpleJudge
from notebazaar.pipeline.settlement import InspectionResult, close_market

FIXTURE = Path(__file__).parent / "fixtures" / "injections.jsonl"
INJECTIONS = [json.loads(line) for line in FIXTURE.read_text("utf-8").splitlines() if line.strip()]

POST = "The city council voted to double bus fares starting next month, according to a leaked memo."
RELEVANT = "The council minutes show the bus fare vote was postponed; fares stay the same next month."
OFF_TOPIC = (
    "The recipe calls for two cups of flour and a pinch of salt, baked at 180 degrees for forty minutes."
)
MARKET = MarketSettings(
    attention_slots=4, reserve=1, price_of_information=100, budget_per_market=500, window_seconds=3600
)

pytestmark = pytest.mark.usefixtures("quiet_logging_and_one_torch_thread")
_slugs = itertools.count()


@dataclass
class Env:
    db: Database
    db_path: Path
    settings: Settings
    judge: LocalJudge


@dataclass
class Community:
    env: Env
    id: int

    def informer(self, name: str) -> int:
        account = community.create_account(self.env.db, f"{name}{next(_slugs)}")
        community.mint(self.env.db, account, 1_000_000)
        return account

    def run(
        self,
        post: str,
        offers: list[tuple[int, str, str, int]],
        *,
        judge: Any = None,
        bid: int = 5,
    ) -> tuple[int, int, list[InspectionResult]]:
        """A market on a new post with ``(informer, classification, text, price)`` offers, closed now."""
        db = self.env.db
        post_id = community.add_post(db, self.id, post, platform="web")
        market_id = market.open_market(db, post_id)
        for informer, classification, text, price in offers:
            market.submit_offer(
                db, market_id, informer, classification=classification, text=text, bid=bid, price=price
            )
        report = close_market(db, market_id, judge or self.env.judge, force=True)
        return post_id, market_id, report.inspections


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    db_path = tmp_path_factory.mktemp("judge_local") / "notebazaar.db"
    db = open_db(db_path)
    settings = Settings()
    judge = make_judge(settings, db, kind="local")
    assert isinstance(judge, LocalJudge)
    yield Env(db, db_path, settings, judge)
    db.close()


def new_community(env: Env) -> Community:
    com = community.create_community(env.db, f"c{next(_slugs)}", settings=MARKET)
    funder = community.create_account(env.db, f"funder{next(_slugs)}")
    community.mint(env.db, funder, 100_000)
    community.fund_pool(env.db, com.id, funder, 100_000)
    return Community(env, com.id)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def shift(result: InspectionResult) -> float:
    """How far the note moved the reader, in log-odds (signed: + toward misleading)."""
    return logit(result.p_after) - logit(result.p_before)


# --- the reader model -------------------------------------------------------------------------------


def test_same_inputs_give_the_same_verdict(env: Env) -> None:
    com = new_community(env)
    informer = com.informer("det")
    runs = [com.run(POST, [(informer, "not_misleading", RELEVANT, 10_000)])[2][0] for _ in range(2)]
    assert (runs[0].p_before, runs[0].p_after) == (runs[1].p_before, runs[1].p_after)
    assert runs[0].p_after != runs[0].p_before  # it did move: the comparison is not trivial
    post = PostView(10**6, com.id, POST)
    note = NoteView(1, informer, "misleading", RELEVANT)
    first = env.judge.inspect(post, Context(), note, 0.4)
    second = env.judge.inspect(post, Context(), note, 0.4)
    assert first.p_after == second.p_after and first.extra == second.extra
    assert env.judge.prior(post, Context()) == env.judge.prior(post, Context())


def test_a_relevant_note_moves_toward_its_classification(env: Env) -> None:
    com = new_community(env)
    a, b = com.informer("rel"), com.informer("rel")
    (down,) = com.run(POST, [(a, "not_misleading", RELEVANT, 10_000)])[2]
    (up,) = com.run(POST, [(b, "misleading", RELEVANT, 10_000)])[2]
    assert down.p_before == up.p_before == 0.5  # no history: the base rate
    assert down.p_after < 0.35 and up.p_after > 0.65
    assert math.isclose(shift(up), -shift(down))  # symmetric: only the direction differs


def test_off_topic_and_echo_notes_barely_move(env: Env) -> None:
    com = new_community(env)
    informer = com.informer("off")
    (relevant,) = com.run(POST, [(informer, "misleading", RELEVANT, 10_000)])[2]
    (off,) = com.run(POST, [(informer, "misleading", OFF_TOPIC, 1)])[2]
    (echo,) = com.run(POST, [(informer, "misleading", POST, 1)])[2]
    (echo_case,) = com.run(POST, [(informer, "misleading", POST.upper(), 1)])[2]
    assert abs(shift(relevant)) > 1.0
    for result in (off, echo, echo_case):
        assert abs(result.p_after - result.p_before) < 0.02, result
        assert not result.bought  # even at a price of 1 credit


def test_probabilities_stay_within_bounds(env: Env) -> None:
    com = new_community(env)
    post = PostView(10**6 + 1, com.id, POST)
    veteran = TrackRecord(right=500, wrong=0)
    for classification, p_before in (("misleading", 0.99), ("not_misleading", 0.01), ("misleading", 0.5)):
        note = NoteView(1, 1, classification, RELEVANT, track=veteran)
        verdict = env.judge.inspect(post, Context(), note, p_before)
        assert 0.01 <= verdict.p_after <= 0.99
    assert 0.01 <= env.judge.prior(post, Context()) <= 0.99


# --- track record -----------------------------------------------------------------------------------

HISTORY = [
    ("Apple orchards in the valley produced a record harvest this autumn.", "not_misleading"),
    ("The new stadium will be entirely paid for by private investors.", "misleading"),
    ("The river flooded the old town three times last decade.", "not_misleading"),
    ("The library closes permanently next week because of budget cuts.", "misleading"),
]


def _note_on(post: str) -> str:
    return f"Records confirm it: {post.lower()} Checked against the official register."


def _rate(db: Database, reveal_offer: int, raters: list[int], helpful: bool) -> None:
    reveal_id = db.execute("SELECT id FROM reveals WHERE offer_id = ?", [reveal_offer]).fetchone()[0]
    for rater in raters:
        ratings.rate(db, reveal_id, rater, "helpful" if helpful else "not_helpful", surface="sim", now=1.0)


def test_track_record_sets_how_far_a_note_moves(env: Env) -> None:
    com = new_community(env)
    db = env.db
    right, wrong, newcomer = com.informer("right"), com.informer("wrong"), com.informer("new")
    raters = [com.informer("rater") for _ in range(3)]
    simple = SimpleJudge()
    for post, truth in HISTORY:
        flipped = "misleading" if truth == "not_misleading" else "not_misleading"
        for informer, classification, helpful in ((right, truth, True), (wrong, flipped, False)):
            post_id, _, inspections = com.run(
                post, [(informer, classification, _note_on(post), 1)], judge=simple
            )
            assert inspections[0].bought
            _rate(db, inspections[0].offer_id, raters, helpful)
            market.resolve_post(db, post_id, truth)
    assert records.track_record(db, right) == TrackRecord(4, 0)
    assert records.track_record(db, wrong) == TrackRecord(0, 4)
    assert records.track_record(db, newcomer) == TrackRecord(0, 0)

    results = {
        name: com.run(POST, [(informer, "not_misleading", RELEVANT, 10_000)])[2][0]
        for name, informer in (("right", right), ("newcomer", newcomer))
    }
    assert len({r.p_before for r in results.values()}) == 1  # same reader before each note
    moved = {name: -shift(r) for name, r in results.items()}
    assert moved["right"] > moved["newcomer"] + 0.5, moved
    assert moved["newcomer"] > 0.1, moved
    _, market_id, (liar,) = com.run(POST, [(wrong, "not_misleading", RELEVANT, 1)])
    assert not liar.bought and liar.reason == RECORD_BELOW_STRANGER  # a proven liar is not believed
    assert market.get_market(db, market_id)["belief"] == liar.p_before  # at any price


@pytest.mark.parametrize("history", [(True, False, False), (False, False)], ids=["mixed", "liar"])
def test_an_informer_proven_worse_than_a_stranger_is_not_bought_until_its_record_recovers(
    env: Env, history: tuple[bool, ...]
) -> None:
    """Less reliable than a stranger is trusted (right once then wrong twice; or wrong twice, below
    even 0.5), so even a note at a price of 1 is not bought (its own reason code, charge kept). What
    it would move a reader to at a stranger's trust is recorded, so each such note counts once its
    post resolves, and enough right ones make it worth buying again."""
    com, db = new_community(env), env.db
    informer = com.informer("mixed")
    raters = [com.informer("rater") for _ in range(3)]
    for (post, truth), right in zip(HISTORY[: len(history)], history, strict=True):
        said = truth if right else ("misleading" if truth == "not_misleading" else "not_misleading")
        post_id, _, (bought,) = com.run(post, [(informer, said, _note_on(post), 1)], judge=SimpleJudge())
        assert bought.bought
        _rate(db, bought.offer_id, raters, right)
        market.resolve_post(db, post_id, truth)
    assert records.track_record(db, informer) == TrackRecord(sum(history), history.count(False))
    floor = env.judge.params.newcomer_floor

    def reliability() -> float:
        view = NoteView(0, informer, "not_misleading", RELEVANT, track=records.track_record(db, informer))
        return env.judge.reliability(view, com.id)

    assert reliability() < floor
    refused = 0
    while reliability() < floor:
        before = records.track_record(db, informer)
        post_id, market_id, (result,) = com.run(POST, [(informer, "not_misleading", RELEVANT, 1)])
        assert not result.bought and result.reason == RECORD_BELOW_STRANGER
        assert result.p_after < result.p_before  # what it read is kept: toward its classification
        assert result.charge > 0 and rewards.charged(db, market_id)[result.offer_id] > 0
        market.resolve_post(db, post_id, "not_misleading")
        assert records.track_record(db, informer) == TrackRecord(before.right + 1, before.wrong)
        refused += 1
        assert refused <= 8
    _, _, (result,) = com.run(POST, [(informer, "not_misleading", RELEVANT, 1)])
    assert result.bought and refused >= 1


def test_a_stranger_trusted_at_the_floor_is_not_refused_as_worse_than_one(env: Env) -> None:
    """A stranger's trust is the floor itself when the newcomers' record is at it: never below it
    by rounding (0.7 shrunk toward 0.7 is 0.6999999999999998 in floating point)."""
    params = LocalJudgeParams(newcomer_reliability=0.7, newcomer_floor=0.7)
    judge = LocalJudge(env.db, env.judge.retriever, params=params)
    com = new_community(env)
    stranger = com.informer("stranger")
    _, _, (result,) = com.run(POST, [(stranger, "not_misleading", RELEVANT, 1)], judge=judge)
    assert result.bought, result.reason


# --- trust on credit --------------------------------------------------------------------------------


def _credit_run(com: Community, informer: int) -> tuple[int, InspectionResult]:
    post_id, _, (result,) = com.run(POST, [(informer, "not_misleading", RELEVANT, 1)])
    return post_id, result


def test_strangers_are_trusted_on_credit_until_their_notes_are_reviewed(env: Env) -> None:
    """Two strangers' notes awaiting review use up the default credit: a third stranger's note gets
    no weight and its whole bid back, and each review (a resolution, enough ratings, a moderator's
    unpublish) frees one place. An informer with a record is weighed by it, credit or not."""
    com, db = new_community(env), env.db
    strangers = [com.informer("stranger") for _ in range(5)]
    assert env.judge.params.newcomer_credit == 2  # the built-in default
    (first_post, first), (_, second) = (_credit_run(com, s) for s in strangers[:2])
    assert first.bought and second.bought
    assert credit.outstanding(db, com.id) == 2

    before = ledger.balance(db, ledger.wallet(strangers[2]))
    _, refused = _credit_run(com, strangers[2])
    assert not refused.bought and refused.reason == credit.NEWCOMER_CREDIT
    assert refused.p_after == refused.p_before  # no weight: the reader is where it was
    assert ledger.balance(db, ledger.wallet(strangers[2])) == before  # charged nothing in the end
    refused_market = db.execute("SELECT market_id FROM offers WHERE id = ?", [refused.offer_id]).fetchone()[0]
    assert refused.charge > 0 and rewards.charged(db, refused_market)[refused.offer_id] == 0
    assert ledger.check(db).ok

    market.resolve_post(db, first_post, "not_misleading")  # a moderator reviews the first note
    assert credit.outstanding(db, com.id) == 1
    _, readmitted = _credit_run(com, strangers[3])
    assert readmitted.bought and credit.outstanding(db, com.id) == 2
    _, proven = _credit_run(com, strangers[0])  # right once: weighed by its record, not on credit
    assert proven.bought and credit.outstanding(db, com.id) == 2

    raters = [com.informer("rater") for _ in range(credit.REVIEW_RATINGS)]
    _rate(db, second.offer_id, raters[:-1], True)
    assert credit.outstanding(db, com.id) == 2  # one rating short of what the scorer needs
    _rate(db, second.offer_id, raters[-1:], True)
    assert credit.outstanding(db, com.id) == 1  # readers reviewed it

    moderator = com.informer("moderator")
    community.grant(db, moderator, com.id, "moderator")
    reveal_id = db.execute("SELECT id FROM reveals WHERE offer_id = ?", [readmitted.offer_id]).fetchone()[0]
    moderation.unpublish(db, moderator, reveal_id, "off-topic")
    assert credit.outstanding(db, com.id) == 0
    _, last = _credit_run(com, strangers[4])
    assert last.bought


def test_a_reliability_cap_below_the_floor_is_refused() -> None:
    with pytest.raises(ValidationError, match="max_reliability"):
        LocalJudgeParams(max_reliability=0.65)


def test_a_newcomer_credit_below_one_note_is_refused() -> None:
    with pytest.raises(ValidationError, match="newcomer_credit"):
        LocalJudgeParams(newcomer_credit=0)


# --- reference support ------------------------------------------------------------------------------

SUPPORTED = "Council minutes from 3 May show the bus fare vote was postponed until next year."
REFERENCE = "The council minutes of 3 May show that the vote on bus fares was postponed until next year."


def test_a_matching_reference_passage_strengthens_a_note(env: Env, tmp_path: Path) -> None:
    from notebazaar.index.corpus import add_corpus_file

    a, b = env.judge.retriever.embedder.encode([SUPPORTED, REFERENCE])
    assert float(a @ b) > env.judge.params.support_threshold  # the passage really matches
    com = new_community(env)
    informer = com.informer("ref")
    (before,) = com.run(POST, [(informer, "not_misleading", SUPPORTED, 10_000)])[2]

    corpus = tmp_path / "refs.jsonl"
    lines = [
        {"text": REFERENCE, "title": "", "source": "https://example.org/minutes"},
        {"text": OFF_TOPIC, "source": "cookbook"},
    ]
    corpus.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    added = add_corpus_file(
        env.db, env.db_path, corpus, settings=env.settings, community_id=com.id, retriever=env.judge.retriever
    )
    assert added == 2
    (after,) = com.run(POST, [(informer, "not_misleading", SUPPORTED, 10_000)])[2]
    assert after.p_before == before.p_before
    assert -shift(after) > -shift(before) * 1.2 > 0, (before, after)
    verdict = env.judge.inspect(
        PostView(10**6 + 2, com.id, POST), Context(), NoteView(1, informer, "not_misleading", SUPPORTED), 0.5
    )
    assert verdict.extra["support"] == 1.0
    # An off-topic note is not helped by the corpus (relevance gates support).
    off = env.judge.inspect(
        PostView(10**6 + 2, com.id, POST), Context(), NoteView(2, informer, "misleading", OFF_TOPIC), 0.5
    )
    assert off.p_after == pytest.approx(0.5, abs=0.02)


# --- the injection rule -----------------------------------------------------------------------------


def _variants() -> list[Any]:
    cases = []
    for row in INJECTIONS:
        for variant in ("raw", "post_then_injection", "padded_with_post"):
            cases.append(pytest.param(row, variant, id=f"{row['id']}-{variant}"))
    return cases


def _injected(row: dict[str, Any], variant: str) -> str:
    if variant == "post_then_injection":
        return f"{POST}\n{row['text']}"
    if variant == "padded_with_post":
        return f"{row['text']} {' '.join([POST] * 3)}"
    return str(row["text"])


@pytest.fixture(scope="module")
def injection_community(env: Env) -> Community:
    return new_community(env)


def test_the_irrelevant_control_is_not_bought_but_a_relevant_note_is(injection_community: Community) -> None:
    """The comparison below is not blind: at price 1 a relevant note is bought, an irrelevant one is not."""
    informer = injection_community.informer("control")
    for classification in ("misleading", "not_misleading"):
        (relevant,) = injection_community.run(POST, [(informer, classification, RELEVANT, 1)])[2]
        (irrelevant,) = injection_community.run(POST, [(informer, classification, OFF_TOPIC, 1)])[2]
        assert relevant.bought and not irrelevant.bought


@pytest.mark.parametrize(("row", "variant"), _variants())
def test_no_injection_is_bought_where_an_irrelevant_note_would_not_be(
    injection_community: Community, row: dict[str, Any], variant: str
) -> None:
    com = injection_community
    informer = com.informer("inj")  # a newcomer: the same track record for both notes
    text = _injected(row, variant)
    classification = row["classification"]
    (injection,) = com.run(POST, [(informer, classification, text, 1)])[2]
    (irrelevant,) = com.run(POST, [(informer, classification, OFF_TOPIC, 1)])[2]
    assert injection.p_before == irrelevant.p_before
    assert not injection.bought or irrelevant.bought
    # In practice: an injection is worth nothing at all.
    assert not injection.bought and injection.p_after == injection.p_before, injection


def test_a_copy_of_the_post_with_an_unrelated_sentence_carries_no_weight(
    injection_community: Community,
) -> None:
    informer = injection_community.informer("echo")
    text = f"{POST}\nThanks for sharing this post about the zoo."
    (result,) = injection_community.run(POST, [(informer, "misleading", text, 1)])[2]
    assert abs(result.p_after - result.p_before) < 0.02 and not result.bought


# --- amnesia: prepare / forget ----------------------------------------------------------------------


class Spy:
    """Wraps the judge and records which notes' vectors it holds at each inspection."""

    def __init__(self, judge: LocalJudge) -> None:
        self.judge = judge
        self.name = judge.name
        self.held: list[set[int]] = []

    def prior(self, post: PostView, context: Context) -> float:
        return self.judge.prior(post, context)

    def prepare(self, post: PostView, notes: Any) -> None:
        self.judge.prepare(post, notes)

    def forget(self) -> None:
        self.judge.forget()

    def inspect(self, post: PostView, context: Context, note: NoteView, p_before: float) -> Any:
        self.held.append(set(self.judge._vectors))
        return self.judge.inspect(post, context, note, p_before)


def _second_market(db_path: Path, settings: Settings, first_notes: list[str]) -> tuple[Any, ...]:
    """A fresh database: a first market on one post with ``first_notes`` (none bought), then a second
    market on another post; returns what the judge made of the second market's note."""
    db = open_db(db_path)
    try:
        judge = make_judge(settings, db, kind="local")
        assert isinstance(judge, LocalJudge)
        spy = Spy(judge)
        com = community.create_community(db, "amnesia", settings=MARKET)
        funder = community.create_account(db, "funder")
        community.mint(db, funder, 10_000)
        community.fund_pool(db, com.id, funder, 10_000)
        informers = [community.create_account(db, f"i{i}") for i in range(4)]
        for informer in informers:
            community.mint(db, informer, 1_000)
        holder = Community(Env(db, db_path, settings, judge), com.id)
        if first_notes:
            offers = [(informers[i], "misleading", t, 10_000) for i, t in enumerate(first_notes)]
            _, _, first = holder.run("Bus fares in the city will double next month.", offers, judge=spy)
            assert len(first) == len(first_notes) and not any(r.bought for r in first)
            assert judge._vectors == {} and judge._post_vector is None
        _, market_id, (second,) = holder.run(
            POST, [(informers[3], "not_misleading", RELEVANT, 10_000)], judge=spy
        )
        assert judge._vectors == {} and judge._post_vector is None
        offer_ids = {r[0] for r in db.execute("SELECT id FROM offers WHERE market_id = ?", [market_id])}
        assert spy.held[-1] == offer_ids  # while inspecting, only this market's notes
        return second.p_before, second.p_after, second.value, second.bought
    finally:
        db.close()


def test_a_market_does_not_depend_on_the_notes_of_an_earlier_one(tmp_path: Path) -> None:
    settings = Settings()
    fresh = _second_market(tmp_path / "a" / "nb.db", settings, [])
    after_one = _second_market(
        tmp_path / "b" / "nb.db",
        settings,
        ["Fares will not double: the memo is a draft that was rejected.", RELEVANT],
    )
    after_other = _second_market(
        tmp_path / "c" / "nb.db",
        settings,
        ["The memo is authentic; the council confirmed the increase.", OFF_TOPIC, POST],
    )
    assert fresh == after_one == after_other


# --- sub-markets: the subject is a note on a post -----------------------------------------------------

PARENT = "Transit officials confirmed to reporters that the fare increase was approved unanimously."


def test_a_sub_market_doubts_a_note_as_much_as_its_authors_record_does(env: Env) -> None:
    com = new_community(env)
    newcomer = NoteView(7, com.informer("subject"), "misleading", PARENT)
    liar = NoteView(7, newcomer.informer_id, "misleading", PARENT, track=TrackRecord(right=0, wrong=6))
    subject = PostView(-(10**6 + 7), com.id, f"{POST}\n\n{PARENT}", "submarket", about=newcomer)
    q0 = env.judge.prior(subject, Context())
    assert q0 == pytest.approx(1 - env.judge.reliability(newcomer, com.id))
    doubted = PostView(-(10**6 + 8), com.id, subject.text, "submarket", about=liar)
    assert env.judge.prior(doubted, Context()) > q0 + 0.3  # a record of wrong notes: more doubt
    assert PARENT not in repr(subject) and POST not in repr(subject)  # the subject never reaches a log


def test_a_sub_note_may_speak_to_the_post_or_to_the_note_but_not_copy_either(env: Env) -> None:
    com = new_community(env)
    parent = NoteView(9, com.informer("subject"), "misleading", PARENT)
    subject = PostView(-(10**6 + 9), com.id, f"{POST}\n\n{PARENT}", "submarket", about=parent)
    checker = com.informer("checker")
    q0 = env.judge.prior(subject, Context())

    def moved(text: str) -> float:
        verdict = env.judge.inspect(subject, Context(), NoteView(10, checker, "misleading", text), q0)
        return logit(verdict.p_after) - logit(q0)

    assert moved(RELEVANT) > 0.5  # evidence on the post: the fare vote was postponed
    assert moved("Transit officials made no statement; no vote on fares has been approved.") > 0.5
    for empty in (PARENT, PARENT.upper(), OFF_TOPIC):
        assert abs(moved(empty)) < 0.05, empty
    env.judge.forget()
