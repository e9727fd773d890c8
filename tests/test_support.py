"""Which answerable questions the articles state: the label file, and the figures over those questions."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

from bot.errors import BotError
from bot.quality.evaluation import EvalQuestion, Outcome, load_questions, summarize
from bot.quality.support import SUPPORT, load_support, packaged_labels, with_support


def labelled(id: str, support: str | None, answerable: bool = True) -> EvalQuestion:
    return EvalQuestion(
        id,
        f"Which harbour did the Velmora ferry reach ({id})?",
        ("Port Quill",),
        None,
        None,
        answerable,
        support=support,
    )


def test_figures_count_only_the_stated_questions() -> None:
    outcomes = [
        Outcome(labelled("a", "stated"), True, (), "The Velmora ferry reached Port Quill at dawn."),  # stated, answered
        Outcome(labelled("b", "stated"), False, (), "The ferry reached Port Quill late."),  # stated, declined
        Outcome(labelled("c", "stated"), True, (), "The ferry left on time."),  # stated, missed
        Outcome(labelled("d", "absent"), True, (), "Port Quill"),  # no article answers it: not counted
        Outcome(labelled("e", "partly"), True, (), "nothing"),
        Outcome(labelled("f", None), True, (), "Port Quill"),  # unlabelled
        Outcome(labelled("g", "stated", answerable=False), False, (), ""),  # only answerable ones count
    ]
    report = summarize("product", outcomes, seconds=1.0)
    assert report.stated == 3
    assert report.stated_answer_in_top_quote == round(2 / 3, 4)
    assert report.stated_answered_with_answer == round(1 / 3, 4)
    assert report.answer_in_top_quote == round(4 / 6, 4)  # the figure over all answerable questions is unchanged


def test_figures_are_absent_without_labels() -> None:
    report = summarize("bm25", [Outcome(labelled("a", None), True, (), "Port Quill")], seconds=1.0)
    assert (report.stated, report.stated_answer_in_top_quote, report.stated_answered_with_answer) == (None, None, None)


def test_labels_come_from_a_question_line_or_the_label_file(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    rows = [
        {"id": "x1", "question": "Where?", "answers": ["Port Quill"], "support": "partly"},
        {"id": "x2", "question": "When?"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    questions = with_support(load_questions(path), {"x1": "absent", "x2": "stated", "x3": "stated"})
    # A label in the question file wins; the file labels the rest by id.
    assert [q.support for q in questions] == ["partly", "stated"]
    path.write_text(json.dumps({"id": "x1", "question": "Where?", "support": "maybe"}) + "\n", encoding="utf-8")
    with pytest.raises(BotError, match=r"qa.jsonl:1: .*support must be one of stated, partly, absent"):
        load_questions(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id\tsupport\nq1\tstated\nq2\tsure\n", r"labels.tsv:3: expected 'id<TAB>stated\|partly\|absent'"),
        ("q1\tstated\nq1\tabsent\n", r"labels.tsv:2: question 'q1' is listed twice"),
        ("q1 stated\n", r"labels.tsv:1: expected"),
    ],
)
def test_a_bad_label_file_names_its_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "labels.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BotError, match=message):
        load_support(path)
    with pytest.raises(BotError, match="cannot read"):
        load_support(tmp_path / "missing.tsv")


def test_the_packaged_labels_cover_the_news_set_once_each() -> None:
    labels = packaged_labels()
    # The 189 questions of realtimeqa-2023 (8 weeks) that its build marks answerable.
    assert len(labels) == 189
    assert set(labels.values()) == set(SUPPORT)
    assert Counter(labels.values()) == {"stated": 104, "absent": 69, "partly": 16}
    # Ids are RealTime QA's: the quiz date, then the question's number in that quiz.
    assert all(id[:4] == "2023" and id[8] == "_" for id in labels)


def test_with_support_keeps_questions_it_has_no_label_for() -> None:
    plain = EvalQuestion("q", "?")
    assert with_support([plain], {}) == [plain]
    assert with_support([plain], {"q": "stated"}) == [dataclasses.replace(plain, support="stated")]
