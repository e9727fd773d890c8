"""The reader measured offline: does its best sentence hold the answer, next to what the bot picks today?

The reader comes in as a plain function from (question, sentence) pairs to scores, so this module
needs no torch. Two sets, neither ever trained on:

- SQuAD v1.1 dev, the `held-out` pages (bot.quality.reader_squad.SPLIT_RULE): rank every unit of
  the question's paragraph, and (every `every`-th question) every unit of its whole page; top-1 =
  the unit holding a gold answer offset ranks first. Baseline: the bundled bi-encoder's cosine.
- The news dev set (realtimeqa-2023, January-February 2023), the questions whose answer an article
  states (bot.quality.support): the candidate units are those of the passages the bot scores
  (`score_passages`, asked on the question's day); each unit's rank is its passage's rank had it
  been the quote. Figures: the answer in the reader's best unit over all of them and over the
  top-M by that rank, next to the bot's top quote and its top unit, and how often any of the M
  holds the answer (the most a reader could get).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bot.answer.answering import RERANK_WEIGHT, choose_quotes, read_candidates, score_candidates
from bot.answer.asking import Ask, parse_day
from bot.indexing.index import Index
from bot.models.encoder import Embedder
from bot.quality import reader_squad, support
from bot.quality.evaluation import EvalQuestion, contains_answer, load_questions
from bot.quality.reader_text import norm

Scorer = Callable[[Sequence[tuple[str, str]]], np.ndarray]
TOP_M = (4, 8, 16)


def _rate(hits: Sequence[bool]) -> float | None:
    return round(sum(hits) / len(hits), 4) if hits else None


def squad_figures(shared: Path, score: Scorer, embedder: Embedder | None = None, every: int = 10) -> dict[str, Any]:
    """Top-1 over the paragraph's units (every held-out question) and the page's (every `every`-th)."""
    questions, pages = reader_squad.held_out(shared)
    page_units = {
        page: [(p.id, n, p.text[s:e]) for p in paragraphs for n, (s, e) in enumerate(p.units)]
        for page, paragraphs in pages.items()
    }
    vectors: dict[str, np.ndarray] = {}
    if embedder is not None:
        texts = sorted({t for units in page_units.values() for _, _, t in units} | {q.question for q in questions})
        vectors = dict(zip(texts, embedder.encode(texts), strict=True))
    results: dict[str, list[bool]] = {
        "paragraph": [],
        "paragraph_cosine": [],
        "page": [],
        "page_answer": [],
        "page_cosine": [],
        "page_cosine_answer": [],
    }
    for number, q in enumerate(questions):
        units = [q.paragraph.text[s:e] for s, e in q.paragraph.units]
        results["paragraph"].append(int(np.argmax(score([(q.question, u) for u in units]))) in q.gold)
        if vectors:
            cosine = np.array([float(vectors[u] @ vectors[q.question]) for u in units])
            results["paragraph_cosine"].append(int(np.argmax(cosine)) in q.gold)
        if number % every:
            continue
        candidates = page_units[q.paragraph.article]
        gold = {i for i, (pid, n, _) in enumerate(candidates) if pid == q.paragraph.id and n in q.gold}
        answers = [norm(a) for a in q.answers if norm(a)]

        def holds(i: int, candidates: list[tuple[str, int, str]] = candidates, answers: list[str] = answers) -> bool:
            return any(a in norm(candidates[i][2]) for a in answers)

        best = int(np.argmax(score([(q.question, t) for _, _, t in candidates])))
        results["page"].append(best in gold)
        results["page_answer"].append(holds(best))
        if vectors:
            best = int(np.argmax(np.array([float(vectors[t] @ vectors[q.question]) for _, _, t in candidates])))
            results["page_cosine"].append(best in gold)
            results["page_cosine_answer"].append(holds(best))
    return {
        "questions": len(questions),
        "page_questions": len(results["page"]),
        "pages": len(pages),
        "paragraph_top1": _rate(results["paragraph"]),
        "paragraph_top1_cosine": _rate(results["paragraph_cosine"]),
        "page_top1": _rate(results["page"]),
        "page_top1_cosine": _rate(results["page_cosine"]),
        "page_answer_in_top1": _rate(results["page_answer"]),
        "page_answer_in_top1_cosine": _rate(results["page_cosine_answer"]),
    }


def candidate_units(index: Index, question: str, vector: np.ndarray, asked_on: str | None) -> tuple[list[int], str]:
    """The units the bot scores for `question`, best first by the bot's own rank, and its top quote."""
    ask = Ask(question, asked_on=parse_day(asked_on, "the question's date"))
    found = read_candidates(index, ask, vector)
    scored = score_candidates(index, found)
    if not scored:
        return [], ""
    rank: dict[int, float] = {}
    for s, reading in zip(scored, found.readings, strict=True):
        best = float(reading.scores[reading.best])
        for unit, score in zip(reading.units, reading.scores.tolist(), strict=True):
            # The passage's rank had this unit been its quote (the rank adds RERANK_WEIGHT x the quote's score).
            value = s.rank - RERANK_WEIGHT * (best - score)
            rank[unit] = max(rank.get(unit, -np.inf), value)
    top = choose_quotes(scored, 1)[0]
    quote = index.articles[top.article].text[top.start : top.end]
    return sorted(rank, key=lambda u: (-rank[u], u)), quote


def news_figures(
    index: Index,
    embedder: Embedder,
    qa: Path,
    score: Scorer,
    top_m: Sequence[int] = TOP_M,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The reader against the bot's sentence choice on the news questions labelled `stated`."""
    labels = support.packaged_labels() if labels is None else labels
    questions: list[EvalQuestion] = [q for q in load_questions(qa) if labels.get(q.id) == "stated"]
    hits: dict[str, list[bool]] = {"bot_quote": [], "bot_unit": [], "reader_all": [], "any_unit": []}
    for m in top_m:
        hits[f"reader_top{m}"], hits[f"any_top{m}"] = [], []
    counts: list[int] = []
    for q in questions:
        units, quote = candidate_units(index, q.question, embedder.encode([q.question])[0], q.date)
        texts = [index.span_text(*(int(x) for x in index.units[u])) for u in units]
        holds = [contains_answer(t, q) for t in texts]
        counts.append(len(units))
        reader = score([(q.question, t) for t in texts]) if texts else np.zeros(0)
        hits["bot_quote"].append(contains_answer(quote, q))
        hits["bot_unit"].append(bool(holds) and holds[0])
        hits["reader_all"].append(bool(holds) and holds[int(np.argmax(reader))])
        hits["any_unit"].append(any(holds))
        for m in top_m:
            hits[f"reader_top{m}"].append(bool(holds) and holds[int(np.argmax(reader[:m]))])
            hits[f"any_top{m}"].append(any(holds[:m]))
    return {
        "questions": len(questions),
        "mean_candidate_units": round(float(np.mean(counts)), 1) if counts else None,
        **{f"answer_in_{name}": _rate(values) for name, values in hits.items()},
    }
