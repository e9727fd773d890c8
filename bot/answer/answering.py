"""From a question to quotes: retrieve passages, pick the answering sentence(s), decide whether
the articles answer at all.

Passages come from hybrid retrieval; in each, the sentence unit closest to the question (cosine
from vectors computed at index time, plus idf-weighted word coverage) is the quote, with its
neighbour when the answer straddles them or the sentence is short. Passages are then re-ranked by
that sentence, other articles get a turn (diversity), and an optional recency preference lifts
newer articles. A quote is cut by offsets from the article, so it is verbatim by construction.
Its `score` is a calibrated confidence in [0, 1]; when the top quote's is below `threshold` the
bot says it could not find the answer and shows the nearest quotes.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass

import numpy as np

from bot.answer.answer_types import best_span
from bot.answer.lexicon import expand
from bot.answer.retrieval import Candidate, search
from bot.answer.sentence_scoring import QuestionInfo, coverage, holds_answer_kind, unit_scores
from bot.errors import QuestionError
from bot.indexing.versions import Index
from bot.models.encoder import Embedder
from bot.records import Answer, AnswerSpan, ArticleRef, CopyRef, Quote

MAX_QUESTION_CHARS = 1000
EMPTY_QUESTION = "The question is empty: ask something, e.g. “Who will chair Stargate?”"
MAX_K = 20
THRESHOLD = 0.5
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
    "bias": -7.34,
}
# A neighbour joins the quote when it adds this much of the question's weight.
EXTEND_GAIN = 0.25
SAME_ARTICLE_PENALTY = 0.15
# A quote shorter than this takes in the next sentence, up to MAX_EXTENDED_WORDS in all: measured on
# SQuAD dev (every 10th question), +2 points of answers in the top quote for +7 words a quote.
MIN_QUOTE_WORDS = 25
MAX_EXTENDED_WORDS = 60
# Keyword search also looks for the question terms' other forms ("began" for "begin").
EXPAND_SEARCH = True
# Passages whose sentences are scored; sentence vectors are precomputed, so depth is cheap.
CANDIDATE_PASSAGES = 8
# Weight of the best sentence's score when re-ranking passages, against the fused passage z-score
# (SQuAD dev, every 10th question: recall@1 0.829 at 0, 0.844 at 1, 0.857 at 2, 0.855 at 4; at 3
# stargate-dev among the SQuAD paragraphs has every evidence in the top quote, 14 of 15 at 2, for
# realtimeqa-2023 answered with the answer 0.275 at both and SQuAD every 20th 0.811 → 0.809).
RERANK_WEIGHT = 3.0
# With a recency preference, the newest article gains this much rank (about one z-score).
RECENCY_WEIGHT = 1.0
# With the day a question was asked (`asked_on`: "this week" is relative to it), articles dated near
# it gain rank: ASKED_ON_WEIGHT on the day, halving every ASKED_ON_HALF_LIFE days either way (news
# found later can still be about that week). Candidates also come from the articles within
# ASKED_ON_WINDOW days of it, besides the whole index. realtimeqa-2023 (189 answerable questions,
# each with the day it was asked): answered with the answer 0.275 without, 0.280 at weight 1, 0.307
# at 2, 0.317 at 3 (half-life 7 days); half-life 14 days at weight 2: 0.296.
ASKED_ON_WEIGHT = 3.0
ASKED_ON_HALF_LIFE = 7.0
ASKED_ON_WINDOW = 21


@dataclass
class _Scored:
    passage: int
    article: int
    start: int
    end: int
    rank: float
    confidence: float
    features: dict[str, float]


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


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _recency(index: Index, half_life_days: float | None) -> np.ndarray | None:
    """Per article, 1.0 for the newest dated article, halving every `half_life_days` before it."""
    if half_life_days is None:
        return None
    if not half_life_days > 0:
        raise QuestionError(f"The recency half-life must be a positive number of days, got {half_life_days!r}.")
    days = index.article_ordinals
    if np.isnan(days).all():
        return None
    newest = float(np.nanmax(days))
    weight: np.ndarray = np.where(np.isnan(days), 0.0, 0.5 ** ((newest - days) / half_life_days))
    return weight


def _asked_day(asked_on: str | None) -> dt.date | None:
    """The day the question was asked, or a QuestionError saying what is wrong with it."""
    if asked_on is None:
        return None
    try:
        return dt.date.fromisoformat(asked_on[:10])
    except ValueError:
        raise QuestionError(
            f"The day the question was asked must be an ISO date (YYYY-MM-DD), got {asked_on!r}."
        ) from None


def _around(index: Index, day: dt.date) -> np.ndarray:
    """Per article, 1.0 for one dated `day`, halving every ASKED_ON_HALF_LIFE days before or
    after it; 0 for an undated one."""
    days = index.article_ordinals
    weight: np.ndarray = np.where(np.isnan(days), 0.0, 0.5 ** (np.abs(days - day.toordinal()) / ASKED_ON_HALF_LIFE))
    return weight


def _candidates(
    index: Index,
    vector: np.ndarray,
    tokens: list[str],
    depth: int,
    mask: np.ndarray | None,
    since: str | None,
    until: str | None,
    day: dt.date | None,
) -> list[Candidate]:
    """The passages to score: the best of the index, and with the day asked also the best of the
    articles dated within ASKED_ON_WINDOW days of it (a passage found twice keeps its better score)."""
    found = search(index, vector, tokens, depth, mask, since, until)
    if day is None:
        return found
    low = (day - dt.timedelta(days=ASKED_ON_WINDOW)).isoformat()
    high = (day + dt.timedelta(days=ASKED_ON_WINDOW)).isoformat()
    low, high = max(low, since or low), min(high, until or high)
    if low > high:
        return found
    best = {c.passage: c for c in found}
    for c in search(index, vector, tokens, depth, mask, low, high):
        if c.passage not in best or c.fused > best[c.passage].fused:
            best[c.passage] = c
    return sorted(best.values(), key=lambda c: (-c.fused, c.passage))


def score_passages(
    index: Index,
    question: str,
    vector: np.ndarray,
    mask: np.ndarray | None = None,
    recency: np.ndarray | None = None,
    depth: int = CANDIDATE_PASSAGES,
    boost: np.ndarray | None = None,
    *,
    since: str | None = None,
    until: str | None = None,
    asked_on: str | None = None,
) -> list[_Scored]:
    """Candidate passages with their answering span, ranking score and calibrated confidence."""
    info = QuestionInfo.of(question)
    weights = index.keyword.idf(sorted(set(info.tokens)))
    vector = vector.astype(np.float32)
    scored: list[_Scored] = []
    tokens = expand(info.tokens) if EXPAND_SEARCH else info.tokens
    day = _asked_day(asked_on)
    around = _around(index, day) if day is not None else None
    candidates = _candidates(index, vector, tokens, depth, mask, since, until, day)
    ranges = [(int(index.passages[c.passage, 3]), int(index.passages[c.passage, 4])) for c in candidates]
    for candidate, unit_vectors in zip(candidates, index.unit_vectors_of(ranges), strict=True):
        article_no, _, _, first, last = (int(x) for x in index.passages[candidate.passage])
        article = index.articles[article_no]
        unit_spans = [(int(index.units[u, 1]), int(index.units[u, 2])) for u in range(first, last)]
        unit_tokens = [index.unit_tokens(u) for u in range(first, last)]
        dense = unit_vectors @ vector
        texts = [article.text[s:e] for s, e in unit_spans]
        lexical, sentence = unit_scores(texts, unit_tokens, dense, info, weights)
        best = int(np.argmax(sentence))
        words = [len(article.text[s:e].split()) for s, e in unit_spans]
        # A quote never runs across a line break into the next paragraph, list item or footnote.
        same_block = [
            "\n" not in article.text[unit_spans[i][1] : unit_spans[i + 1][0]] for i in range(len(unit_spans) - 1)
        ]
        lo, hi = _extend(best, unit_tokens, words, same_block, dense, lexical, weights)
        quoted_lexical = coverage([t for ts in unit_tokens[lo : hi + 1] for t in ts], weights)
        passage_lexical = coverage([t for ts in unit_tokens for t in ts] + index.title_tokens(article_no), weights)
        features = {
            "sentence": float(dense[best]),
            "passage": candidate.dense,
            "sentence_lexical": quoted_lexical,
            "passage_lexical": passage_lexical,
            "answer_type": float(holds_answer_kind(article.text[unit_spans[lo][0] : unit_spans[hi][1]], info)),
        }
        c = CALIBRATION
        confidence = _sigmoid(c["bias"] + sum(c[name] * value for name, value in features.items()))
        # The best sentence re-ranks the passages: a passage that merely shares the topic ranks
        # below one with a sentence that matches the question.
        rank = candidate.fused + RERANK_WEIGHT * float(sentence[best])
        if recency is not None:
            rank += RECENCY_WEIGHT * float(recency[article_no])
        if around is not None:
            rank += ASKED_ON_WEIGHT * float(around[article_no])
        if boost is not None:  # per-article preference, e.g. a follow-up's earlier article
            rank += float(boost[article_no])
        scored.append(
            _Scored(candidate.passage, article_no, unit_spans[lo][0], unit_spans[hi][1], rank, confidence, features)
        )
    return scored


def _extend(
    best: int,
    tokens: list[list[str]],
    words: list[int],
    same_block: list[bool],
    dense: np.ndarray,
    lexical: np.ndarray,
    weights: dict[str, float],
) -> tuple[int, int]:
    """The quoted units: the best one, plus a neighbour when the answer likely runs into it."""
    if lexical[best] < 0.5:
        # Together they hold clearly more of the question: the answer straddles the two.
        for neighbour in (best - 1, best + 1):
            if (
                0 <= neighbour < len(tokens)
                and same_block[min(best, neighbour)]
                and dense[neighbour] >= dense[best] - 0.1
            ):
                joined = coverage(tokens[best] + tokens[neighbour], weights)
                if joined - lexical[best] >= EXTEND_GAIN and joined > lexical[neighbour]:
                    return min(best, neighbour), max(best, neighbour)
    # A short sentence that matches the question often leaves the answer to the next one
    # ("The deal was announced on Tuesday. It is worth $500 billion.").
    if (
        words[best] < MIN_QUOTE_WORDS
        and best + 1 < len(tokens)
        and same_block[best]
        and words[best] + words[best + 1] <= MAX_EXTENDED_WORDS
    ):
        return best, best + 1
    return best, best


def answer_with_vector(
    index: Index,
    question: str,
    vector: np.ndarray,
    k: int = 3,
    *,
    since: str | None = None,
    until: str | None = None,
    threshold: float = THRESHOLD,
    recency_half_life_days: float | None = None,
    asked_on: str | None = None,
    started: float | None = None,
    boost: np.ndarray | None = None,
) -> Answer:
    """Answer a validated question whose embedding is already computed (the batched path)."""
    started = time.perf_counter() if started is None else started
    scored = score_passages(
        index,
        question,
        vector,
        None,
        _recency(index, recency_half_life_days),
        max(CANDIDATE_PASSAGES, 2 * k),
        boost,
        since=since,
        until=until,
        asked_on=asked_on,
    )
    chosen = choose_quotes(scored, k)
    answered = bool(chosen) and chosen[0].confidence >= threshold
    # The short answer is marked only in quotes confident enough to answer on their own.
    quotes = [_quote(index, s, question if answered and s.confidence >= threshold else None) for s in chosen]
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


def choose_quotes(scored: list[_Scored], k: int) -> list[_Scored]:
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
    return chosen


def _quote(index: Index, s: _Scored, question: str | None = None) -> Quote:
    article = index.articles[s.article]
    _, p_start, p_end, _, _ = (int(x) for x in index.passages[s.passage])
    span = best_span(article.text[s.start : s.end], question) if question else None
    return Quote(
        answer=AnswerSpan(
            text=article.text[s.start + span.start : s.start + span.end],
            start=s.start + span.start,
            end=s.start + span.end,
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
    recency_half_life_days: float | None = None,
    asked_on: str | None = None,
) -> Answer:
    """Answer `question` from the index with up to `k` verbatim, cited quotes."""
    started = time.perf_counter()
    question = validate_question(question, k, max_chars)
    vector = embedder.encode([question])[0]
    return answer_with_vector(
        index,
        question,
        vector,
        k,
        since=since,
        until=until,
        threshold=threshold,
        recency_half_life_days=recency_half_life_days,
        asked_on=asked_on,
        started=started,
    )
