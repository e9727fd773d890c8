"""The Milvus backend (on Milvus Lite 2.5, in this process or behind `bot serve`) next to FAISS.

- Search at 10k and 100k passages: the same synthetic vectors as the FAISS rows (`data.clustered`)
  with 16 Zipf pseudo-words a passage for BM25, written as a version's passages collection (FLAT
  dense index, BM25 sparse index); build time (insert, flush, index) against FAISS's; dense p50
  and recall@10 against exact search; the hybrid p50 the answering core pays (the engine's dense
  and BM25 searches, then both scores of every candidate and the z-score fusion in the bot), next
  to FAISS + bm25s hybrid retrieval over the same passages.
- `/ask` p50: a real `bot serve` over the seed indexed into a Milvus Lite file, next to the same
  server on FAISS files, the same questions one client at a time.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from data import clustered, queries_near

from bot.answer.retrieval import fuse
from bot.indexing import milvus_index, milvus_store
from bot.indexing.dense import build_faiss
from bot.indexing.keyword import KeywordIndex, KeywordStats
from bot.indexing.milvus_store import MilvusTarget, release
from bot.indexing.versions import FaissIndex

WORDS = 16
VOCABULARY = 20_000


def _words(n: int, rng: np.random.Generator) -> list[list[str]]:
    weights = 1.0 / np.arange(1, VOCABULARY + 1)
    ids = rng.choice(VOCABULARY, (n, WORDS), p=weights / weights.sum())
    return [[f"w{i}" for i in row] for row in ids]


class _Tables:
    """Just what `FaissIndex.candidates` reads from a FAISS version."""

    def __init__(self, vectors: np.ndarray, keyword: KeywordIndex) -> None:
        self.passage_vectors = vectors
        self.bm25 = keyword
        self.faiss = build_faiss(vectors)

    def date_mask(self, since: Any, until: Any) -> None:
        return None

    def dense_search(self, vector: np.ndarray, n: int, mask: Any = None) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self.faiss.search(vector.reshape(1, -1).astype(np.float32), n)
        return ids[0], scores[0]


def search_figures(n: int, work: Path, queries: int = 200) -> dict[str, Any]:
    rng = np.random.default_rng(11)
    vectors = clustered(n)
    words = _words(n, rng)
    qs = queries_near(vectors, queries)
    q_words = [words[int(i)][:4] for i in rng.choice(n, queries)]
    truth = np.argsort(-(qs @ vectors.T), axis=1)[:, :10]

    started = time.perf_counter()
    tables = _Tables(vectors, KeywordIndex.build([" ".join(w) for w in words]))
    faiss_build = time.perf_counter() - started
    faiss_ms = []
    for q, w in zip(qs, q_words, strict=True):
        t = time.perf_counter()
        fuse(*FaissIndex.candidates(tables, q, w, 50), 8)  # type: ignore[arg-type]
        faiss_ms.append((time.perf_counter() - t) * 1000)

    target = MilvusTarget(str(work / f"search{n}.db"))
    c = milvus_store.client(target)
    started = time.perf_counter()
    names = milvus_store.create_collections(c, f"bench{n}", vectors.shape[1])
    rows = [
        {
            "pid": i,
            "article": i // 10,
            "start": 0,
            "end": 1,
            "first": i,
            "last": i + 1,
            "day": "2025-01-23",
            "terms": " ".join(words[i]),
            "dense": vectors[i],
        }
        for i in range(n)
    ]
    milvus_store.insert_rows(c, names, milvus_store.Rows(rows, [], []))
    milvus_build = time.perf_counter() - started
    stats = KeywordStats.counted(" ".join(w) for w in words)  # what a reader counts when it loads a version
    dense_ms, hybrid_ms, found = [], [], []
    for q, w in zip(qs, q_words, strict=True):
        t = time.perf_counter()
        hits = milvus_index.dense_hits(c, names[0], q, 10)
        dense_ms.append((time.perf_counter() - t) * 1000)
        found.append([h[0] for h in hits])
        t = time.perf_counter()
        hits = sorted(milvus_index.candidate_hits(c, names[0], q, " ".join(w), 50, ""), key=lambda h: h[0])
        ids = np.array([h[0] for h in hits], dtype=np.int64)
        fuse(ids, np.array([h[1] for h in hits]), stats.bm25(w, [h[2] for h in hits]), 8)
        hybrid_ms.append((time.perf_counter() - t) * 1000)
    recall = float(np.mean([len(set(f) & set(t.tolist())) / 10 for f, t in zip(found, truth, strict=True)]))
    release(target)
    return {
        "passages": n,
        "faiss_build_s": faiss_build,
        "faiss_hybrid_p50_ms": statistics.median(faiss_ms),
        "milvus_build_s": milvus_build,
        "milvus_dense_p50_ms": statistics.median(dense_ms),
        "milvus_hybrid_p50_ms": statistics.median(hybrid_ms),
        "milvus_recall_at_10": recall,
    }


def seed_on_milvus(embedder: Any, corpus: Path, work: Path) -> tuple[dict[str, str], float]:
    """The seed indexed into a Milvus Lite file for a server to open; (its env, build seconds)."""
    from bot.indexing.milvus_build import build_milvus

    target = MilvusTarget(str(work / "seed.db"))
    started = time.perf_counter()
    build_milvus(target, corpus, work / "seed-milvus-index", embedder)
    seconds = time.perf_counter() - started
    release(target)  # a Lite file is opened by one process at a time: the server's
    return {"BOT_SEARCH_BACKEND": "milvus", "BOT_MILVUS_URI": target.uri}, seconds
