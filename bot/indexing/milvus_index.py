"""A version in Milvus, as the answering core sees it: the same tables as a FAISS version (articles,
passages and units by offset, keyword statistics), loaded once per revision, while dense and BM25
search and the sentence-unit vectors stay in the engine.

Each reader holds the article records and offset tables, as with FAISS (tens of bytes a passage
plus the text); the vectors, by far the largest part, are fetched per question: the candidates
of the engine's dense and BM25 searches with their vectors and terms (scored and fused by the
bot, as on FAISS), then the unit vectors of the few passages whose sentences are scored.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import IndexMissingError, StoreError
from bot.indexing.keyword import KeywordIndex
from bot.indexing.milvus_store import (
    BM25_B,
    BM25_K1,
    MilvusTarget,
    candidate_hits,
    client,
    dense_hits,
    read_pointer,
    reason,
    scan,
    served_version,
    unit_rows,
)
from bot.indexing.versions import UNIT_TOKEN_CACHE, Index, _ordinal
from bot.records import Article


class DocFreq(KeywordIndex):
    """The version's keyword statistics, counted from its passages' terms: the idf sentence
    scoring needs, and bm25s's BM25 of any passage from its terms (for the fusion)."""

    def __init__(self, doc_freq: Counter[str], num_docs: int, total_terms: int = 0) -> None:
        self.counts = doc_freq
        self.num_docs = num_docs
        self.average_length = total_terms / num_docs if num_docs else 1.0

    def scores(self, tokens: list[str], mask: np.ndarray | None = None) -> np.ndarray:
        raise StoreError("Keyword scores over every passage are not available from Milvus; it searches in the engine.")

    def idf(self, tokens: list[str]) -> dict[str, float]:
        n = self.num_docs
        return {t: float(np.log(1 + (n - self.counts.get(t, 0) + 0.5) / (self.counts.get(t, 0) + 0.5))) for t in tokens}

    def bm25(self, tokens: list[str], terms: list[str]) -> np.ndarray:
        """BM25 of each passage (its space-joined terms) for the query tokens, as bm25s scores it
        (`lucene`: idf · tf / (tf + k1 · (1 - b + b · length / average)), summed over the query
        tokens, repeats included), so the fusion sees the FAISS backend's keyword scores. The
        engine's own BM25 is the same times k1 + 1 on Milvus 2.5, but other builds scale it
        otherwise (Lite 3.x: negative), so it only chooses the candidates."""
        idf = self.idf(tokens)
        out = np.zeros(len(terms), dtype=np.float32)
        for n, text in enumerate(terms):
            words = text.split()
            norm = BM25_K1 * (1 - BM25_B + BM25_B * len(words) / self.average_length)
            for token in tokens:
                if count := words.count(token):
                    out[n] += idf[token] * count / (count + norm)
        return out


class MilvusIndex(Index):
    """One revision of a version in Milvus: the tables in memory, the vectors in the engine."""

    def __init__(self, target: MilvusTarget, manifest: dict[str, Any]) -> None:
        self.target = target
        self.client = client(target)
        self.folder = Path(target.uri)
        self.manifest = {**manifest, "version": served_version(manifest)}
        self.names = tuple(manifest["collections"])
        c = self.client
        try:
            article_rows = scan(c, self.names[2], "", ["article", "part", "body"])
            passage_rows = scan(c, self.names[0], "", ["pid", "article", "start", "end", "first", "last", "terms"])
            unit_rows = scan(c, self.names[1], "", ["uid", "article", "start", "end"])
        except Exception as exc:
            raise StoreError(f"Cannot load version {self.version} from Milvus: {reason(exc)}") from None
        parts: dict[int, dict[int, str]] = {}
        for row in article_rows:
            parts.setdefault(int(row["article"]), {})[int(row["part"])] = row["body"]
        keys = sorted(parts)
        self.articles = []
        for key in keys:
            record = json.loads(parts[key][0])
            record.pop("hash", None)
            record["text"] = "".join(parts[key][p] for p in range(1, len(parts[key])))
            self.articles.append(Article.from_dict(record))
        number = {key: n for n, key in enumerate(keys)}
        self.article_number = {a.id: n for n, a in enumerate(self.articles)}
        unit_rows.sort(key=lambda r: int(r["uid"]))
        self.unit_keys = np.array([int(r["uid"]) for r in unit_rows], dtype=np.int64)
        self.units = np.array(
            [(number[int(r["article"])], int(r["start"]), int(r["end"])) for r in unit_rows], dtype=np.int64
        ).reshape(-1, 3)
        passage_rows.sort(key=lambda r: int(r["pid"]))
        self.passage_keys = np.array([int(r["pid"]) for r in passage_rows], dtype=np.int64)
        firsts = np.searchsorted(self.unit_keys, [int(r["first"]) for r in passage_rows])
        lasts = np.searchsorted(self.unit_keys, [int(r["last"]) for r in passage_rows])
        self.passages = np.array(
            [
                (number[int(r["article"])], int(r["start"]), int(r["end"]), int(f), int(la))
                for r, f, la in zip(passage_rows, firsts, lasts, strict=True)
            ],
            dtype=np.int64,
        ).reshape(-1, 5)
        doc_freq: Counter[str] = Counter()
        total_terms = 0
        for row in passage_rows:
            words = row["terms"].split()
            total_terms += len(words)
            doc_freq.update(set(words))
        self.keyword = DocFreq(doc_freq, len(passage_rows), total_terms)
        self.unit_tokens = lru_cache(maxsize=UNIT_TOKEN_CACHE)(self._unit_tokens)
        self.title_tokens = lru_cache(maxsize=UNIT_TOKEN_CACHE)(self._title_tokens)
        self.passage_article = np.ascontiguousarray(self.passages[:, 0])
        self.article_days = np.array([(a.date or "")[:10] for a in self.articles], dtype="U10")
        self.article_ordinals = np.array([_ordinal(day) for day in self.article_days], dtype=np.float64)

    @property
    def model(self) -> str:
        return str(self.manifest["model"]["name"])

    def dense_search(self, vector: np.ndarray, n: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-`n` passages by inner product, searched in the engine (for baselines and benchmarks)."""
        hits = self._engine(lambda: dense_hits(self.client, self.names[0], vector, n))
        rows, scores = self._rows([h[0] for h in hits], np.array([h[1] for h in hits], dtype=np.float64))
        return rows, scores.astype(np.float32)

    def _engine(self, call: Any) -> Any:
        try:
            return call()
        except Exception as exc:  # pymilvus and grpc raise their own error types
            raise StoreError(f"The search engine failed: {reason(exc)}") from None

    def _rows(self, ids: list[int], scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Table rows of engine ids, dropping ids this revision does not know (added since it loaded)."""
        keys = np.array(ids, dtype=np.int64)
        rows = np.searchsorted(self.passage_keys, keys)
        safe = np.minimum(rows, max(0, len(self.passage_keys) - 1))
        known = (rows < len(self.passage_keys)) & (self.passage_keys[safe] == keys) if len(keys) else rows > 0
        return rows[known].astype(np.int64), scores[known]

    def scored_candidates(
        self,
        vector: np.ndarray,
        tokens: list[str],
        depth: int,
        mask: np.ndarray | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(passage rows, cosine, BM25) of every passage among the engine's top-`depth` dense and
        top-`depth` BM25 hits, each scored by both retrievers as `retrieval.hybrid_search` scores
        FAISS candidates: the cosine of the passage's stored vector, BM25 from its stored terms."""
        where = _date_filter(since, until)
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32))
        if mask is not None:
            allowed = self.passage_keys[np.flatnonzero(mask)]
            if not len(allowed):
                return empty
            where = " and ".join(filter(None, [where, f"pid in [{', '.join(str(int(k)) for k in allowed)}]"]))
        hits = self._engine(lambda: candidate_hits(self.client, self.names[0], vector, " ".join(tokens), depth, where))
        rows, kept = self._rows([h[0] for h in hits], np.arange(len(hits)))
        if not len(rows):
            return empty
        order = np.argsort(rows, kind="stable")  # ascending rows, as FAISS's candidates: ties fuse alike
        rows, kept = rows[order], kept[order]
        dense = np.array([hits[i][1] for i in kept], dtype=np.float32)
        keyword = self.keyword.bm25(tokens, [hits[i][2] for i in kept])
        return rows, dense, keyword

    def unit_vectors_of(self, ranges: list[tuple[int, int]]) -> list[np.ndarray]:
        """The sentence-unit vectors of each [first, last) range, fetched from the engine in one call."""
        wanted = [int(k) for first, last in ranges for k in self.unit_keys[first:last]]
        found = self._engine(lambda: unit_rows(self.client, self.names[1], wanted)) if wanted else {}
        dimension = int(self.manifest["model"]["dimension"])
        missing = np.zeros(dimension, dtype=np.float32)  # deleted since this revision was loaded
        return [
            np.array([found.get(int(k), missing) for k in self.unit_keys[first:last]], dtype=np.float32).reshape(
                -1, dimension
            )
            for first, last in ranges
        ]


def _date_filter(since: str | None, until: str | None) -> str:
    clauses = []
    if since or until:
        clauses.append('day != ""')
    if since:
        clauses.append(f'day >= "{since[:10]}"')
    if until:
        clauses.append(f'day <= "{until[:10]}"')
    return " and ".join(clauses)


def open_milvus_index(target: MilvusTarget) -> MilvusIndex:
    """Load the live revision from the engine."""
    manifest = read_pointer(target)
    if manifest is None:
        raise IndexMissingError(f"No index in Milvus at {target.describe()}: run `bot index` first.")
    return MilvusIndex(target, manifest)
