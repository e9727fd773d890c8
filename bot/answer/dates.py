"""Dates in answering: which articles a question is asked of, and which it prefers.

With the day a question was asked (`Ask.asked_on`: "this week" is relative to it), articles dated
near it gain rank: ASKED_ON_WEIGHT on the day, halving every ASKED_ON_HALF_LIFE days either way
(news found later can still be about that week), and candidates also come from the articles
within ASKED_ON_WINDOW days of it, besides the whole index. realtimeqa-2023 (189 answerable
questions, each with the day it was asked): answered with the answer 0.275 without, 0.280 at
weight 1, 0.307 at 2, 0.317 at 3 (half-life 7 days); half-life 14 days at weight 2: 0.296.
With a recency preference (`Ask.recent`), the newest article gains RECENCY_WEIGHT (about one
z-score), halving every `recent` days before it.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from bot.answer.asking import Ask
from bot.answer.retrieval import Candidate, search
from bot.errors import QuestionError
from bot.indexing.index import Index

RECENCY_WEIGHT = 1.0
ASKED_ON_WEIGHT = 3.0
ASKED_ON_HALF_LIFE = 7.0
ASKED_ON_WINDOW = 21


def recency(index: Index, half_life_days: float | None) -> np.ndarray | None:
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


def around(index: Index, day: dt.date | None) -> np.ndarray | None:
    """Per article, 1.0 for one dated `day`, halving every ASKED_ON_HALF_LIFE days before or
    after it; 0 for an undated one (None: no day asked)."""
    if day is None:
        return None
    days = index.article_ordinals
    weight: np.ndarray = np.where(np.isnan(days), 0.0, 0.5 ** (np.abs(days - day.toordinal()) / ASKED_ON_HALF_LIFE))
    return weight


def window(day: dt.date, since: dt.date | None, until: dt.date | None) -> tuple[dt.date, dt.date] | None:
    """The days within ASKED_ON_WINDOW of `day`, inside [since, until]; None when they do not meet.
    Near the ends of the calendar the window stops at them."""
    low = (
        day - dt.timedelta(days=ASKED_ON_WINDOW)
        if day > dt.date.min + dt.timedelta(days=ASKED_ON_WINDOW)
        else dt.date.min
    )
    high = (
        day + dt.timedelta(days=ASKED_ON_WINDOW)
        if day < dt.date.max - dt.timedelta(days=ASKED_ON_WINDOW)
        else dt.date.max
    )
    low, high = max(low, since or low), min(high, until or high)
    return (low, high) if low <= high else None


def candidates(
    index: Index, vector: np.ndarray, tokens: list[str], depth: int, mask: np.ndarray | None, ask: Ask
) -> list[Candidate]:
    """The passages to score: the best of the index (within the ask's dates), and with the day
    asked also the best of the articles dated within ASKED_ON_WINDOW days of it (a passage found
    twice keeps its better score)."""
    found = search(index, vector, tokens, depth, mask, ask.since, ask.until)
    near = window(ask.asked_on, ask.since, ask.until) if ask.asked_on is not None else None
    if near is None:
        return found
    best = {c.passage: c for c in found}
    for c in search(index, vector, tokens, depth, mask, *near):
        if c.passage not in best or c.fused > best[c.passage].fused:
            best[c.passage] = c
    return sorted(best.values(), key=lambda c: (-c.fused, c.passage))
