"""Search at 10k, 100k and 1M passages, and a 1M-passage index version for the server.

The vectors are synthetic (`data.clustered`): 384-d, L2-normalised, in clusters of ~100, with
queries that are stored vectors moved by noise. The 1M version is a complete index folder
(articles, offset tables, vectors, FAISS, BM25) written by `bot.indexing.versions.write_version`, so the
server loads it exactly as it loads a real one; its texts are generated words. It is cached
between runs under the cache folder, keyed by the store's format and FAISS parameters.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from data import clustered, queries_near

from bot.indexing import dense
from bot.indexing import versions as store
from bot.indexing.keyword import KeywordIndex
from bot.records import Article

PASSAGES_PER_ARTICLE = 10
WORDS_PER_PASSAGE = 16


def store_key(n: int) -> str:
    """Changes whenever the store's format or FAISS building changes (then the cache is rebuilt)."""
    parts = [str(store.FORMAT_VERSION), inspect.getsource(dense.build_faiss), inspect.getsource(dense.ivf_lists)]
    parts += [
        f"{name}={getattr(dense, name)}"
        for name in sorted(dir(dense))
        if name.startswith(("IVF_", "APPROX")) and name != "IVF_NPROBE"
    ]
    return f"{n}-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(a[a >= 0].tolist()) & set(b.tolist())) / len(b) for a, b in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def _single_query_ms(index: Any, queries: np.ndarray, k: int = 10) -> tuple[float, np.ndarray]:
    times: list[float] = []
    ids = np.empty((len(queries), k), dtype=np.int64)
    for row, query in enumerate(queries):
        started = time.perf_counter()
        _, found = index.search(query.reshape(1, -1), k)
        times.append((time.perf_counter() - started) * 1000)
        ids[row] = found[0]
    return statistics.median(times), ids


def search_figures(n: int, vectors: np.ndarray, built: Any | None, queries: int = 200) -> dict[str, Any]:
    """Exact search (the floor at this size) next to the index the store builds for `n` vectors."""
    import faiss

    qs = queries_near(vectors, queries)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(np.ascontiguousarray(vectors))
    _, truth = exact.search(qs, 10)  # batched: the ground truth, fast
    exact_ms, _ = _single_query_ms(exact, qs[: 20 if n >= 500_000 else 100])
    del exact
    started = time.perf_counter()
    index = built if built is not None else dense.build_faiss(vectors)
    build_s = time.perf_counter() - started if built is None else float("nan")
    cold_ms, _ = _single_query_ms(index, qs[:50])  # first touches of a memory-mapped index fault pages in
    sweep: dict[int, dict[str, float]] = {}
    if isinstance(index, faiss.IndexIVF):
        for nprobe in (8, 16, 32, 64):
            index.nprobe = nprobe
            ms, found = _single_query_ms(index, qs)
            sweep[nprobe] = {"p50_ms": ms, "recall_at_10": _recall(found, truth)}
        index.nprobe = dense.IVF_NPROBE
    ms, found = _single_query_ms(index, qs)
    return {
        "passages": n,
        "index": type(index).__name__,
        "exact_p50_ms": exact_ms,
        "first_pass_p50_ms": cold_ms,
        "p50_ms": ms,
        "recall_at_10": _recall(found, truth),
        "build_s": build_s,
        "nprobe_sweep": sweep,
    }


def _texts(rng: np.random.Generator, n: int, vocabulary: int = 20_000) -> list[list[str]]:
    """Zipf-distributed pseudo-words, as token lists (the BM25 index is built from tokens)."""
    weights = 1.0 / np.arange(1, vocabulary + 1)
    ids = rng.choice(vocabulary, (n, WORDS_PER_PASSAGE), p=weights / weights.sum())
    words = [f"w{i}" for i in range(vocabulary)]
    return [[words[i] for i in row] for row in ids]


def million_version(cache: Path, n: int = 1_000_000, log: Any = print) -> tuple[Path, dict[str, float]]:
    """An index folder holding one version of `n` passages; built once per store change."""
    folder = cache / f"index-{store_key(n)}"
    if (folder / "CURRENT").is_file():
        return folder, {"cached": 1.0}
    for stale in cache.glob("index-*"):
        shutil.rmtree(stale, ignore_errors=True)
    timings: dict[str, float] = {"cached": 0.0}
    started = time.perf_counter()
    rng = np.random.default_rng(5)
    vectors = clustered(n)
    tokens = _texts(rng, n)
    timings["generate_s"] = time.perf_counter() - started
    log(f"  generated {n:,} vectors and texts in {timings['generate_s']:.0f} s")
    articles: list[Article] = []
    passages = np.zeros((n, 5), dtype=np.int64)
    for a in range(0, n, PASSAGES_PER_ARTICLE):
        number = a // PASSAGES_PER_ARTICLE
        pieces, offset = [], 0
        for p in range(a, min(n, a + PASSAGES_PER_ARTICLE)):
            text = " ".join(tokens[p]).capitalize() + "."
            passages[p] = (number, offset, offset + len(text), p, p + 1)
            pieces.append(text)
            offset += len(text) + 1
        articles.append(
            Article(id=f"a{number:07d}", title=f"Article {number}", text=" ".join(pieces), date="2025-01-23")
        )
    started = time.perf_counter()
    import bm25s

    bm25 = bm25s.BM25()
    bm25.index(tokens, show_progress=False)
    timings["bm25_s"] = time.perf_counter() - started
    log(f"  BM25 over {n:,} passages in {timings['bm25_s']:.0f} s")
    data = store.IndexData(
        articles=articles,
        passages=passages,
        units=passages[:, :3].copy(),  # one sentence unit per passage
        passage_vectors=vectors,
        unit_vectors=vectors.astype(np.float16),
        keyword=KeywordIndex(bm25),
        model="sentence-transformers/all-MiniLM-L6-v2",  # the server checks the name; the vectors are synthetic
        dimension=vectors.shape[1],
        corpus_fingerprint=hashlib.sha256(f"synthetic-{n}".encode()).hexdigest(),
    )
    started = time.perf_counter()
    building = cache / f".building-index-{store_key(n)}"
    shutil.rmtree(building, ignore_errors=True)
    store.write_version(data, building)
    building.rename(folder)
    timings["write_s"] = time.perf_counter() - started
    log(
        f"  wrote the version (FAISS {json.loads(next(folder.glob('versions/*/manifest.json')).read_text())['faiss']}) in {timings['write_s']:.0f} s"
    )
    return folder, timings
