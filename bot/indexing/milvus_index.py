"""A version in Milvus, as the answering core sees it: the same tables as a FAISS version (articles,
passages and units by offset, keyword statistics), loaded once per revision, while dense and BM25
search and the sentence-unit vectors stay in the engine.

Each reader holds the article records and offset tables, as with FAISS (tens of bytes a passage
plus the text); the vectors, by far the largest part, are fetched per question: the candidates
of the engine's dense and BM25 searches with their vectors and terms (scored and fused by the
bot, as on FAISS), then the unit vectors of the few passages whose sentences are scored.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import IndexMissingError, StoreError
from bot.indexing.index import Candidates, Index
from bot.indexing.keyword import KeywordStats
from bot.indexing.milvus_store import (
    HNSW_EF,
    SEARCH_CONSISTENCY,
    MilvusTarget,
    client,
    read_pointer,
    reason,
    scan,
    served_version,
)
from bot.records import Article


class MilvusIndex(Index):
    """One revision of a version in Milvus: the tables in memory, the vectors in the engine."""

    def __init__(self, target: MilvusTarget, manifest: dict[str, Any]) -> None:
        self.target = target
        self.client = client(target)
        self.names = tuple(manifest["collections"])
        c = self.client
        try:
            article_rows = scan(c, self.names[2], "", ["article", "part", "body"])
            passage_rows = scan(c, self.names[0], "", ["pid", "article", "start", "end", "first", "last", "terms"])
            unit_records = scan(c, self.names[1], "", ["uid", "article", "start", "end"])
        except Exception as exc:
            raise StoreError(f"Cannot load version {served_version(manifest)} from Milvus: {reason(exc)}") from None
        parts: dict[int, dict[int, str]] = {}
        for row in article_rows:
            parts.setdefault(int(row["article"]), {})[int(row["part"])] = row["body"]
        keys = sorted(parts)
        articles = []
        for key in keys:
            record = json.loads(parts[key][0])
            record.pop("hash", None)
            record["text"] = "".join(parts[key][p] for p in range(1, len(parts[key])))
            articles.append(Article.from_dict(record))
        number = {key: n for n, key in enumerate(keys)}
        unit_records.sort(key=lambda r: int(r["uid"]))
        self.unit_keys = np.array([int(r["uid"]) for r in unit_records], dtype=np.int64)
        units = np.array(
            [(number[int(r["article"])], int(r["start"]), int(r["end"])) for r in unit_records], dtype=np.int64
        ).reshape(-1, 3)
        passage_rows.sort(key=lambda r: int(r["pid"]))
        self.passage_keys = np.array([int(r["pid"]) for r in passage_rows], dtype=np.int64)
        firsts = np.searchsorted(self.unit_keys, [int(r["first"]) for r in passage_rows])
        lasts = np.searchsorted(self.unit_keys, [int(r["last"]) for r in passage_rows])
        passages = np.array(
            [
                (number[int(r["article"])], int(r["start"]), int(r["end"]), int(f), int(la))
                for r, f, la in zip(passage_rows, firsts, lasts, strict=True)
            ],
            dtype=np.int64,
        ).reshape(-1, 5)
        # The version's keyword statistics, counted from its passages' terms: the idf sentence
        # scoring needs, and bm25s's BM25 of any candidate from its terms (for the fusion).
        keyword = KeywordStats.counted(row["terms"] for row in passage_rows)
        super().__init__(
            Path(target.uri), {**manifest, "version": served_version(manifest)}, articles, passages, units, keyword
        )

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

    def dense_search(self, vector: np.ndarray, n: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-`n` passages by inner product, searched in the engine (for baselines and benchmarks)."""
        hits = self._engine(lambda: dense_hits(self.client, self.names[0], vector, n))
        rows, scores = self._rows([h[0] for h in hits], np.array([h[1] for h in hits], dtype=np.float64))
        return rows, scores.astype(np.float32)

    def keyword_search(self, tokens: list[str], n: int) -> np.ndarray:
        """Top-`n` passages by the engine's BM25 alone (its scores are bm25s's times k1 + 1: the
        same order), best first."""
        if not tokens:
            return np.zeros(0, dtype=np.int64)
        hits = self._engine(lambda: keyword_hits(self.client, self.names[0], " ".join(tokens), n))
        rows, _ = self._rows([h[0] for h in hits], np.arange(len(hits)))
        return rows

    def candidates(
        self,
        vector: np.ndarray,
        tokens: list[str],
        depth: int,
        mask: np.ndarray | None = None,
        since: dt.date | None = None,
        until: dt.date | None = None,
    ) -> Candidates:
        """(passage rows, cosine, BM25) of every passage among the engine's top-`depth` dense and
        top-`depth` BM25 hits, each scored by both retrievers as the FAISS backend scores its
        candidates: the cosine of the passage's stored vector, BM25 from its stored terms."""
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


def _date_filter(since: dt.date | None, until: dt.date | None) -> str:
    clauses = []
    if since is not None or until is not None:
        clauses.append('day != ""')
    if since is not None:
        clauses.append(f'day >= "{since.isoformat()}"')
    if until is not None:
        clauses.append(f'day <= "{until.isoformat()}"')
    return " and ".join(clauses)


# -- the engine's searches ----------------------------------------------------------------------


def candidate_hits(
    c: Any, collection: str, vector: np.ndarray, text: str, depth: int, where: str
) -> list[tuple[int, float, str]]:
    """(pid, cosine, BM25 terms) of the top-`depth` dense hits and (when `text`) the top-`depth`
    BM25 hits. Two searches: the dense one gives its hits' cosines (the exact inner products of
    FLAT and HNSW), the BM25 one its hits' vectors, for the cosine of those dense search missed
    (measured cheaper than one hybrid request returning every hit's vector: 3.9 against 5.1 ms)."""
    q = vector.astype(np.float32)
    how = {"filter": where, "limit": depth, "consistency_level": SEARCH_CONSISTENCY}
    ann = {"metric_type": "IP", "params": {"ef": max(HNSW_EF, depth)}}
    dense = c.search(collection, [q.tolist()], anns_field="dense", search_params=ann, output_fields=["terms"], **how)
    hits = {int(h["id"]): (float(h["distance"]), str(h["entity"]["terms"])) for h in dense[0]}
    if text:
        bm25 = {"metric_type": "BM25"}
        found = c.search(
            collection, [text], anns_field="sparse", search_params=bm25, output_fields=["terms", "dense"], **how
        )
        missed = [(int(h["id"]), h["entity"]) for h in found[0] if int(h["id"]) not in hits]
        if missed:
            cosines = np.array([e["dense"] for _, e in missed], dtype=np.float32) @ q
            hits.update({pid: (float(cos), e["terms"]) for (pid, e), cos in zip(missed, cosines, strict=True)})
    return [(pid, cosine, str(terms)) for pid, (cosine, terms) in hits.items()]


def keyword_hits(c: Any, collection: str, text: str, n: int) -> list[tuple[int, float]]:
    """(pid, BM25) of the engine's top-`n` passages by BM25 alone."""
    found = c.search(
        collection,
        [text],
        anns_field="sparse",
        search_params={"metric_type": "BM25"},
        limit=n,
        consistency_level=SEARCH_CONSISTENCY,
    )
    return [(int(h["id"]), float(h["distance"])) for h in found[0]]


def dense_hits(c: Any, collection: str, vector: np.ndarray, n: int) -> list[tuple[int, float]]:
    """(pid, inner product) of the top-`n` passages by dense search alone."""
    hits = c.search(
        collection,
        [vector.astype(np.float32).tolist()],
        anns_field="dense",
        limit=max(1, min(n, 16384)),
        search_params={"metric_type": "IP", "params": {"ef": max(HNSW_EF, n)}},
        output_fields=[],
        consistency_level=SEARCH_CONSISTENCY,
    )[0]
    return [(int(h["id"]), float(h["distance"])) for h in hits]


def unit_rows(c: Any, collection: str, ids: list[int]) -> dict[int, np.ndarray]:
    """Sentence-unit vectors by id (ids deleted since are simply absent)."""
    rows = c.get(collection, ids=ids, output_fields=["vector"], consistency_level=SEARCH_CONSISTENCY)
    return {int(r["uid"]): np.asarray(r["vector"], dtype=np.float32) for r in rows}


def open_milvus_index(target: MilvusTarget) -> MilvusIndex:
    """Load the live revision from the engine."""
    manifest = read_pointer(target)
    if manifest is None:
        raise IndexMissingError(f"No index in Milvus at {target.describe()}: run `bot index` first.")
    return MilvusIndex(target, manifest)
