"""From a question to quotes, as named steps:

    candidates      hybrid retrieval (`retrieval`), plus the articles near the day asked (`dates`)
    read_passage    each candidate passage's sentence units, scored (`passages`)
    rescore         a reader's scores in place of the units' own, when one is given (`reading`)
    quote_units     the best unit, with its neighbour when the answer runs into it (`passages`)
    Features        what the confidence is calibrated on (`passages`), then `confidence`
    rank            the passage's fused score, its best unit's, and the ask's preferences
    choose_quotes   best first, one quote per span, other articles get a turn

A quote is cut by offsets from the article, so it is verbatim by construction. Its `score` is a
calibrated confidence in [0, 1]; when the top quote's is below the ask's threshold the bot says it
could not find the answer and shows the nearest quotes.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from bot.answer.answer_types import QuestionInfo, best_span, whole_list
from bot.answer.asking import MAX_QUESTION_CHARS, Ask, checked
from bot.answer.dates import ASKED_ON_WEIGHT, RECENCY_WEIGHT, around, candidates, recency
from bot.answer.lexicon import expand
from bot.answer.passages import Features, PassageReading, features, quote_units, read_passage
from bot.answer.reading import Offsets, Reader, SpanReader, rescore
from bot.indexing.index import Index
from bot.models.encoder import Embedder
from bot.records import Answer, AnswerSpan, ArticleRef, CopyRef, Quote

# Logistic calibration of the top quote's confidence: the probability that the articles answer.
# Refit with `bot eval --shared ../shared/eval --calibrate` (bot/quality/calibration.py): the top quote's
# features for every 50th SQuAD v1.1 dev question asked of all 2,067 paragraphs (label 1) and
# again with every paragraph of its Wikipedia page hidden (label 0: the topic is absent), plus
# stargate-dev over the seed article alone and with the SQuAD paragraphs as distractors, weighted
# 20x because news questions paraphrase more than SQuAD's. The passage's own cosine is left out:
# it adds nothing once the sentence is known, and news passages holding several facts score low
# on it. Held out: the questions of tests/test_quality.py. `answer_type` is 0 when a how-many/when
# question's quote has no number.
CALIBRATION = {
    "sentence": 7.43,
    "passage": 0.0,
    "sentence_lexical": 1.37,
    "passage_lexical": 3.28,
    "answer_type": 1.86,
    "reader": 0.0,
    "bias": -7.34,
}
# With the reader (`bot.answer.reading`): the same, plus half the reader's logit of the quoted
# unit (at least passages.READER_FLOOR). Chosen on the rows of `bot eval --shared ../shared/eval
# --news build/eval/realtimeqa-2023 --calibrate --reader on`; at the 0.5 threshold [positives
# answered, negatives declined]: SQuAD 0.94/0.93 (without the reader's term 0.97/0.88),
# stargate-dev over the seed alone and among the SQuAD paragraphs 1.0/1.0, news (hand-read
# support) 0.96/0.44 (0.94/0.42). Its refit (reader 0.52, sentence 2.18, bias -5.29) answers only
# 0.73 of the seed's questions (0.71 of SQuAD's), and every refit that answers them all (seed
# weighted 50-100x) declines right seed quotes of tests/test_quality.py ("Who chairs Stargate?");
# a reader weight of 0.3 declines another. Kept for the two-epoch reader (not refit): over every
# answerable question it declines 0.190 of the news set's (0.212 before), 0.059 of SQuAD's held-out
# pages' (0.063), none of stargate-dev's, and declines every off-topic one there.
READER_CALIBRATION = CALIBRATION | {"reader": 0.5}
SAME_ARTICLE_PENALTY = 0.15
# Keyword search also looks for the question terms' other forms ("began" for "begin").
EXPAND_SEARCH = True
# Passages whose sentences are scored; sentence vectors are precomputed, so depth is cheap.
CANDIDATE_PASSAGES = 8
# Weight of the best sentence's score when re-ranking passages, against the fused passage z-score
# (SQuAD dev, every 10th question: recall@1 0.829 at 0, 0.844 at 1, 0.857 at 2, 0.855 at 4; at 3
# stargate-dev among the SQuAD paragraphs has every evidence in the top quote, 14 of 15 at 2, for
# realtimeqa-2023 answered with the answer 0.275 at both and SQuAD every 20th 0.811 → 0.809).
RERANK_WEIGHT = 3.0

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Scored:
    """A candidate passage's quote: its span, ranking score, calibrated confidence and features."""

    passage: int
    article: int
    start: int
    end: int
    rank: float
    confidence: float
    features: Features


def confidence(features: Features, c: dict[str, float]) -> float:
    """The calibrated probability that the articles answer, from the quote's features."""
    return 1.0 / (1.0 + math.exp(-(c["bias"] + sum(c[name] * value for name, value in features.items()))))


@dataclass(frozen=True, slots=True, eq=False)
class _Preferences:
    """Per-article rank bonuses of one ask: recency, nearness to the day asked, a boosted article."""

    recency: np.ndarray | None
    around: np.ndarray | None
    boosted: int | None
    boost: float

    @classmethod
    def of(cls, index: Index, ask: Ask) -> _Preferences:
        boosted = index.article_number.get(ask.boost.article) if ask.boost is not None else None
        weight = ask.boost.weight if ask.boost is not None else 0.0
        return cls(recency(index, ask.recent), around(index, ask.asked_on), boosted, weight)


def rank(reading: PassageReading, preferences: _Preferences) -> float:
    """The passage's place: its fused retrieval score, plus its best unit's score (a passage that
    merely shares the topic ranks below one with a sentence that matches the question), plus the
    ask's preferences for its article."""
    article = reading.article
    value = reading.candidate.fused + RERANK_WEIGHT * float(reading.scores[reading.best])
    if preferences.recency is not None:
        value += RECENCY_WEIGHT * float(preferences.recency[article])
    if preferences.around is not None:
        value += ASKED_ON_WEIGHT * float(preferences.around[article])
    if preferences.boosted == article:  # e.g. a follow-up's earlier article
        value += preferences.boost
    return value


@dataclass(frozen=True, slots=True, eq=False)
class Candidates:
    """What a question's candidates are read with, before any rescoring."""

    question: QuestionInfo
    weights: dict[str, float]  # the idf of the question's terms
    readings: list[PassageReading]
    preferences: _Preferences


def read_candidates(
    index: Index, ask: Ask, vector: np.ndarray, mask: np.ndarray | None = None, depth: int = CANDIDATE_PASSAGES
) -> Candidates:
    """The candidate passages of `ask`, each read (its units scored)."""
    question = QuestionInfo.of(ask.question)
    weights = index.keyword.idf(sorted(set(question.tokens)))
    vector = vector.astype(np.float32)
    tokens = expand(question.tokens) if EXPAND_SEARCH else question.tokens
    found = candidates(index, vector, tokens, depth, mask, ask)
    ranges = [(r.start, r.stop) for r in (index.passage_units(c.passage) for c in found)]
    readings = [
        read_passage(index, candidate, unit_vectors, vector, question, weights)
        for candidate, unit_vectors in zip(found, index.unit_vectors_of(ranges), strict=True)
    ]
    return Candidates(question, weights, readings, _Preferences.of(index, ask))


def score_candidates(index: Index, found: Candidates, reader: Reader | None = None) -> list[Scored]:
    """Each candidate's quote, ranking score and confidence, after the reader's rescoring."""
    calibration = READER_CALIBRATION if reader is not None else CALIBRATION
    scored = []
    for reading in rescore(found.readings, found.question, reader):
        lo, hi = quote_units(reading, found.weights)
        quoted = features(index, reading, lo, hi, found.question, found.weights)
        start, end = reading.spans[lo][0], reading.spans[hi][1]
        value = rank(reading, found.preferences)
        scored.append(
            Scored(
                reading.candidate.passage, reading.article, start, end, value, confidence(quoted, calibration), quoted
            )
        )
    return scored


def score_passages(
    index: Index,
    ask: Ask,
    vector: np.ndarray,
    mask: np.ndarray | None = None,
    depth: int = CANDIDATE_PASSAGES,
    reader: Reader | None = None,
) -> list[Scored]:
    """Candidate passages with their answering span, ranking score and calibrated confidence."""
    return score_candidates(index, read_candidates(index, ask, vector, mask, depth), reader)


def choose_quotes(scored: list[Scored], k: int) -> list[Scored]:
    """Best first, one quote per span, and other articles get a turn before one fills all k."""
    pool = sorted(scored, key=lambda s: (-s.rank, s.passage))
    chosen: list[Scored] = []
    used: dict[int, int] = {}
    while pool and len(chosen) < k:
        best = max(pool, key=lambda s: s.rank - SAME_ARTICLE_PENALTY * used.get(s.article, 0) * 4)
        pool.remove(best)
        if any(c.article == best.article and c.start < best.end and best.start < c.end for c in chosen):
            continue  # overlapping passages picked the same sentence
        chosen.append(best)
        used[best.article] = used.get(best.article, 0) + 1
    return chosen


PATTERNS = "patterns"  # no span head's mark for a quote: its short answer is found by patterns


def marked_spans(index: Index, marked: list[Scored], question: str, reader: Reader | None) -> dict[int, Offsets | None]:
    """The reader's span head's short answer in each quote of `marked` (by id), in one call;
    empty without a span head."""
    if not marked or not isinstance(reader, SpanReader):
        return {}
    texts = [index.articles[s.article].text[s.start : s.end] for s in marked]
    try:
        found = reader.answer_spans(question, texts)
    except Exception as exc:  # a mark is a nicety: the answer stands, and the patterns mark it
        log.warning("the span head failed, so the patterns mark the answer: %s", exc)
        return {}
    if found is None:
        return {}
    return {id(s): span for s, span in zip(marked, found, strict=True)}


def quote(
    index: Index, s: Scored, question: QuestionInfo | None = None, mark: Offsets | str | None = PATTERNS
) -> Quote:
    """The quote of `s`, cut from its article, with the short answer inside when `question` is
    given: `mark` (offsets in the quote, or None for none) when a span head gave one, else by patterns."""
    article = index.articles[s.article]
    _, p_start, p_end = index.passage_span(s.passage)
    span: Offsets | None = None
    if question is not None and isinstance(mark, str):
        found = best_span(article.text[s.start : s.end], question)
        span = (found.start, found.end) if found else None
    elif question is not None and not isinstance(mark, str):
        span = mark
    if span and question is not None and question.several:
        span = whole_list(article.text[s.start : s.end], *span)
    return Quote(
        answer=AnswerSpan(
            text=article.text[s.start + span[0] : s.start + span[1]],
            start=s.start + span[0],
            end=s.start + span[1],
        )
        if span
        else None,
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


def answer_with_vector(
    index: Index, ask: Ask, vector: np.ndarray, *, reader: Reader | None = None, started: float | None = None
) -> Answer:
    """Answer a validated question whose embedding is already computed (the batched path)."""
    started = time.perf_counter() if started is None else started
    scored = score_passages(index, ask, vector, None, max(CANDIDATE_PASSAGES, 2 * ask.k), reader)
    chosen = choose_quotes(scored, ask.k)
    answered = bool(chosen) and chosen[0].confidence >= ask.threshold
    # The short answer is marked only in quotes confident enough to answer on their own.
    question = QuestionInfo.of(ask.question) if answered else None
    marked = [s for s in chosen if question is not None and s.confidence >= ask.threshold]
    spans = marked_spans(index, marked, ask.question, reader)
    quotes = [quote(index, s, question if s in marked else None, spans.get(id(s), PATTERNS)) for s in chosen]
    message = None
    if not answered:
        count = len(index.articles)
        scope = " in that date range" if ask.dated else ""
        message = f"I couldn't find that in the {count} article{'s' if count != 1 else ''} I know{scope}."
    return Answer(
        question=ask.question,
        answered=answered,
        quotes=quotes,
        message=message,
        took_ms=round((time.perf_counter() - started) * 1000, 2),
    )


def answer(
    index: Index, embedder: Embedder, ask: Ask, *, reader: Reader | None = None, max_chars: int = MAX_QUESTION_CHARS
) -> Answer:
    """Answer `ask` from the index with up to `ask.k` verbatim, cited quotes."""
    started = time.perf_counter()
    ask = checked(ask, max_chars)
    return answer_with_vector(index, ask, embedder.encode([ask.question])[0], reader=reader, started=started)
