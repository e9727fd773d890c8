"""The rescoring step: a model that reads the question and each candidate sentence together.

Between reading the candidate passages (`bot.answer.passages`) and choosing the quotes, a
`Reader` (the cross-encoder of `bot.models.reader`, or anything that scores) reads the best
READ_UNITS units of all the candidates, by their own scores, in one call. Its logit is added to
each read unit's score (READER_WEIGHT times it); a unit it did not read is taken to be as
unlikely as the least likely unit it did read. The sum decides the best unit of each passage,
the quote and the passages' order, and the logit of the quoted unit is a feature of the
confidence (`Features.reader`). Without a reader the step changes nothing.

A reader may also mark the short answer inside the quotes it answers with (`SpanReader`: the
span head of `bot.models.spans`); without one, the answer is found by patterns
(`bot.answer.answer_types.best_span`).
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import numpy as np

from bot.answer.answer_types import QuestionInfo
from bot.answer.passages import PassageReading

# BOT_READER's default, chosen by `make eval` and `make bench` (README, "The reader").
DEFAULT_READER: Literal["on", "off"] = "on"
# Units the reader reads per question: the best by their own score, over every candidate passage.
# News dev set, stated questions, answer in the top quote (6-layer reader, weight 0.5): 3 units
# 0.625, 4 0.654, 6 0.644, 8 0.635, 12 0.654, 16-32 0.654. The reader is most of a question's cost
# (~2.8 ms a unit on OpenVINO here, against ~4 ms for the rest of /ask), so it reads 4. More units
# gain nothing on SQuAD's held-out pages either (answer in the top quote: 4 units 0.782, 8 0.785,
# 16 0.783; news stated 0.644, 0.635, 0.654).
READ_UNITS = 4
# Times the reader's logit, added to a unit's own score. Same set, 12 units: 0.3 0.644, 0.4 0.635,
# 0.5 0.654, 0.7 0.644; 16 units: 1.0 0.644, 2.0 0.587, 4.0 0.587, the reader alone (weight 100)
# 0.481, and no reader 0.567: its logit and the unit's own score know different things.
READER_WEIGHT = 0.5


class Reader(Protocol):
    """Scores how well each text answers the question; higher is better, comparable within a call."""

    def score(self, question: str, texts: list[str]) -> np.ndarray: ...


Offsets = tuple[int, int]  # start and end offsets of a short answer in its text


@runtime_checkable
class SpanReader(Protocol):
    """A reader that also marks the short answer in each text: its offsets, or None where the text
    holds none; None for the whole call when it has no span head (the patterns decide then)."""

    def answer_spans(self, question: str, texts: list[str]) -> list[Offsets | None] | None: ...


def units_to_read(readings: list[PassageReading], limit: int) -> list[int]:
    """The unit numbers of the best `limit` units by their own scores (each unit once: passages
    overlap by a unit), best first."""
    best: dict[int, float] = {}
    for reading in readings:
        for unit, score in zip(reading.units, reading.scores.tolist(), strict=True):
            if score > best.get(unit, -np.inf):
                best[unit] = score
    return sorted(best, key=lambda u: (-best[u], u))[:limit]


def rescore(
    readings: list[PassageReading],
    question: QuestionInfo,
    reader: Reader | None,
    *,
    read_units: int = READ_UNITS,
    weight: float = READER_WEIGHT,
) -> list[PassageReading]:
    """`readings` with the reader's logits added to their units' scores (unchanged without a reader)."""
    if reader is None or not readings:
        return readings
    chosen = units_to_read(readings, read_units)
    texts: dict[int, str] = {}
    for reading in readings:
        for unit, text in zip(reading.units, reading.texts, strict=True):
            texts.setdefault(unit, text)
    logits = np.asarray(reader.score(question.text, [texts[u] for u in chosen]), dtype=np.float64).reshape(-1)
    read = dict(zip(chosen, logits.tolist(), strict=True))
    floor = float(logits.min()) if len(logits) else 0.0
    out = []
    for reading in readings:
        unit_logits = np.array([read.get(u, floor) for u in reading.units], dtype=np.float64)
        out.append(reading.read(reading.scores + weight * unit_logits, unit_logits))
    return out
