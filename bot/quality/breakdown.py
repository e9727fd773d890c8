"""Where answers go wrong: figures per question type, the cause of each miss, and how well the
short answer span (`Quote.answer`) matches the gold answer.

Causes of a miss on an answerable question (the gold answer is not in an answered top quote):
`wrong passage` (the answer is not even in the top quote's passage), `wrong sentence` (it is in
the passage but the quote is another sentence), `declined` (the quote holds it and the bot
declined). Span figures follow SQuAD's scorer: exact match and token F1 after lowercasing and
dropping punctuation and articles, best over the gold answers; a question with no span scores 0.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bot.answer.answer_types import TYPES, question_type

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation + "‘’“”–—")


class _Question(Protocol):
    @property
    def question(self) -> str: ...
    @property
    def answers(self) -> tuple[str, ...]: ...
    @property
    def answerable(self) -> bool: ...


class _Outcome(Protocol):
    @property
    def question(self) -> _Question: ...
    @property
    def answered(self) -> bool: ...
    @property
    def top_quote(self) -> str: ...
    @property
    def top_passage(self) -> str: ...
    @property
    def span(self) -> str | None: ...


def squad_normalize(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: Sequence[str]) -> bool:
    return any(squad_normalize(prediction) == squad_normalize(g) for g in gold)


def token_f1(prediction: str, gold: Sequence[str]) -> float:
    best = 0.0
    predicted = squad_normalize(prediction).split()
    for answer in gold:
        expected = squad_normalize(answer).split()
        common = sum((Counter(predicted) & Counter(expected)).values())
        if common:
            precision, recall = common / len(predicted), common / len(expected)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def _rate(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def span_figures(outcomes: Sequence[_Outcome]) -> dict[str, float | None]:
    """Exact match and token F1 of the span over answerable questions with gold answers, and how
    often a span was given at all."""
    graded = [o for o in outcomes if o.question.answerable and o.question.answers]
    return {
        "span_given": _rate([o.span is not None for o in graded]),
        "span_exact_match": _rate([o.span is not None and exact_match(o.span, o.question.answers) for o in graded]),
        "span_f1": _rate([token_f1(o.span, o.question.answers) if o.span else 0.0 for o in graded]),
    }


def miss_cause(outcome: _Outcome, contains: Callable[[str, Any], bool]) -> str | None:
    """Why an answerable question was missed, or None when its answer is in an answered top quote."""
    q = outcome.question
    in_quote = contains(outcome.top_quote, q)
    if in_quote and outcome.answered:
        return None
    if in_quote:
        return "declined"
    if contains(outcome.top_passage, q):
        return "wrong sentence"
    return "wrong passage"


def by_type(outcomes: Sequence[_Outcome], contains: Callable[[str, Any], bool]) -> dict[str, dict[str, Any]]:
    """Per question type: answerable count, answer in the top quote, answered with it, and miss causes."""
    groups: dict[str, list[_Outcome]] = {t: [] for t in TYPES}
    for o in outcomes:
        if o.question.answerable:
            groups[question_type(o.question.question)].append(o)
    table: dict[str, dict[str, Any]] = {}
    for name, group in groups.items():
        if not group:
            continue
        causes = Counter(c for o in group if (c := miss_cause(o, contains)) is not None)
        table[name] = {
            "n": len(group),
            "answer_in_top_quote": _rate([contains(o.top_quote, o.question) for o in group]),
            "answered_with_answer": _rate([miss_cause(o, contains) is None for o in group]),
            "wrong_passage": causes["wrong passage"],
            "wrong_sentence": causes["wrong sentence"],
            "declined": causes["declined"],
        }
    return table


_TYPE_COLUMNS = ("answer_in_top_quote", "answered_with_answer", "wrong_passage", "wrong_sentence", "declined")


def format_by_type(results: dict[str, dict[str, Any]]) -> str:
    """Per set, mode and question type: n, answer in top quote, answered with it, miss causes."""
    header = ["set", "mode", "type", "n", "ans@top", "answered+ans", "wrong-passage", "wrong-sentence", "declined"]
    rows = [header]
    for set_name, by_mode in results.items():
        for mode, report in by_mode.items():
            if not isinstance(report, dict):
                continue
            for name, cells in (report.get("by_type") or {}).items():
                rows.append(
                    [set_name, mode, name, str(cells["n"])]
                    + ["—" if cells[k] is None else str(cells[k]) for k in _TYPE_COLUMNS]
                )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


TABLE_COLUMNS = (
    ("recall@1", "recall_at_1"),
    ("recall@5", "recall_at_5"),
    ("ans@top", "answer_in_top_quote"),
    ("answered+ans", "answered_with_answer"),
    ("words", "mean_top_quote_words"),
    ("span-EM", "span_exact_match"),
    ("span-F1", "span_f1"),
    ("stated", "stated"),
    ("ans@top stated", "stated_answer_in_top_quote"),
    ("answered+ans stated", "stated_answered_with_answer"),
    ("declined-ans", "declined_answerable"),
    ("abst-P", "abstention_precision"),
    ("abst-R", "abstention_recall"),
    ("q/s", "questions_per_second"),
)


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """A plain-text table: one row per set and mode."""
    header = ["set", "mode", "n", *(name for name, _ in TABLE_COLUMNS)]
    rows = [header]
    for set_name, by_mode in results.items():
        for mode, report in by_mode.items():
            if not isinstance(report, dict):
                continue
            cells = [set_name, mode, str(report["questions"])]
            cells += ["—" if report[key] is None else str(report[key]) for _, key in TABLE_COLUMNS]
            rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)
