"""The encoder's floors, an index build against bare encoding, and one added article against a
full rebuild."""

from __future__ import annotations

import hashlib
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from data import write_jsonl
from update_cost import make_vocabulary, synthetic_article, write_synthetic_corpus

from bot.articles.corpus import load_corpus
from bot.indexing.building import chunk_corpus
from bot.indexing.faiss_build import build_index
from bot.models.encoder import Embedder


def encode_floor(embedder: Embedder, questions: list[str]) -> dict[str, float]:
    """Bare `encode` of one question (median over distinct ones) and of batches of 32."""
    embedder.encode(questions[:8])  # warm-up
    singles = []
    for question in questions[8:48]:
        started = time.perf_counter()
        embedder.encode([question], batch_size=1)
        singles.append((time.perf_counter() - started) * 1000)
    batches = []
    for start in range(48, 48 + 32 * 5, 32):
        chunk = questions[start : start + 32]
        started = time.perf_counter()
        embedder.encode(chunk, batch_size=32)
        batches.append(len(chunk) / (time.perf_counter() - started))
    return {"single_ms": statistics.median(singles), "batch32_per_s": statistics.median(batches)}


def build_vs_encode(embedder: Embedder, rows: list[dict[str, str]], work: Path) -> dict[str, Any]:
    """`build_index` over `rows` next to bare batched encoding of the texts it embeds."""
    corpus_file = write_jsonl(rows, work / "build-corpus" / "articles.jsonl")
    corpus = load_corpus(corpus_file)
    _, units, passage_texts, _ = chunk_corpus(corpus)
    unit_texts = [corpus.articles[a].text[s:e] for a, s, e in units]

    def bare(texts: list[str]) -> float:
        started = time.perf_counter()
        embedder.encode(texts)
        return time.perf_counter() - started

    # The floor is taken before and after the build and averaged: a shared machine's load drifts.
    before = bare(passage_texts), bare(unit_texts)
    report = build_index(corpus_file, work / "build-index", embedder)
    after = bare(passage_texts), bare(unit_texts)
    bare_passages, bare_units = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
    return {
        "articles": report.articles,
        "passages": report.passages,
        "units": report.units,
        "build_s": report.seconds,
        "build_passages_per_s": report.passages / report.seconds,
        "bare_passages_s": bare_passages,
        "bare_passages_per_s": report.passages / bare_passages,
        "bare_units_s": bare_units,
        # What the build must embed at the least: its passages and its sentence units.
        "bare_all_s": bare_passages + bare_units,
    }


class CostedEmbedder:
    """Cheap hashing vectors under the real model's name, charging the real model's measured cost.

    A full rebuild of 10,000 articles with the real model takes longer than the whole benchmark
    may, so encoding is costed instead of run: each text encoded adds `seconds_per_text` (measured
    on a sample of the same texts with the real model); everything else is run and timed.
    """

    def __init__(self, name: str, dimension: int, seconds_per_word: float) -> None:
        self.name = name
        self.dimension = dimension
        self.seconds_per_word = seconds_per_word
        self.texts = 0
        self.seconds = 0.0

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        self.texts += len(texts)
        self.seconds += self.seconds_per_word * sum(len(t.split()) for t in texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
            out[row] = np.random.default_rng(int.from_bytes(digest)).standard_normal(self.dimension)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


def incremental(embedder: Embedder, work: Path, articles: int = 10_000) -> dict[str, Any]:
    """Add one article to an `articles`-article corpus: its cost as a fraction of a full rebuild."""
    corpus = write_synthetic_corpus(work / "incremental-corpus", articles)  # the corpus of bench/update_cost.py
    _, units, passage_texts, _ = chunk_corpus(load_corpus(corpus))
    corpus_texts = load_corpus(corpus).articles
    unit_texts = [corpus_texts[a].text[s:e] for a, s, e in units]
    share = 96 * len(unit_texts) // max(1, len(passage_texts))  # units in the mix the build embeds
    sample = passage_texts[:96] + unit_texts[:share]
    started = time.perf_counter()
    embedder.encode(passage_texts[:96])
    embedder.encode(unit_texts[:share])
    per_word = (time.perf_counter() - started) / sum(len(t.split()) for t in sample)
    costed = CostedEmbedder(embedder.name, embedder.dimension, per_word)
    index_dir = work / "incremental-index"
    started = time.perf_counter()
    build_index(corpus, index_dir, costed)
    full_run = time.perf_counter() - started
    full_texts, full_encode = costed.texts, costed.seconds
    rng = np.random.default_rng(1)
    write_jsonl([synthetic_article(articles, rng, make_vocabulary(5000, rng))], corpus / "new.jsonl")
    costed.texts, costed.seconds = 0, 0.0
    started = time.perf_counter()
    build_index(corpus, index_dir, costed)
    added_run = time.perf_counter() - started
    full = full_run + full_encode
    added = added_run + costed.seconds
    return {
        "articles": articles,
        "texts_full": full_texts,
        "texts_added": costed.texts,
        "seconds_per_word": per_word,
        "full_encode_costed_s": full_encode,
        "full_s": full,
        "full_measured_s": full_run,
        "added_s": added,
        "added_measured_s": added_run,
        "fraction": added / full,
        "passages": len(passage_texts),
        "units": len(units),
    }
