"""The data types that flow through the pipeline and out of every edge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field


@dataclass(frozen=True, slots=True)
class Copy:
    """A near-duplicate of an article published elsewhere (a syndicated copy): linked, not indexed."""

    id: str
    title: str
    url: str | None = None
    source: str | None = None
    date: str | None = None


@dataclass(frozen=True, slots=True)
class Article:
    """One article: metadata plus its clean text; offsets elsewhere index into `text`."""

    id: str
    title: str
    text: str
    date: str | None = None  # ISO-8601 (YYYY-MM-DD or a full timestamp)
    url: str | None = None
    source: str | None = None
    author: str | None = None
    path: str | None = None  # where it was read from, for error messages and re-indexing
    duplicate_of: str | None = None  # a near-duplicate of this article id: linked to it, not indexed
    copies: tuple[Copy, ...] = ()  # near-duplicates of this article (filled in by the indexer)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Article:
        """The inverse of `dataclasses.asdict` (copies come back as `Copy` objects)."""
        copies = tuple(Copy(**c) for c in data.get("copies") or ())
        return cls(**{**data, "copies": copies})


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open character range [start, end) of an article's text."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Passage:
    """A run of whole sentences of one article; `text == article.text[start:end]`."""

    article_id: str
    start: int
    end: int
    text: str
    sentences: tuple[Span, ...]  # the sentence units inside, in article offsets


class CopyRef(BaseModel):
    """Where else the same story was reported."""

    title: str
    url: str | None = None
    source: str | None = None
    date: str | None = None


class ArticleRef(BaseModel):
    """The citation attached to every quote."""

    id: str
    title: str
    date: str | None = None
    url: str | None = None
    source: str | None = None
    also_reported_by: list[CopyRef] | None = Field(
        default=None,
        exclude_if=lambda copies: not copies,  # absent, not empty, for articles nobody copied
        description="Near-identical copies of the article published elsewhere; absent when there are none.",
    )


class AnswerSpan(BaseModel):
    """The short answer inside a quote: marked by the reader's span head, or (without the reader)
    found by patterns for a date, an amount, a number or a name."""

    text: str = Field(description="Exact substring of the article: article.text[start:end], inside the quote.")
    start: int = Field(description="Character offset of the answer in the article text.")
    end: int = Field(description="Character offset just past the answer.")


class Quote(BaseModel):
    """A verbatim quote: `text == article.text[start:end]`, inside `passage`."""

    text: str = Field(description="Exact substring of the article: article.text[start:end].")
    passage: str = Field(description="The passage that contains the quote, for context.")
    start: int = Field(description="Character offset of the quote in the article text.")
    end: int = Field(description="Character offset just past the quote.")
    passage_start: int = Field(description="Character offset of the passage in the article text.")
    score: float = Field(description="Relevance, higher is better; comparable within one answer.")
    article: ArticleRef
    answer: AnswerSpan | None = Field(
        default=None,
        exclude_if=lambda span: span is None,  # absent when the answer is not a short span, or unsure
        description="The short answer inside the quote, when the question asks for one; absent when unsure.",
    )


class Answer(BaseModel):
    """What `answer()` returns and what `POST /ask` sends back."""

    question: str
    answered: bool
    quotes: list[Quote]
    message: str | None = Field(
        default=None,
        description="When answered is false: why; quotes then hold the nearest passages.",
    )
    took_ms: float
    context: str | None = Field(
        default=None,
        exclude_if=lambda context: context is None,  # absent when the question stood alone
        description="When the question was read as a follow-up to earlier ones: the question as it was "
        "understood (what was searched); absent when it stood alone.",
    )
