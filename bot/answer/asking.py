"""A question as asked: one frozen value from the edge (HTTP, Slack, CLI, eval) to answering.

Everything answering takes besides the index and the question's vector travels in `Ask`; a
follow-up or a message's claims are the same ask with `dataclasses.replace` on the fields that
differ. A new answering option is one field here and the one step that reads it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from bot.errors import QuestionError

MAX_QUESTION_CHARS = 1000
EMPTY_QUESTION = "The question is empty: ask something, e.g. “Who will chair Stargate?”"
MAX_K = 20
THRESHOLD = 0.5


@dataclass(frozen=True, slots=True)
class ArticleBoost:
    """A rank bonus for one article's passages (a follow-up prefers the earlier answer's article)."""

    article: str
    weight: float


@dataclass(frozen=True, slots=True)
class Ask:
    """One question and how it is to be answered."""

    question: str
    k: int = 3  # quotes wanted, 1-MAX_K
    since: dt.date | None = None  # only articles dated on or after this day
    until: dt.date | None = None  # only articles dated on or before this day
    asked_on: dt.date | None = None  # the day asked: "this week" reads against it, articles near it rank higher
    recent: float | None = None  # half-life in days of a preference for newer articles
    threshold: float = THRESHOLD  # confidence below which the articles are said not to answer
    boost: ArticleBoost | None = None

    @property
    def dated(self) -> bool:
        """True when the question is limited to a date range."""
        return self.since is not None or self.until is not None


def check_text(text: str, what: str = "The question") -> str:
    """`text`, or a QuestionError when it holds a lone surrogate: JSON's "\\ud800" escape (or a
    Slack payload carrying one) decodes to one, and the model's tokenizer fails on it, with every
    other question of the batch it shares."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise QuestionError(
            f"{what} holds a character that is not text (a lone surrogate, U+{ord(text[exc.start]):04X}, at "
            f"character {exc.start}): send it as UTF-8."
        ) from None
    return text


def validate_question(question: object, k: object = 3, max_chars: int = MAX_QUESTION_CHARS) -> str:
    """The question, trimmed, or a QuestionError that says what is wrong."""
    if not isinstance(question, str) or not question.strip():
        raise QuestionError(EMPTY_QUESTION)
    question = check_text(" ".join(question.split()))
    if len(question) > max_chars:
        raise QuestionError(f"The question is {len(question)} characters long; the limit is {max_chars}.")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise QuestionError(f"k must be a whole number from 1 to {MAX_K}, got {k!r}.")
    return question


def checked(ask: Ask, max_chars: int = MAX_QUESTION_CHARS) -> Ask:
    """`ask` with its question trimmed, or a QuestionError saying what is wrong with it."""
    question = validate_question(ask.question, ask.k, max_chars)
    return ask if question == ask.question else replace(ask, question=question)


def parse_day(value: str | None, what: str) -> dt.date | None:
    """An ISO day (a longer ISO timestamp is read by its day), or a QuestionError naming `what`."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        raise QuestionError(f"{what} {value!r} is not an ISO date such as 2025-01-23.") from None
