"""The rescoring step: a model that reads the question and each candidate sentence together.

Between reading the candidate passages (`bot.answer.passages`) and choosing the quotes, a
`Reader` may score the units again; its scores replace the units' own, so they decide the best
unit of each passage, the quote and the passages' order. Without a reader (the default here)
the step changes nothing.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from bot.answer.answer_types import QuestionInfo
from bot.answer.passages import PassageReading


class Reader(Protocol):
    """Scores how well each text answers the question; higher is better, comparable within a call."""

    def score(self, question: str, texts: list[str]) -> np.ndarray: ...


def rescore(readings: list[PassageReading], question: QuestionInfo, reader: Reader | None) -> list[PassageReading]:
    """`readings` with every unit scored by `reader` in one call (unchanged without a reader)."""
    if reader is None or not readings:
        return readings
    texts = [text for reading in readings for text in reading.texts]
    scores = np.asarray(reader.score(question.text, texts), dtype=np.float64)
    out: list[PassageReading] = []
    start = 0
    for reading in readings:
        end = start + len(reading.texts)
        out.append(reading.rescored(scores[start:end]))
        start = end
    return out
