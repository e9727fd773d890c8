"""Asking about a message: its claims (sentences) asked of the articles, the best quotes kept.

A message is not a question: it states things ("Stargate will spend $500 billion, chaired by
Masayoshi Son"). Each of its first MAX_CLAIMS sentences is asked on its own and the quotes that
bear best on any of them are kept, best first, one per span; the whole message, cut to the
question limit at a sentence (else a word) boundary, is the question shown.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from bot.answer.answering import answer_with_vector
from bot.answer.asking import Ask, check_text
from bot.answer.reading import Reader
from bot.errors import QuestionError
from bot.indexing.index import Index
from bot.records import Answer, Quote

MAX_CLAIMS = 5
# A sentence this short ("Wow.", "See below:") claims nothing to look up.
MIN_CLAIM_WORDS = 3
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+")
NO_TEXT = "That message has no text to ask the articles about."


def cut(text: str, limit: int) -> str:
    """`text` (whitespace collapsed) in at most `limit` characters, cut after its last whole
    sentence that fits, else after its last whole word, with "…" when anything was cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    room = text[: limit - 1]
    ends = [m.start() for m in _SENTENCE_END.finditer(text[:limit])]
    if ends and ends[-1] > limit // 3:  # keep at least a third: a short first sentence is no summary
        return text[: ends[-1]].rstrip()
    space = room.rfind(" ")
    return (room[:space] if space > 0 else room).rstrip() + "…"


def claims(text: str) -> list[str]:
    """The message's first MAX_CLAIMS sentences that have enough words to look up."""
    sentences = [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]
    return [s for s in sentences if len(s.split()) >= MIN_CLAIM_WORDS][:MAX_CLAIMS] or sentences[:1]


def answer_message(
    index: Index,
    encode: Callable[[str], np.ndarray],
    ask: Ask,
    *,
    max_chars: int,
    reader: Reader | None = None,
) -> Answer:
    """The quotes that bear best on the claims of a message (`ask.question`, its text); QuestionError
    when it has no text."""
    started = time.perf_counter()
    question = check_text(cut(ask.question, max_chars), "The message")
    if not question:
        raise QuestionError(NO_TEXT)
    results = [
        answer_with_vector(index, replace(ask, question=claim), encode(claim), reader=reader)
        for claim in claims(question)
        if claim.strip()
    ]
    quotes = sorted((q for r in results for q in r.quotes), key=lambda q: -q.score)
    kept: list[Quote] = []
    for quote in quotes:
        if not any(q.article.id == quote.article.id and q.start < quote.end and quote.start < q.end for q in kept):
            kept.append(quote)
    kept = kept[: ask.k]
    answered = any(r.answered for r in results)
    message = None if answered else next((r.message for r in results if r.message), None)
    return Answer(
        question=question,
        answered=answered,
        quotes=kept,
        message=message,
        took_ms=round((time.perf_counter() - started) * 1000, 2),
    )
