"""Hybrid retrieval: BM25 and dense candidates, fused by a weighted sum of z-scores.

Rank fusion (RRF) throws away how far apart scores are; a z-scored sum keeps it, and measured
better on the dev sets (`make eval`). Both scores are computed for every candidate, so a passage
found by one retriever is still judged by the other.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from bot.indexing.index import Index

# Equal weights: 0.35 dense measured within half a point on SQuAD dev (whose questions copy the
# paragraph's words), and news questions paraphrase more, so dense keeps its half.
DENSE_WEIGHT = 0.5
KEYWORD_WEIGHT = 0.5
CANDIDATES = 50


@dataclass(frozen=True, slots=True)
class Candidate:
    passage: int
    fused: float  # z-score fusion, comparable within one query only
    dense: float  # cosine similarity of question and passage
    keyword: float  # raw BM25 score


def _z(values: np.ndarray) -> np.ndarray:
    spread = float(values.std())
    return (values - values.mean()) / spread if spread > 1e-9 else np.zeros_like(values)


def fuse(
    ids: np.ndarray,
    dense: np.ndarray,
    keyword: np.ndarray,
    n: int,
    dense_weight: float = DENSE_WEIGHT,
    keyword_weight: float = KEYWORD_WEIGHT,
) -> list[Candidate]:
    """The best `n` of candidates (ascending ids, each with both scores), best first."""
    if not len(ids):
        return []
    fused = dense_weight * _z(dense) + keyword_weight * _z(keyword)
    order = np.argsort(-fused, kind="stable")[:n]
    return [Candidate(int(ids[i]), float(fused[i]), float(dense[i]), float(keyword[i])) for i in order]


def search(
    index: Index,
    vector: np.ndarray,
    tokens: list[str],
    n: int,
    mask: np.ndarray | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> list[Candidate]:
    """The best `n` passages for a question (its vector and `keyword.query_tokens`), best first:
    the index's dense and BM25 candidates (FAISS and bm25s files, or the engine), each scored by
    both retrievers, fused."""
    return fuse(*index.candidates(vector, tokens, max(CANDIDATES, n), mask, since, until), n)
