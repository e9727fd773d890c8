"""Training and held-out examples for the span head: (question, sentence unit, answer offsets).

The span head (`bot.models.span_training`) reads a question and the sentence the bot quotes, and
marks the short answer inside it, or says the sentence holds none. Its examples come from the same
SQuAD pages as the reader's (`bot.quality.reader_squad`, SPLIT_RULE): the `train` pages teach it,
the `held-out` pages measure it, so no measured sentence was ever read in training.

- Answerable (SQuAD v1.1): the unit holding the first gold `answer_start`, with the answer's
  offsets in that unit. An answer that crosses the unit's end is left out.
- No answer (SQuAD v2's unanswerable questions, written to look answerable from their paragraph):
  the unit of their paragraph sharing most of the question's words, with no offsets. These teach
  it to leave a sentence unmarked rather than bold a wrong phrase.
- News (`bot train-spans --snapshot`, as the shipped head was trained): the answering sentences
  of the news training weeks (the reader's positives, `bot.quality.reader_news`), with the offsets
  of the quiz's answer (`news_span_examples`).

The examples hold article text: they are built in memory from the shared folder, never written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from bot.answer.answer_types import QuestionInfo, best_span
from bot.models.span_training import SpanExample
from bot.quality.breakdown import exact_match, token_f1
from bot.quality.reader_news import Snapshot, answer_of, question_pairs, training_questions
from bot.quality.reader_squad import V1, V2, Paragraph, paragraphs, read_jsonl, split_of, unit_at
from bot.quality.reader_text import Parts, overlap, pattern, raw_span, words


def _answerable(row: dict[str, object], paragraph: Paragraph) -> SpanExample | None:
    """The example of a v1.1 question: its first gold answer, inside one unit."""
    for gold in row.get("answer_starts") or []:  # type: ignore[attr-defined]
        start, answer = int(gold["start"]), str(gold["text"])
        number = unit_at(paragraph, start)
        if number is None:
            continue
        unit_start, unit_end = paragraph.units[number]
        if start + len(answer) > unit_end:
            continue
        answers = tuple(str(a) for a in row.get("answers") or [])  # type: ignore[attr-defined]
        return SpanExample(
            " ".join(str(row["question"]).split()),
            paragraph.text[unit_start:unit_end],
            start - unit_start,
            start - unit_start + len(answer),
            answers,
        )
    return None


def span_examples(
    shared: Path, split: str, parts: Parts | None = None, *, unanswerable: bool = True
) -> list[SpanExample]:
    """The examples of `split`'s pages (`train` or `held-out`): v1.1's answerable ones, then (with
    `unanswerable`) v2's questions that have no answer in their paragraph."""
    by_id = paragraphs(shared, parts)
    found: list[SpanExample] = []
    for row in read_jsonl(shared / V1 / "qa.jsonl", parts):
        paragraph = by_id.get(str(row.get("context_id")))
        if paragraph is None or split_of(paragraph.article) != split:
            continue
        example = _answerable(row, paragraph)
        if example is None:
            if parts is not None:
                parts.count(f"squad {split} questions without a one-unit answer")
            continue
        found.append(example)
    if not unanswerable:
        return found
    for row in read_jsonl(shared / V2 / "qa.jsonl", parts):
        paragraph = by_id.get(str(row.get("context_id")))
        if not row.get("is_impossible") or paragraph is None or split_of(paragraph.article) != split:
            continue
        question = " ".join(str(row["question"]).split())
        asked = words(question)
        start, end = max(paragraph.units, key=lambda u: overlap(words(paragraph.text[u[0] : u[1]]), asked))
        found.append(SpanExample(question, paragraph.text[start:end], None, None))
    return found


def news_span_examples(snapshot: Snapshot, seed: int, parts: Parts) -> list[SpanExample]:
    """The answering sentences of the news training weeks, with the answer's offsets: the reader's
    positives (`bot.quality.reader_news`: the evidence's sentence, the article sentences that state
    the answer; 2.2 a question)."""
    found: list[SpanExample] = []
    for row, units, pool in training_questions(snapshot, seed, parts):
        labelled = answer_of(row)
        answer = pattern(labelled[0]) if labelled else None
        if labelled is None or answer is None:
            continue
        positives = [p for p in question_pairs(row, units, pool, seed) if p.label == 1]
        for pair in positives:
            span = raw_span(pair.sentence, answer)
            if span is None:  # the reader's positive holds it only after normalising: not here
                parts.count("news positives whose answer has no offsets")
                continue
            found.append(SpanExample(pair.question, pair.sentence, span[0], span[1], (labelled[0],)))
    parts.count("news answering sentences", len(found))
    return found


Finder = Callable[[list[tuple[str, str]]], Sequence[tuple[int, int] | None]]


def measure(examples: Sequence[SpanExample], find: Finder) -> dict[str, float | int | None]:
    """How `find` marks the examples' sentences: over the answerable ones, exact match and token F1
    against every gold answer (SQuAD's normalisation) and how often it marks anything; over the
    others, how often it leaves the sentence unmarked."""
    marked = find([(e.question, e.text) for e in examples])
    exact, f1, given, unmarked = [], [], [], []
    for example, span in zip(examples, marked, strict=True):
        text = example.text[span[0] : span[1]] if span else ""
        if example.answerable:
            gold = example.answers or (example.text[example.start : example.end],)
            given.append(span is not None)
            exact.append(span is not None and exact_match(text, gold))
            f1.append(token_f1(text, gold) if span else 0.0)
        else:
            unmarked.append(span is None)

    def rate(values: Sequence[float]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    return {
        "answerable": len(exact),
        "exact_match": rate(exact),
        "f1": rate(f1),
        "marked": rate(given),
        "unanswerable": len(unmarked),
        "left_unmarked": rate(unmarked),
    }


def pattern_spans(pairs: list[tuple[str, str]]) -> list[tuple[int, int] | None]:
    """The baseline: the bot's pattern-based short answer (`bot.answer.answer_types.best_span`)."""
    found: list[tuple[int, int] | None] = []
    for question, text in pairs:
        span = best_span(text, QuestionInfo.of(question))
        found.append((span.start, span.end) if span else None)
    return found
