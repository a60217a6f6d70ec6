"""The judge on data it has never seen, and saying what it cannot read: passages of long notes,
fitted and stored parameters (`judge fit`, `judge show`), the newcomers' record, the simulator's
`--resolution none` and mislabelers, failures reported by simulate and eval (CLI and console)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from notebazaar.cli import main
from notebazaar.index.embed import get_embedder
from notebazaar.index.passages import budget_of, split_passages
from notebazaar.pipeline import community, market
from notebazaar.pipeline.claims import load_claims
from notebazaar.pipeline.config import Settings
from notebazaar.pipeline.db import open_db
from notebazaar.pipeline.judge import params
from notebazaar.pipeline.records import newcomer_track_record
from notebazaar.pipeline.simulate import excerpt
from tests.conftest import CLAIMS

pytestmark = pytest.mark.usefixtures("quiet_logging_and_one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def claims_file(folder: Path, rows: list[dict]) -> Path:
    path = folder / "claims.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def longform(folder: Path, limit: int = 40, words: tuple[int, int] = (150, 450)) -> Path:
    """The stand-in set of another shape (tools/longform_claims.py) on the first claims."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("longform_claims", ROOT / "tools" / "longform_claims.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = [json.loads(x) for x in CLAIMS.read_text(encoding="utf-8").splitlines()[: 4 * limit]]
    out = module.convert(rows, seed=0, misleading_share=2 / 3, half="all", words=words)
    return claims_file(folder, out[:limit])


# --- passages --------------------------------------------------------------------------------------


def test_a_long_text_is_cut_into_passages_the_model_reads_whole() -> None:
    embedder = get_embedder()
    sentence = "Arctic sea ice extent in September has declined by about thirteen percent per decade."
    long_text = " ".join([sentence] * 40)
    short, long = split_passages(embedder, ["A short note.", long_text])
    assert short == ["A short note."]
    assert len(long) > 1 and all(n <= budget_of(embedder) for n in embedder.count_tokens(long))
    assert " ".join(long) == long_text  # nothing dropped, nothing added


def test_evidence_buried_in_a_long_page_still_counts(tmp_path: Path) -> None:
    """The deciding sentence after 300 words of filler: read as passages, the note is relevant."""
    from notebazaar.index.retrieval import Retriever
    from notebazaar.pipeline.judge import Context, NoteView, PostView
    from notebazaar.pipeline.judge.local import LocalJudge

    db = open_db(tmp_path / "state" / "x.db")
    judge = LocalJudge(db, Retriever(db, tmp_path / "state", Settings().index))
    post = PostView(1, 1, "The Arctic has more sea ice every year since 2012.")
    filler = " ".join(
        f"The town hall held meeting number {i} about parking and bus routes." for i in range(30)
    )
    buried = NoteView(1, 2, "misleading", filler + " Arctic sea ice keeps declining; 2012 was a record low.")
    judge.prepare(post, [buried])
    verdict = judge.inspect(post, Context(), buried, 0.5)
    judge.forget()
    assert verdict.extra["relevance"] > 0.5
    db.close()


def test_an_informer_excerpts_a_source_too_long_for_a_note() -> None:
    page = " ".join(f"Sentence {i} is about the weather in town." for i in range(200))
    page += " Arctic sea ice declined to a record low in 2012. " + page
    kept = excerpt(page, "Arctic sea ice grows every year since 2012", 500)
    assert len(kept) <= 500 and "Arctic sea ice declined to a record low in 2012." in kept


# --- fitted parameters ------------------------------------------------------------------------------


@pytest.mark.slow
def test_judge_fit_stores_the_parameters_and_judge_show_reads_them(tmp_path: Path) -> None:
    db_path = tmp_path / "live" / "x.db"
    fitted = invoke("judge", "fit", "--claims", str(CLAIMS), "--db", str(db_path), "--limit", "60")
    assert fitted.exit_code == 0, fitted.output
    out = json.loads(fitted.stdout)
    report = out["fit_report"]
    assert (
        report["claims"] == 60
        and report["deciding_evidence"] > 0
        and 0.5 < report["auc_deciding_vs_off_topic"] <= 1
    )
    p = out["params"]
    assert p["rel_floor"] == pytest.approx(report["off_topic_similarity"]["q50"], abs=0.2)
    assert p["rel_floor"] < p["rel_full"]

    shown = invoke("judge", "show", "--db", str(db_path))
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["source"] == "database" and data["params"] == p and data["fitted_on"] == CLAIMS.name
    assert "does NOT read stance" in data["reads"]["local"]

    # A community's own parameters win over the database's; unknown communities are refused.
    db = open_db(db_path)
    community.create_community(db, "town", settings=Settings().market)
    db.close()
    assert invoke("judge", "show", "--db", str(db_path), "--community", "town").exit_code == 0
    bad = invoke("judge", "fit", "--claims", str(CLAIMS), "--db", str(db_path), "--community", "nowhere")
    assert bad.exit_code == 1 and "Error:" in bad.output


def test_judge_set_changes_only_the_named_parameters_and_refuses_bad_values(tmp_path: Path) -> None:
    db_path = tmp_path / "set.db"
    db = open_db(db_path)
    town = community.create_community(db, "town", settings=Settings().market)
    fitted = params.replace(params.DEFAULTS, rel_floor=0.41, rel_full=0.66)
    params.store(db, town.id, fitted, fitted_on="town.jsonl", fit_report={"claims": 3})
    db.close()

    done = invoke("judge", "set", "newcomer_credit=5", "--community", "town", "--db", str(db_path))
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["changed"] == ["newcomer_credit"]
    db = open_db(db_path)
    found = params.stored(db, town.id)
    assert found.params == params.replace(fitted, newcomer_credit=5)  # the fit is kept
    assert (found.source, found.fitted_on, found.fit_report) == ("community", "town.jsonl", {"claims": 3})
    assert params.stored(db, None).source == "built-in"  # the database's parameters untouched
    db.close()

    for bad, message in (
        ("newcomer_credit=0", "newcomer_credit, a whole number of notes, >= 1"),
        ("newcomer_credit=2.5", "newcomer_credit must be a whole number, not '2.5'"),
        ("rel_floor=nan", "rel_floor must be a number, not 'nan'"),
        ("rel_floor=0.9", "rel_floor < rel_full"),
        ("bogus=1", "no judge parameter 'bogus'"),
        ("newcomer_credit", "'newcomer_credit' is not KEY=VALUE"),
    ):
        refused = invoke("judge", "set", bad, "--community", "town", "--db", str(db_path))
        assert refused.exit_code == 1 and message in refused.output, refused.output
        assert "Traceback" not in refused.output
    db = open_db(db_path)
    assert params.stored(db, town.id).params.newcomer_credit == 5  # nothing changed by a refusal
    db.close()


@pytest.mark.slow
def test_fitting_moves_with_the_shape_of_the_evidence(tmp_path: Path) -> None:
    embedder = get_embedder()
    short, _ = params.fit(load_claims(CLAIMS, limit=20), embedder)
    long, report = params.fit(load_claims(longform(tmp_path, 12, (150, 250))), embedder)
    # A long page is read sentence by sentence and scores its best sentence: off-topic pages too,
    # so the floor rises with the length of the evidence (fitted, not carried over).
    assert long.rel_floor > short.rel_floor + 0.05
    assert report["deciding_evidence"] > 0


def test_a_fitted_community_is_judged_with_its_own_parameters(tmp_path: Path) -> None:
    from notebazaar.index.retrieval import Retriever
    from notebazaar.pipeline.judge.local import LocalJudge

    db = open_db(tmp_path / "state" / "x.db")
    com = community.create_community(db, "town", settings=Settings().market)
    other = community.create_community(db, "city", settings=Settings().market)
    mine = params.replace(params.DEFAULTS, rel_floor=0.1, rel_full=0.2)
    params.store(db, com.id, mine, fitted_on="t.jsonl", fit_report={})
    judge = LocalJudge(db, Retriever(db, tmp_path / "state", Settings().index))
    assert judge._load_params(com.id) == mine
    assert judge._load_params(other.id) == params.DEFAULTS
    assert params.stored(db, other.id).source == "built-in"
    db.close()


def test_bad_claim_files_are_refused_by_fit(tmp_path: Path) -> None:
    no_deciding = claims_file(
        tmp_path,
        [
            {
                "id": f"c{i}",
                "post": "p",
                "label": "accurate",
                "evidence": [{"text": "t", "stance": "irrelevant"}],
            }
            for i in range(3)
        ],
    )
    result = invoke("judge", "fit", "--claims", str(no_deciding), "--db", str(tmp_path / "x.db"))
    assert result.exit_code == 1 and "no supporting or refuting evidence" in result.output


# --- newcomers -------------------------------------------------------------------------------------


def test_the_newcomers_record_counts_each_informers_first_note_only(tmp_path: Path) -> None:
    db = open_db(tmp_path / "state" / "x.db")
    com = community.create_community(db, "town", settings=Settings().market)
    funder = community.create_account(db, "funder")
    community.mint(db, funder, 10_000, key="m")
    community.fund_pool(db, com.id, funder, 5_000, key="f")
    veteran, stranger = community.create_account(db, "veteran"), community.create_account(db, "stranger")
    for who in (veteran, stranger):
        community.mint(db, who, 1_000, key=f"m{who}")
    from notebazaar.pipeline.judge.simple import SimpleJudge
    from notebazaar.pipeline.settlement import close_market

    def bought(informer: int, classification: str, resolution: str) -> None:
        post = community.add_post(db, com.id, "The bridge on Main Street was closed for repairs in 2023.")
        market_id = market.open_market(db, post)
        market.submit_offer(
            db,
            market_id,
            informer,
            classification=classification,
            text="The city's notice of 2023 lists the Main Street bridge closure for repairs.",
            bid=5,
            price=1,
        )
        close_market(db, market_id, SimpleJudge(), force=True)
        market.resolve_post(db, post, resolution)

    bought(veteran, "not_misleading", "not_misleading")  # veteran's first: right
    bought(veteran, "misleading", "not_misleading")  # a later wrong one: not a newcomer's
    bought(stranger, "misleading", "not_misleading")  # stranger's first: wrong
    record = newcomer_track_record(db, com.id)
    assert (record.right, record.wrong) == (1, 1)
    db.close()


# --- the simulator ----------------------------------------------------------------------------------


def simulate(folder: Path, *extra: str, claims: Path = CLAIMS, limit: str = "12") -> tuple[Result, dict]:
    out = folder / "report.json"
    result = invoke(
        "simulate",
        "--claims",
        str(claims),
        "--db",
        str(folder / "sim.db"),
        "--limit",
        limit,
        "--out",
        str(out),
        *extra,
    )
    return result, (json.loads(out.read_text()) if out.exists() else {})


def test_resolution_none_never_resolves_a_post(tmp_path: Path) -> None:
    result, report = simulate(tmp_path, "--resolution", "none")
    assert result.exit_code == 0, result.output
    assert report["resolution"] == "none"
    with sqlite3.connect(tmp_path / "sim.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM posts WHERE resolution IS NOT NULL").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM markets WHERE status = 'settled'").fetchone()[0] >= 12
        # Nobody reviews: after the two strangers' notes of the newcomer credit, strangers get no
        # weight, and every offer refused for want of credit has its attention charge given back.
        assert conn.execute("SELECT COUNT(*) FROM reveals").fetchone()[0] <= 2
        assert conn.execute("SELECT COUNT(*) FROM credit_notes").fetchone()[0] <= 2
        refused = conn.execute(
            "SELECT COUNT(*) FROM inspections WHERE reason = 'newcomer_credit'"
        ).fetchone()[0]
        refunded = conn.execute(
            "SELECT COUNT(*) FROM ledger_transactions WHERE kind = 'refund_charge'"
        ).fetchone()[0]
    assert refused > 0 and report["no_weight"]["newcomer_credit"] == refused
    assert refunded == refused
    assert report["coverage"] <= 2 / 12 and report["logloss_final"] <= report["logloss_prior"] + 0.05
    assert (
        invoke(
            "simulate",
            "--claims",
            str(CLAIMS),
            "--db",
            str(tmp_path / "b.db"),
            "--out",
            str(tmp_path / "b.json"),
            "--resolution",
            "sometimes",
        ).exit_code
        == 2
    )


def test_mislabelers_offer_real_evidence_the_wrong_way_from_fresh_accounts(tmp_path: Path) -> None:
    result, report = simulate(tmp_path, limit="20")
    assert result.exit_code == 0, result.output
    assert "mislabeler" in report["profit_per_offer"] and 0 <= report["mislabeled_bought_share"] <= 1
    with sqlite3.connect(tmp_path / "sim.db") as conn:
        accounts = conn.execute("SELECT handle FROM accounts WHERE handle LIKE 'sim_mislabeler_%'").fetchall()
        offers = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT o.informer_id) FROM offers o"
            " JOIN accounts a ON a.id = o.informer_id WHERE a.handle LIKE 'sim_mislabeler_%'"
        ).fetchone()
    assert accounts and offers[0] == offers[1] == len(accounts)  # one account per offer


@pytest.mark.slow
def test_long_evidence_of_another_shape_is_simulated(tmp_path: Path) -> None:
    result, report = simulate(tmp_path, claims=longform(tmp_path, 20), limit="20")
    assert result.exit_code == 0, result.output
    assert report["claims"] == 20 and report["judge_errors"] == {}


def test_a_judge_that_fails_every_call_is_reported_as_such(tmp_path: Path) -> None:
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI() as server:
        url = server.base_url  # nothing listens once it stops
    env = {"NOTEBAZAAR_JUDGE__OPENAI__BASE_URL": url, "NOTEBAZAAR_JUDGE__OPENAI__MAX_RETRIES": "0"}
    out = tmp_path / "sim.json"
    result = invoke(
        "simulate",
        "--claims",
        str(CLAIMS),
        "--db",
        str(tmp_path / "sim.db"),
        "--limit",
        "3",
        "--judge",
        "openai",
        "--out",
        str(out),
        env=env,
    )
    assert result.exit_code == 1
    assert "the judge failed every one of its" in result.output and "connection_error" in result.output
    report = json.loads(out.read_text())
    assert (
        report["judge_errors"]["connection_error"] > 0
        and report["judge_errors"]["prior:connection_error"] == 3
    )
    assert sum(report["judge_errors"].values()) == report["judge_calls"]

    live = tmp_path / "live" / "x.db"
    open_db(live).close()
    evaluated = invoke(
        "eval",
        "--claims",
        str(CLAIMS),
        "--db",
        str(live),
        "--prompt",
        "v1",
        "--judge",
        "openai",
        "--limit",
        "2",
        "--out",
        str(tmp_path / "eval.json"),
        env=env,
    )
    assert evaluated.exit_code == 1 and "the judge failed every one of its" in evaluated.output


def test_a_long_reference_passage_is_stored_as_passages_the_model_reads_whole(tmp_path: Path) -> None:
    from notebazaar.index.corpus import add_corpus_file

    text = " ".join(
        f"The snow and ice data center reported the sea ice minimum of {1990 + i}." for i in range(30)
    )
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"text": text, "title": "NSIDC", "source": "s"}) + "\n")
    db_path = tmp_path / "state" / "x.db"
    db = open_db(db_path)
    added = add_corpus_file(db, db_path, corpus, settings=Settings())
    rows = [r[0] for r in db.execute("SELECT text FROM documents WHERE kind = 'reference'")]
    titles = {r[0] for r in db.execute("SELECT title FROM documents WHERE kind = 'reference'")}
    db.close()
    embedder = get_embedder()
    assert added == len(rows) > 1 and titles == {"NSIDC"}
    assert max(embedder.count_tokens(rows)) <= budget_of(embedder)
