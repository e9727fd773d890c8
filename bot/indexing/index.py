"""A loaded index version as answering sees it, on either backend: the articles, the offset
tables, the keyword statistics and the fields derived from them once per load.

    passages   int64 (P, 5): article, start, end, first unit, last unit + 1
    units      int64 (U, 3): article, start, end of every quotable sentence unit

What differs by backend is where the vectors and the search live: `bot.indexing.versions`
(FAISS and bm25s files, memory-mapped) and `bot.indexing.milvus_index` (the engine) implement
`candidates`, `unit_vectors_of`, `dense_search` and `keyword_search`. Answering takes an `Index`
and never asks which one it has.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import IndexMismatchError
from bot.indexing.keyword import KeywordStats, tokenize
from bot.records import Article

UNIT_TOKEN_CACHE = 200_000

# (passage rows ascending, cosine with the question, BM25 score) of each candidate passage.
Candidates = tuple[np.ndarray, np.ndarray, np.ndarray]


def day_ordinal(day: str) -> float:
    """The day's proleptic ordinal, NaN when undated."""
    try:
        return float(dt.date.fromisoformat(day).toordinal())
    except ValueError:
        return float("nan")


class Index(ABC):
    """One loaded version: read-only, safe to share between threads."""

    def __init__(
        self,
        folder: Path,
        manifest: dict[str, Any],
        articles: list[Article],
        passages: np.ndarray,
        units: np.ndarray,
        keyword: KeywordStats,
    ) -> None:
        self.folder = folder
        self.manifest = manifest
        self.articles = articles
        self.passages = passages
        self.units = units
        self.keyword = keyword
        self.article_number = {article.id: n for n, article in enumerate(articles)}
        # Stemmed tokens of the units and titles that questions reach, computed once per version:
        # re-stemming them on every request was most of the answering thread's Python time.
        self.unit_tokens = lru_cache(maxsize=UNIT_TOKEN_CACHE)(self._unit_tokens)
        self.title_tokens = lru_cache(maxsize=UNIT_TOKEN_CACHE)(self._title_tokens)
        # Per-passage article numbers and per-article days, once per load: date filters and the
        # recency boost then cost one vectorised comparison per request.
        self.passage_article = np.ascontiguousarray(passages[:, 0])
        self.article_days = np.array([(a.date or "")[:10] for a in articles], dtype="U10")
        self.article_ordinals = np.array([day_ordinal(day) for day in self.article_days], dtype=np.float64)

    # -- what the tables say --------------------------------------------------------------------

    def _unit_tokens(self, unit: int) -> list[str]:
        article, start, end = self.unit_span(unit)
        return tokenize(self.articles[article].text[start:end])

    def _title_tokens(self, article: int) -> list[str]:
        return tokenize(self.articles[article].title)

    def passage_span(self, passage: int) -> tuple[int, int, int]:
        """(article number, start, end) of a passage."""
        row = self.passages[passage]
        return int(row[0]), int(row[1]), int(row[2])

    def passage_units(self, passage: int) -> range:
        """The unit numbers of a passage, in order."""
        row = self.passages[passage]
        return range(int(row[3]), int(row[4]))

    def unit_span(self, unit: int) -> tuple[int, int, int]:
        """(article number, start, end) of a sentence unit."""
        row = self.units[unit]
        return int(row[0]), int(row[1]), int(row[2])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def model(self) -> str:
        return str(self.manifest["model"]["name"])

    def check_model(self, model: str) -> None:
        """Refuse to mix query vectors of one model with passage vectors of another."""
        if model != self.model:
            raise IndexMismatchError(
                f"The index was built with model {self.model!r} but the bot is set to {model!r}: "
                f"run `bot index --full` to rebuild it, or set BOT_MODEL={self.model}."
            )

    def __len__(self) -> int:
        return len(self.passages)

    def newest(self, n: int) -> list[int]:
        """The numbers of the `n` most recently dated articles, newest first; undated ones after
        every dated one, in index order (dates are ISO-8601, so they sort as text)."""
        order = sorted(range(len(self.articles)), key=lambda number: self.articles[number].date or "", reverse=True)
        return order[:n]

    def article_of(self, passage: int) -> Article:
        return self.articles[int(self.passages[passage, 0])]

    def span_text(self, article: int, start: int, end: int) -> str:
        return self.articles[article].text[start:end]

    def passage_mask(self, allowed_articles: Iterable[int]) -> np.ndarray:
        """A 0/1 float mask over passages whose article is in `allowed_articles`."""
        allowed = np.zeros(len(self.articles), dtype=bool)
        allowed[list(allowed_articles)] = True
        mask: np.ndarray = allowed[self.passage_article].astype(np.float32)
        return mask

    def date_mask(self, since: dt.date | None, until: dt.date | None) -> np.ndarray | None:
        """A passage mask of the articles dated within [since, until] (None: no date limit)."""
        if since is None and until is None:
            return None
        allowed = self.article_days != ""
        if since is not None:
            allowed &= self.article_days >= since.isoformat()
        if until is not None:
            allowed &= self.article_days <= until.isoformat()
        return self.passage_mask(np.flatnonzero(allowed).tolist())

    # -- what each backend searches -------------------------------------------------------------

    @abstractmethod
    def candidates(
        self,
        vector: np.ndarray,
        tokens: list[str],
        depth: int,
        mask: np.ndarray | None = None,
        since: dt.date | None = None,
        until: dt.date | None = None,
    ) -> Candidates:
        """Every passage among the top-`depth` by cosine and the top-`depth` by BM25 (within
        `mask` and the dates), each scored by both: rows ascending, cosines, BM25 scores."""

    @abstractmethod
    def unit_vectors_of(self, ranges: list[tuple[int, int]]) -> list[np.ndarray]:
        """The sentence-unit vectors of each [first, last) range of units."""

    @abstractmethod
    def dense_search(self, vector: np.ndarray, n: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-`n` passages by inner product (cosine, vectors being normalised): rows and scores."""

    @abstractmethod
    def keyword_search(self, tokens: list[str], n: int) -> np.ndarray:
        """Top-`n` passages by BM25 alone, best first (no passage without a query term)."""
