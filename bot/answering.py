"""From a question to quotes: retrieve passages, pick the answering sentence(s), decide whether
the articles answer at all.

A quote is one sentence unit of a retrieved passage (two when the answer straddles them), cut
by offsets from the article, so it is verbatim by construction. Its `score` is a calibrated
confidence in [0, 1] (a logistic over dense and lexical evidence for the passage and the
sentence); below `threshold` the bot says it could not find the answer.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from bot.embedding import Embedder
from bot.errors import QuestionError
from bot.keyword import tokenize
from bot.records import Answer, ArticleRef, CopyRef, Quote
from bot.retrieval import hybrid_search
from bot.store import Index

MAX_QUESTION_CHARS = 1000
EMPTY_QUESTION = "The question is empty: ask something, e.g. “Who will chair Stargate?”"
MAX_K = 20
THRESHOLD = 0.5
# Logistic calibration of a quote's confidence; fitted on the dev sets (`bot eval --calibrate`).
CALIBRATION = {"sentence": 4.0, "passage": 4.0, "sentence_lexical": 1.5, "passage_lexical": 1.5, "bias": -2.5}
# A neighbour joins the quote when it adds this much of the question's weight.
EXTEND_GAIN = 0.25
SAME_ARTICLE_PENALTY = 0.15


@dataclass
class _Scored:
    passage: int
    article: int
    start: int
    end: int
    rank: float
    confidence: float


def validate_question(question: object, k: object = 3, max_chars: int = MAX_QUESTION_CHARS) -> str:
    """The question, trimmed, or a QuestionError that says what is wrong."""
    if not isinstance(question, str) or not question.strip():
        raise QuestionError(EMPTY_QUESTION)
    question = " ".join(question.split())
    if len(question) > max_chars:
        raise QuestionError(f"The question is {len(question)} characters long; the limit is {max_chars}.")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise QuestionError(f"k must be a whole number from 1 to {MAX_K}, got {k!r}.")
    return question


def _coverage(tokens: list[str], weights: dict[str, float]) -> float:
    """Share of the question's idf weight whose terms appear in `tokens`."""
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    present = set(tokens)
    return sum(w for t, w in weights.items() if t in present) / total


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _date_mask(index: Index, since: str | None, until: str | None) -> np.ndarray | None:
    if not since and not until:
        return None
    allowed = [
        n
        for n, article in enumerate(index.articles)
        if article.date
        and (not since or article.date[:10] >= since[:10])
        and (not until or article.date[:10] <= until[:10])
    ]
    return index.passage_mask(allowed)


def answer_with_vector(
    index: Index,
    question: str,
    vector: np.ndarray,
    k: int = 3,
    *,
    since: str | None = None,
    until: str | None = None,
    threshold: float = THRESHOLD,
    started: float | None = None,
) -> Answer:
    """Answer a validated question whose embedding is already computed (the batched path)."""
    started = time.perf_counter() if started is None else started
    tokens = tokenize(question)
    weights = index.keyword.idf(sorted(set(tokens)))
    candidates = hybrid_search(index, vector, question, max(2 * k, 8), _date_mask(index, since, until))
    scored: list[_Scored] = []
    for rank, candidate in enumerate(candidates):
        article_no, _, _, first, last = (int(x) for x in index.passages[candidate.passage])
        article = index.articles[article_no]
        unit_spans = [(int(index.units[u, 1]), int(index.units[u, 2])) for u in range(first, last)]
        unit_tokens = [tokenize(article.text[s:e]) for s, e in unit_spans]
        dense = np.asarray(index.unit_vectors[first:last], dtype=np.float32) @ vector.astype(np.float32)
        lexical = [_coverage(t, weights) for t in unit_tokens]
        best = int(np.argmax(dense + np.asarray(lexical)))
        lo = hi = best
        # Extend to a neighbour when together they hold clearly more of the question.
        for neighbour in (best - 1, best + 1):
            if 0 <= neighbour < len(unit_spans) and lexical[best] < 0.5 and dense[neighbour] >= dense[best] - 0.1:
                joined = _coverage(unit_tokens[best] + unit_tokens[neighbour], weights)
                if joined - lexical[best] >= EXTEND_GAIN and joined > lexical[neighbour]:
                    lo, hi = min(lo, neighbour), max(hi, neighbour)
                    lexical[best] = joined
                    break
        passage_lexical = _coverage([t for ts in unit_tokens for t in ts] + tokenize(article.title), weights)
        c = CALIBRATION
        confidence = _sigmoid(
            c["sentence"] * float(dense[best])
            + c["passage"] * candidate.dense
            + c["sentence_lexical"] * lexical[best]
            + c["passage_lexical"] * passage_lexical
            + c["bias"]
        )
        scored.append(
            _Scored(
                candidate.passage,
                article_no,
                unit_spans[lo][0],
                unit_spans[hi][1],
                candidate.fused - 0.01 * rank,
                confidence,
            )
        )
    chosen = _diverse(scored, k)
    answered = bool(chosen) and chosen[0].confidence >= threshold
    quotes = [_quote(index, s) for s in chosen]
    message = None
    if not answered:
        count = len(index.articles)
        scope = " in that date range" if since or until else ""
        message = f"I couldn't find that in the {count} article{'s' if count != 1 else ''} I know{scope}."
    return Answer(
        question=question,
        answered=answered,
        quotes=quotes,
        message=message,
        took_ms=round((time.perf_counter() - started) * 1000, 2),
    )


def _diverse(scored: list[_Scored], k: int) -> list[_Scored]:
    """Best first, one quote per span, and other articles get a turn before one fills all k."""
    pool = sorted(scored, key=lambda s: (-s.rank, s.passage))
    chosen: list[_Scored] = []
    used: dict[int, int] = {}
    while pool and len(chosen) < k:
        best = max(pool, key=lambda s: s.rank - SAME_ARTICLE_PENALTY * used.get(s.article, 0) * 4)
        pool.remove(best)
        if any(c.article == best.article and c.start < best.end and best.start < c.end for c in chosen):
            continue  # overlapping passages picked the same sentence
        chosen.append(best)
        used[best.article] = used.get(best.article, 0) + 1
    return sorted(chosen, key=lambda s: -s.confidence) if chosen else chosen


def _quote(index: Index, s: _Scored) -> Quote:
    article = index.articles[s.article]
    _, p_start, p_end, _, _ = (int(x) for x in index.passages[s.passage])
    return Quote(
        text=article.text[s.start : s.end],
        passage=article.text[p_start:p_end],
        start=s.start,
        end=s.end,
        passage_start=p_start,
        score=round(s.confidence, 4),
        article=ArticleRef(
            id=article.id,
            title=article.title,
            date=article.date,
            url=article.url,
            source=article.source,
            also_reported_by=[CopyRef(title=c.title, url=c.url, source=c.source, date=c.date) for c in article.copies]
            or None,
        ),
    )


def answer(
    index: Index,
    embedder: Embedder,
    question: str,
    k: int = 3,
    *,
    since: str | None = None,
    until: str | None = None,
    threshold: float = THRESHOLD,
    max_chars: int = MAX_QUESTION_CHARS,
) -> Answer:
    """Answer `question` from the index with up to `k` verbatim, cited quotes."""
    started = time.perf_counter()
    question = validate_question(question, k, max_chars)
    vector = embedder.encode([question])[0]
    return answer_with_vector(
        index, question, vector, k, since=since, until=until, threshold=threshold, started=started
    )
