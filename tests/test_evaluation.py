"""`bot eval`: the metrics on hand-made outcomes, the cache, and the command end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.indexing.index import Index
from bot.quality.comparison import compare
from bot.quality.evaluation import (
    EvalQuestion,
    Outcome,
    cached_index,
    contains_answer,
    evaluate,
    load_questions,
    normalize,
    subsample,
    summarize,
)
from tests.conftest import SEED_CORPUS, FakeEmbedder, write_article
from tests.test_cli import bot


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Masayoshi   Son\n", "masayoshi son"),
        ("SoftBank’s “Stargate”", 'softbank\'s "stargate"'),
        ("2016–2020 — done", "2016-2020 - done"),
        ("ÉCOLE", "école"),
    ],
)
def test_normalize_folds_case_space_and_curly_quotes(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("quote", "answers", "evidence", "expected"),
    [
        ("Masayoshi Son, SoftBank’s Chairman", ("masayoshi  son",), None, True),
        ("SoftBank's chairman", ("SoftBank’s chairman",), None, True),
        ("The chairman is someone", ("Masayoshi Son",), None, False),
        ("will be the\nchairman of Stargate", (), "will be the chairman", True),
        ("anything", ("",), None, False),
    ],
)
def test_contains_answer_matches_answers_or_evidence(
    quote: str, answers: tuple[str, ...], evidence: str | None, expected: bool
) -> None:
    assert contains_answer(quote, EvalQuestion("q", "?", answers, evidence)) is expected


def q(id: str, answerable: bool = True, answers: tuple[str, ...] = ("gold",)) -> EvalQuestion:
    return EvalQuestion(id, f"question {id}?", answers if answerable else (), None, f"art-{id}", answerable)


def test_summarize_counts_recall_answers_words_and_abstention() -> None:
    outcomes = [
        Outcome(q("a"), True, ("art-a", "x"), "the gold answer"),  # hit@1, answer in quote
        Outcome(q("b"), True, ("x", "art-b"), "no luck here at all"),  # hit@5 only
        Outcome(q("c"), False, ("x", "y"), "gold"),  # declined though answerable
        Outcome(q("d", answerable=False), False, ("x",), "whatever"),  # rightly declined
        Outcome(q("e", answerable=False), True, ("x",), "whatever"),  # wrongly answered
    ]
    gold = {o.question.id: frozenset({f"art-{o.question.id}"}) for o in outcomes if o.question.answerable}
    report = summarize("product", outcomes, seconds=2.0, gold=gold)
    assert (report.answerable, report.unanswerable) == (3, 2)
    assert report.recall_at_1 == round(1 / 3, 4)
    assert report.recall_at_5 == round(2 / 3, 4)
    assert report.answer_in_top_quote == round(2 / 3, 4)
    assert report.answered_with_answer == round(1 / 3, 4)
    assert report.mean_top_quote_words == round((3 + 5 + 1) / 3, 1)
    assert report.declined_answerable == round(1 / 3, 4)
    assert report.abstention_precision == 0.5  # two declines, one of them right
    assert report.abstention_recall == 0.5  # two unanswerable, one declined
    assert report.questions_per_second == 2.5
    assert report.failures == ["b", "c", "e"]


def test_summarize_leaves_out_what_it_cannot_count() -> None:
    report = summarize("bm25", [Outcome(q("a"), True, (), "")], seconds=1.0)
    assert report.recall_at_1 is None and report.abstention_precision is None and report.abstention_recall is None
    assert report.answer_in_top_quote == 0.0


def test_load_questions_reads_both_shared_formats(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    lines = [
        {"id": "1", "question": "Who?", "answers": ["Son"], "evidence": "Son will", "answerable": True},
        {"id": "2", "question": "Rain?", "answers": [], "answerable": False},
        {"id": "3", "question": "Where?", "answers": [], "context_id": "p-1", "is_impossible": True},
        {"id": "4", "question": "When?", "answers": ["2016"], "context_id": "p-2", "is_impossible": False},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n", encoding="utf-8")
    questions = load_questions(path)
    assert [x.answerable for x in questions] == [True, False, False, True]
    assert questions[0].evidence == "Son will" and questions[3].context_id == "p-2"
    assert [x.id for x in subsample(questions, every=2)] == ["1", "3"]
    assert [x.id for x in subsample(questions, limit=1)] == ["1"]


def test_evaluate_runs_product_and_baselines_on_a_cached_index(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_article(
        corpus, "a.md", "Harbour bridge", "The harbour bridge opened in 1932. It carries eight lanes of traffic."
    )
    write_article(corpus, "b.md", "Mountain railway", "The mountain railway climbs 1,200 metres. Trains run hourly.")
    index = cached_index([corpus], fake_embedder, tmp_path / "cache")
    again = cached_index([corpus], fake_embedder, tmp_path / "cache")
    assert again.folder == index.folder  # built once, reused
    questions = [
        EvalQuestion("1", "When did the harbour bridge open?", ("1932",), None, "a"),
        EvalQuestion("2", "How high does the mountain railway climb?", ("1,200 metres",), None, "b"),
    ]
    for mode in ("product", "bm25", "dense"):
        report, outcomes = evaluate(index, fake_embedder, questions, mode, threshold=0.0)
        assert report.recall_at_1 == 1.0, mode
        assert report.answer_in_top_quote == 1.0, mode
        assert len(outcomes) == 2


@pytest.mark.slow
def test_bot_eval_reports_json_over_the_seed_corpus(tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    lines = [
        {"id": "1", "question": "Who will chair Stargate?", "answers": ["Masayoshi Son"], "answerable": True},
        {"id": "2", "question": "How do I bake sourdough bread?", "answers": [], "answerable": False},
    ]
    qa.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    result = bot("eval", str(qa), "--corpus", str(SEED_CORPUS), "--cache", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["questions"] == 2 and report["mode"] == "product"
    assert report["answer_in_top_quote"] == 1.0
    assert report["abstention_recall"] == 1.0 and report["abstention_precision"] == 1.0
    baseline = bot(
        "eval", str(qa), "--corpus", str(SEED_CORPUS), "--cache", str(tmp_path / "cache"), "--baseline", "bm25"
    )
    assert baseline.returncode == 0, baseline.stderr
    assert json.loads(baseline.stdout)["mode"] == "bm25"


def test_bot_eval_without_shared_sets_skips_cleanly(tmp_path: Path) -> None:
    result = bot("eval", "--shared", str(tmp_path / "absent"))
    assert result.returncode == 0 and "nothing to report" in result.stdout


def test_fit_logistic_recovers_a_known_rule() -> None:
    import numpy as np

    from bot.quality.calibration import fit_logistic

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 2))
    y = (rng.random(2000) < 1 / (1 + np.exp(-(3 * x[:, 0] - 1)))).astype(float)
    coefficients, bias = fit_logistic(x, y, l2=0.01)
    assert abs(coefficients[0] - 3) < 0.5 and abs(coefficients[1]) < 0.3 and abs(bias + 1) < 0.3


def bridge_and_railway(tmp_path: Path, fake_embedder: FakeEmbedder) -> Index:
    """Two made-up articles, the bridge's ("a") answering the calibration tests' question."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_article(corpus, "a.md", "Harbour bridge", "The harbour bridge opened in 1932.")
    write_article(corpus, "b.md", "Mountain railway", "The mountain railway climbs 1,200 metres.")
    return cached_index([corpus], fake_embedder, tmp_path / "cache")


def test_calibration_rows_add_a_hidden_source_negative(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    from bot.quality.calibration import calibration_rows

    index = bridge_and_railway(tmp_path, fake_embedder)
    questions = [
        EvalQuestion("1", "When did the harbour bridge open?", ("1932",), None, "a"),
        EvalQuestion("2", "Who won the chess final?", (), None, None, answerable=False),
    ]
    x, y = calibration_rows(index, fake_embedder, questions)
    assert x.shape == (3, 4) and list(y) == [1.0, 0.0, 0.0]
    assert x[0, 0] > x[1, 0]  # the hidden bridge article leaves a worse best sentence


def test_calibration_rows_follow_the_hand_read_support(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    from bot.quality.calibration import calibration_rows

    index = bridge_and_railway(tmp_path, fake_embedder)
    asked = "When did the harbour bridge open?"
    questions = [
        EvalQuestion("s", asked, ("1932",), None, "a", support="stated"),
        EvalQuestion("p", asked, ("1932",), None, "a", support="partly"),
        EvalQuestion("x", asked, ("1932",), None, "a", support="absent"),
    ]
    x, y = calibration_rows(index, fake_embedder, questions)
    # Stated: a positive and its hidden-source negative; partly: only the negative; absent: two negatives.
    assert list(y) == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert x[0].tolist() == x[3].tolist()  # the same question, the same quote: only the label differs


def test_threshold_sweep_shows_the_abstention_trade() -> None:
    outcomes = [
        Outcome(q("a"), True, ("art-a",), "gold", confidence=0.9),
        Outcome(q("b"), True, ("art-b",), "gold", confidence=0.45),
        Outcome(q("c", answerable=False), False, ("x",), "no", confidence=0.35),
        Outcome(q("d", answerable=False), True, ("x",), "no", confidence=0.65),
    ]
    sweep = summarize("product", outcomes, seconds=1.0).threshold_sweep
    assert sweep["0.3"] == [None, 0.0, 0.0]  # nothing declined
    assert sweep["0.5"] == [0.5, 0.5, 0.5]
    assert sweep["0.7"] == [round(2 / 3, 4), 1.0, 0.5]


def test_a_news_set_folder_is_reported_with_its_types_and_spans(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    from bot.quality.breakdown import format_by_type
    from bot.quality.suites import report_shared

    news = tmp_path / "news-2031"
    news.mkdir()
    articles = [
        {
            "id": "n1",
            "title": "Quarry Lane bridge approved",
            "date": "2031-01-04",
            "text": "The Quarry Lane bridge will cost US$42 M, the Brindlewood council said on Monday.",
        },
        {
            "id": "n2",
            "title": "Tollmere ferry",
            "date": "2031-01-05",
            "text": "The Tollmere ferry began running in 2019. Orla Quint chairs its board.",
        },
    ]
    questions = [
        {
            "id": "q1",
            "question": "How much will the Quarry Lane bridge cost?",
            "answers": ["US$42 M"],
            "date": "2031-01-06",
            "answerable": True,
            "context_ids": ["n1"],
        },
        {
            "id": "q2",
            "question": "When did the Tollmere ferry begin running?",
            "answers": ["2019"],
            "date": "2031-01-06",
            "answerable": True,
            "context_ids": ["n2"],
        },
        {
            "id": "q3",
            "question": "Which band won the song contest?",
            "answers": ["Lumen"],
            "date": "2031-01-06",
            "answerable": False,
            "context_ids": [],
        },
    ]
    (news / "articles.jsonl").write_text("".join(json.dumps(a) + "\n" for a in articles), encoding="utf-8")
    (news / "qa.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions), encoding="utf-8")
    absent = tmp_path / "no-shared"
    results = report_shared(absent, SEED_CORPUS, fake_embedder, tmp_path / "cache", news=news, threshold=0.0)
    assert set(results) == {"news-2031"}  # the shared sets are absent: skipped, the news set runs
    product, bm25 = results["news-2031"]["product"], results["news-2031"]["bm25"]
    assert product["answerable"] == 2 and product["recall_at_1"] == 1.0 and bm25["recall_at_1"] == 1.0
    assert set(product["by_type"]) == {"how much", "when"}
    assert product["span_exact_match"] == 1.0 and product["span_f1"] == 1.0
    table = format_by_type(results).splitlines()
    assert any(line.split()[:4] == ["news-2031", "product", "when", "1"] for line in table)
    assert report_shared(absent, SEED_CORPUS, fake_embedder, tmp_path / "cache", news=tmp_path / "nope") == {}


def test_two_reports_compare_question_by_question(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_article(corpus, "a.md", "Harbour bridge", "The harbour bridge opened in 1932. It carries eight lanes.")
    write_article(corpus, "b.md", "Mountain railway", "The mountain railway climbs 1,200 metres. Trains run hourly.")
    index = cached_index([corpus], fake_embedder, tmp_path / "cache")
    questions = [
        EvalQuestion("1", "When did the harbour bridge open?", ("1932",), None, "a"),
        EvalQuestion("2", "How high does the mountain railway climb?", ("1,200 metres",), None, "b"),
    ]
    report, outcomes = evaluate(index, fake_embedder, questions, "product", threshold=0.0)
    before = {"set": {"product": report.as_dict() | {"outcomes": [o.as_row() for o in outcomes]}}}
    assert compare(before, json.loads(json.dumps(before))).same
    after = json.loads(json.dumps(before))
    after["set"]["product"]["outcomes"][1]["top_quote"] = "Trains run hourly."
    after["set"]["product"]["answer_in_top_quote"] = 0.5
    changed = compare(before, after)
    assert not changed.same and changed.compared == 2
    assert [q[2] for q in changed.questions] == ["2"]
    assert [f[2] for f in changed.figures] == ["answer_in_top_quote"]
    (tmp_path / "before.json").write_text(json.dumps(before))
    (tmp_path / "after.json").write_text(json.dumps(after))
    script = Path(__file__).parent.parent / "bench" / "compare_reports.py"
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "before.json"), str(tmp_path / "after.json")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and "Trains run hourly." in run.stdout and "different" in run.stdout


def test_the_held_out_squad_set_asks_only_questions_of_pages_never_trained_on(tmp_path: Path) -> None:
    from bot.quality.reader_squad import split_of
    from bot.quality.suites import held_out_questions

    pages = [f"Page of Quillfield {n}" for n in range(8)]
    assert {split_of(p) for p in pages} == {"train", "held-out"}
    passages = tmp_path / "passages.jsonl"
    rows = [{"id": f"p{n}", "article": page, "text": "The ferry left at noon."} for n, page in enumerate(pages)]
    passages.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    questions = [EvalQuestion(f"q{n}", "When did the ferry leave?", ("noon",), context_id=f"p{n}") for n in range(8)]
    questions.append(EvalQuestion("q-none", "When did the ferry leave?", ("noon",)))
    kept = held_out_questions(questions, passages)
    assert [q.id for q in kept] == [f"q{n}" for n, page in enumerate(pages) if split_of(page) == "held-out"]
