"""The writer's learning core without HTTP: the bandit learns from rewards and its fixed twin does
not, both start from the same choices, the log is the state, and the preference export is in the
dataset formats TRL's trainers document."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from notebazaar.pipeline.sealing import NoteContent, commitment
from notebazaar.writer import choices
from notebazaar.writer.bandit import LinUCB
from notebazaar.writer.choices import Candidate, MarketContext
from notebazaar.writer.core import Writer
from notebazaar.writer.log import StateError, WriterLog
from notebazaar.writer.preferences import export_preferences

# TRL's documented dataset types (huggingface.co/docs/trl, "Dataset formats and types"): a standard
# preference example with an explicit prompt, read by DPOTrainer and RewardTrainer; a standard
# unpaired-preference (prompt-completion with a boolean label) example, read by KTOTrainer.
TRL_PREFERENCE = {"prompt", "chosen", "rejected"}
TRL_UNPAIRED_PREFERENCE = {"prompt", "completion", "label"}

MARKET = MarketContext(1, 1, "Sea ice grows every year", 4, 2, 200, 80, 3)


class FixedSource:
    """Two candidates, always the same: the first close to the post, the second less so."""

    def candidates(self, post_text: str) -> list[Candidate]:
        return [
            Candidate("Sea ice has declined since 1979.", ("nsidc",), 0.8, "a"),
            Candidate("Penguins live in the south.", ("zoo",), 0.3, "b"),
        ]


def _receipt(choice: choices.Choice, offer_id: int, salt: str = "00ff") -> dict[str, object]:
    content = NoteContent(choice.arm.classification, choice.candidate.text, choice.candidate.sources)
    return {"offer_id": offer_id, "commitment": commitment(content, salt), "salt": salt}


def test_linucb_learns_which_arm_pays_and_a_fixed_twin_never_does() -> None:
    arms = np.eye(3)
    learner, twin = LinUCB(3, alpha=3.0), LinUCB(3, alpha=3.0, learning=False)
    assert np.argmax(learner.scores(arms)) == np.argmax(twin.scores(arms))  # same first choice
    rng = np.random.default_rng(0)
    payoffs = np.array([-2.0, 1.0, 5.0])
    for _ in range(200):
        arm = int(np.argmax(learner.scores(arms)))
        learner.update(arms[arm], payoffs[arm] + rng.normal())
        twin.update(arms[arm], payoffs[arm])
    assert int(np.argmax(learner.scores(arms))) == 2
    assert learner.theta[2] == pytest.approx(5, abs=0.5)  # the arm it kept pulling is well estimated
    assert twin.updates == 0 and np.allclose(twin.theta, 0)
    with pytest.raises(ValueError, match="features"):
        learner.update([1.0, 2.0], 1.0)


def test_the_starting_policy_and_the_twin_make_the_same_first_choices() -> None:
    learning = Writer(FixedSource(), WriterLog(None), learning=True)
    fixed = Writer(FixedSource(), WriterLog(None), learning=False)
    first = learning.choose(MARKET)
    assert [c.arm for c in first] == [c.arm for c in fixed.choose(MARKET)]
    arm = first[0].arm
    # The prior: best candidate, its negation cue's classification ("declined" has none: not
    # misleading), a middle bid (reserve + 6) and a middle price (4% of b = 200).
    assert (arm.rank, arm.classification, arm.bid_level, arm.price_level) == (0, "not_misleading", 2, 1)
    assert (first[0].bid, first[0].price) == (8, 8)


def test_the_learner_moves_off_a_losing_choice_and_the_log_is_its_state(tmp_path: Path) -> None:
    log = WriterLog(tmp_path / "state")
    learning = Writer(FixedSource(), log)
    fixed = Writer(FixedSource(), WriterLog(None), learning=False)
    start = learning.choose(MARKET)[0].arm
    for n in range(1, 30):
        picked = learning.choose(MARKET)
        if not picked:
            break
        choice = picked[0]
        learning.placed(MARKET, choice, _receipt(choice, n))
        # The market: every offer inspected and charged its bid; never bought.
        row = {"offer_id": n, "commitment": _receipt(choice, n)["commitment"], "final": True}
        learning.learn(
            [
                row
                | {
                    "outcome": "worth_less_than_price",
                    "status": None,
                    "paid": 0,
                    "charged": choice.bid,
                    "reward": -choice.bid,
                }
            ]
        )
    assert learning.choose(MARKET) == [] or learning.choose(MARKET)[0].arm != start
    assert fixed.choose(MARKET)[0].arm == start  # the twin keeps its first choice
    # Rebuilt from the log alone, the bandit is the same.
    again = Writer(FixedSource(), WriterLog(tmp_path / "state"))
    assert np.allclose(again.bandit.theta, learning.bandit.theta)
    assert again.bandit.updates == learning.bandit.updates > 0


def test_the_log_checks_commitments_and_belongs_to_one_account(tmp_path: Path) -> None:
    log = WriterLog(tmp_path)
    writer = Writer(FixedSource(), log)
    choice = writer.choose(MARKET)[0]
    with pytest.raises(StateError, match="not of our note"):
        writer.placed(MARKET, choice, {"offer_id": 1, "commitment": "0" * 64, "salt": "00"})
    writer.placed(MARKET, choice, _receipt(choice, 1))
    with pytest.raises(StateError, match="not ours"):
        writer.learn([{"offer_id": 1, "commitment": "f" * 64, "final": True, "reward": 3}])
    log.bind("account", "7")
    log.bind("account", "7")
    with pytest.raises(StateError, match="belongs to account '7'"):
        log.bind("account", "8")


def _logged(tmp_path: Path, notes: list[tuple[int, str, int]]) -> Path:
    """A writer log with (post id, note text, reward) rows, as a run would leave it."""
    state = tmp_path / "state"
    log = WriterLog(state)
    for offer_id, (post_id, text, reward) in enumerate(notes, start=1):
        market = MarketContext(post_id, post_id, f"post {post_id}", 3, 2, 100, 200, 0)
        arm = choices.Arm(0, "misleading", 0, 0)
        candidate = Candidate(text, ("https://example.org",), 0.5, "p")
        choice = choices.Choice(arm, candidate, 2, 4, tuple(choices.features(market, candidate, arm)))
        receipt = _receipt(choice, offer_id)
        log.record(receipt=receipt, market=market, choice=choice)
        log.apply(
            [
                {
                    "offer_id": offer_id,
                    "commitment": receipt["commitment"],
                    "final": True,
                    "outcome": "x",
                    "status": None,
                    "paid": max(reward, 0),
                    "charged": 0,
                    "reward": reward,
                }
            ]
        )
    log.close()
    return state


def test_preference_pairs_and_reward_records_in_trls_formats(tmp_path: Path) -> None:
    state = _logged(
        tmp_path, [(1, "good note", 9), (1, "bad note", -2), (1, "tie note", -2), (2, "alone", 4)]
    )
    out = tmp_path / "out" / "pairs.jsonl"
    assert export_preferences(state, out) == (2, 4)
    pairs = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert all(set(p) == TRL_PREFERENCE and all(isinstance(v, str) for v in p.values()) for p in pairs)
    assert all("post 1" in p["prompt"] for p in pairs)  # same post; a tie makes no pair
    assert {
        ("good note" in p["chosen"], "bad note" in p["rejected"] or "tie note" in p["rejected"])
        for p in pairs
    } == {(True, True)}
    records = [json.loads(x) for x in (out.parent / "rewards.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(set(r) >= TRL_UNPAIRED_PREFERENCE and isinstance(r["label"], bool) for r in records)
    assert [(r["reward"], r["label"]) for r in records] == [
        (9.0, True),
        (-2.0, False),
        (-2.0, False),
        (4.0, True),
    ]
    assert (
        "Classification: misleading" in records[0]["completion"] and "good note" in records[0]["completion"]
    )


def test_a_server_that_is_not_notebazaar_is_one_clear_error() -> None:
    """`--server` pointing at another service that answers 200 JSON: an ApiError naming the
    problem, not a KeyError traceback."""
    from unittest.mock import MagicMock

    import httpx2

    from notebazaar.writer.runner import ApiError, MarketApi, WriterRunner

    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, json={"status": "ok"}))
    api = MarketApi("http://127.0.0.1:9", "token", transport=transport)
    runner = WriterRunner(api, MagicMock())
    with pytest.raises(ApiError, match=r"unexpected answer from /api/me .*is --server a notebazaar server"):
        runner.start("http://127.0.0.1:9")
    refusing = httpx2.MockTransport(lambda request: httpx2.Response(400, json=["not", "a", "dict"]))
    with pytest.raises(ApiError, match="400"):
        MarketApi("http://127.0.0.1:9", "token", transport=refusing).me()
