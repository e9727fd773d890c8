"""A candidate passage read for a question: its sentence units, how well each answers, and the
units a quote is made of.

`read_passage` computes every unit's scores (`bot.answer.sentence_scoring`); a rescoring step
(`bot.answer.reading`) may then replace them; `quote_units` picks the quoted units around the
best one, and `Features` are what the confidence is calibrated on.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from bot.answer.answer_types import QuestionInfo
from bot.answer.retrieval import Candidate
from bot.answer.sentence_scoring import coverage, holds_answer_kind, unit_scores
from bot.indexing.index import Index

# A neighbour joins the quote when it adds this much of the question's weight.
EXTEND_GAIN = 0.25
# A quote shorter than this takes in the next sentence, up to MAX_EXTENDED_WORDS in all: measured on
# SQuAD dev (every 10th question), +2 points of answers in the top quote for +7 words a quote.
MIN_QUOTE_WORDS = 25
MAX_EXTENDED_WORDS = 60


@dataclass(frozen=True, slots=True, eq=False)
class PassageReading:
    """One candidate passage's units, read for one question."""

    candidate: Candidate
    article: int  # article number in the index
    units: range  # the passage's unit numbers
    spans: list[tuple[int, int]]  # each unit's [start, end) in the article's text
    texts: list[str]
    tokens: list[list[str]]  # each unit's stemmed words
    words: list[int]  # each unit's word count
    same_block: list[bool]  # unit i and i + 1 are in one paragraph (no line break between them)
    dense: np.ndarray  # each unit's cosine with the question
    lexical: np.ndarray  # each unit's share of the question's idf weight
    scores: np.ndarray  # how well each unit answers: the quote is the best one's
    logits: np.ndarray | None = None  # each unit's reader logit, when a reader read them

    @property
    def best(self) -> int:
        """The position (in this passage) of the unit that answers best."""
        return int(np.argmax(self.scores))

    def read(self, scores: np.ndarray, logits: np.ndarray) -> PassageReading:
        """The reading with a reader's view: the units' new scores and its logits."""
        return replace(self, scores=scores, logits=logits)


def read_passage(
    index: Index,
    candidate: Candidate,
    unit_vectors: np.ndarray,
    vector: np.ndarray,
    question: QuestionInfo,
    weights: dict[str, float],
) -> PassageReading:
    """The passage's units with their scores for `question` (`vector` its embedding, `weights` the
    idf of its terms)."""
    article_no, _, _ = index.passage_span(candidate.passage)
    units = index.passage_units(candidate.passage)
    text = index.articles[article_no].text
    spans = [index.unit_span(u)[1:] for u in units]
    tokens = [index.unit_tokens(u) for u in units]
    dense = unit_vectors @ vector
    texts = [text[s:e] for s, e in spans]
    lexical, scores = unit_scores(texts, tokens, dense, question, weights)
    # A quote never runs across a line break into the next paragraph, list item or footnote.
    same_block = ["\n" not in text[spans[i][1] : spans[i + 1][0]] for i in range(len(spans) - 1)]
    return PassageReading(
        candidate,
        article_no,
        units,
        spans,
        texts,
        tokens,
        [len(t.split()) for t in texts],
        same_block,
        dense,
        lexical,
        scores,
    )


def quote_units(reading: PassageReading, weights: dict[str, float]) -> tuple[int, int]:
    """The quoted units (first and last position): the best one, plus a neighbour when the answer
    likely runs into it."""
    best, tokens, lexical, dense, same_block = (
        reading.best,
        reading.tokens,
        reading.lexical,
        reading.dense,
        reading.same_block,
    )
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
    words = reading.words
    if (
        words[best] < MIN_QUOTE_WORDS
        and best + 1 < len(tokens)
        and same_block[best]
        and words[best] + words[best + 1] <= MAX_EXTENDED_WORDS
    ):
        return best, best + 1
    return best, best


# The reader's logit counts at least this much in the confidence: it may lower a quote's, not veto
# a sentence that the question's words and meaning both match. A sentence that leans on its
# neighbour ("Masayoshi Son, ... of SoftBank, will be the chairman.") reads as unrelated to the
# reader (-3.8 for "Who will chair Stargate?", declined at 0.39); at -2 it is answered (0.61), and
# the calibration rows at 0.5 move by one SQuAD positive (answered 0.934 -> 0.939).
READER_FLOOR = -2.0


@dataclass(frozen=True, slots=True)
class Features:
    """What the confidence of a quote is calibrated on (`bot.answer.confidence`, refit by
    `bot.quality.calibration`), by name."""

    sentence: float  # the best unit's cosine with the question
    passage: float  # the passage's cosine
    sentence_lexical: float  # the quoted units' share of the question's idf weight
    passage_lexical: float  # the passage's and its title's share
    answer_type: float  # 0 when a date/amount/number question's quote holds none
    reader: float = 0.0  # the reader's logit of the best unit (0 without a reader)

    def items(self) -> list[tuple[str, float]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


def features(
    index: Index, reading: PassageReading, lo: int, hi: int, question: QuestionInfo, weights: dict[str, float]
) -> Features:
    """The features of the quote of units `lo`..`hi` of `reading`."""
    text = index.articles[reading.article].text
    quoted_lexical = coverage([t for ts in reading.tokens[lo : hi + 1] for t in ts], weights)
    passage_lexical = coverage([t for ts in reading.tokens for t in ts] + index.title_tokens(reading.article), weights)
    return Features(
        sentence=float(reading.dense[reading.best]),
        passage=reading.candidate.dense,
        sentence_lexical=quoted_lexical,
        passage_lexical=passage_lexical,
        answer_type=float(holds_answer_kind(text[reading.spans[lo][0] : reading.spans[hi][1]], question)),
        reader=max(float(reading.logits[reading.best]), READER_FLOOR) if reading.logits is not None else 0.0,
    )
