"""How well each sentence unit of a passage answers a question: the scores behind the quote.

A unit's score is its cosine with the question, plus its share of the question's idf weight
(`coverage`: a term counts when the unit has it, one of its other forms from `bot.lexicon`, or a
longer word it begins), plus small preferences measured on the dev sets (`make eval`): a unit that
holds the kind of short answer the question asks for (a date for "when", an amount for "how
much"…), the cosine of its neighbours (a sentence often answers through the one before it), and
reported speech ("said", "according to") for questions about what someone said.
"""

from __future__ import annotations

import re

import numpy as np

from bot.answer.answer_types import QuestionInfo, has_answer_kind
from bot.answer.lexicon import variants

# A question term this long also matches longer words it begins.
PREFIX_MIN_CHARS = 4
# A sentence's score: cosine with the question plus this times its share of the question's idf weight.
SENTENCE_LEXICAL = 1.0
# Added when the question asks for a date, an amount or a number and the unit holds a new one
# (questions asked on their day: realtimeqa-2023 answered with the answer 0.307 at 0.2, 0.318 at 0.5
# and at 0.8; SQuAD v1.1 dev every 10th, answer in the top quote 0.7985 at 0.2, 0.8004 at 0.5).
NUMBER_BONUS = 0.5
# Added when the question asks for a person, a place or a name and the unit holds a new one, or
# for a term's meaning and the unit defines that term ("IP refers to intellectual property.")
# (realtimeqa-2023, all 189 answerable: answer in the top quote 0.270 at 0, 0.286 at 0.2, 0.291 at
# 0.4; SQuAD v1.1 dev every 20th: 0.811 at 0 and at 0.1).
NAME_BONUS = 0.4
# Times the larger cosine of the unit's neighbours (in the same passage): measured and left off
# (realtimeqa-2023 0.270 → 0.275 at 0.3, within noise, and 0.286 → 0.286 with NAME_BONUS 0.2;
# SQuAD every 20th 0.811 → 0.813 at 0.2).
NEIGHBOUR_WEIGHT = 0.0
# Added for reported speech when the question asks what someone said.
SPEECH_BONUS = 0.0
_SPEECH = re.compile(
    r"\b(?:said|says|told|added|according to|stated|announced|shared|wrote|explained|noted|warned)\b", re.I
)


def coverage(tokens: list[str], weights: dict[str, float]) -> float:
    """Share of the question's idf weight whose terms appear in `tokens` (or begin one of them)."""
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    present = set(tokens)
    # Each word after a line break (tokens are \w+ stems, never one): "a word begins with term"
    # is then one substring search in C, where a loop over the words was half the answering time.
    joined = "\n" + "\n".join(present)
    return sum(w for t, w in weights.items() if _present(t, present, joined)) / total


def _present(term: str, words: set[str], joined: str) -> bool:
    forms = variants(term)
    if not forms.isdisjoint(words):
        return True
    # Stems part ways where the reader would not: "chair" and "chairman", "Texa" and "Texan".
    return len(term) >= PREFIX_MIN_CHARS and "\n" + term in joined


def holds_answer_kind(text: str, question: QuestionInfo) -> bool:
    """The calibration's `answer_type`: False only when a date/amount/number question's quote has none."""
    return not question.numeric or has_answer_kind(text, question.kind, question.text)


def unit_scores(
    texts: list[str], tokens: list[list[str]], dense: np.ndarray, question: QuestionInfo, weights: dict[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """(lexical coverage, score) of each unit of one passage."""
    lexical = np.array([coverage(t, weights) for t in tokens])
    score = dense + SENTENCE_LEXICAL * lexical
    if question.kind is not None:
        bonus = NUMBER_BONUS if question.numeric else NAME_BONUS
        if bonus:
            score += bonus * np.array([has_answer_kind(t, question.kind, question.text) for t in texts])
    if NEIGHBOUR_WEIGHT and len(dense) > 1:
        padded = np.concatenate([[-1.0], dense, [-1.0]])
        score += NEIGHBOUR_WEIGHT * np.maximum(padded[:-2], padded[2:]).clip(min=0)
    if SPEECH_BONUS and question.type == "said":
        score += SPEECH_BONUS * np.array([bool(_SPEECH.search(t)) for t in texts])
    return lexical, score
