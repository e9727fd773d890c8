"""Corpus → a new FAISS index version: the shared build steps (`bot.indexing.building`), then the
vectors, FAISS and BM25 files written and published (`bot.indexing.versions`)."""

from __future__ import annotations

import time
from pathlib import Path

from filelock import FileLock

from bot.articles.corpus import Corpus
from bot.errors import StoreError
from bot.indexing.building import (
    BuildReport,
    chunk_corpus,
    chunker_key,
    embedding_caches,
    matches,
    read_corpus,
    text_hash,
)
from bot.indexing.dense import APPROXIMATE_ABOVE
from bot.indexing.keyword import KeywordIndex
from bot.indexing.versions import Chunks, IndexData, current_chunks, current_version, read_manifest, write_version
from bot.models.encoder import Embedder


def previous_chunks(index_dir: Path) -> dict[str, Chunks]:
    """The units and passages of every article in the live version, by text hash, when that
    version was chunked by these same rules: unchanged articles need not be chunked again."""
    return {text_hash(text): chunks for text, chunks in current_chunks(index_dir, chunker_key())}


def is_current(corpus_path: Path, index_dir: Path, model: str) -> bool:
    """True when the live index was built from exactly this corpus with this model and chunking."""
    try:
        manifest = read_manifest(index_dir / "versions" / current_version(index_dir))
    except StoreError:
        return False
    return matches(manifest, corpus_path, model)


def build_index(
    corpus_path: Path | str,
    index_dir: Path | str,
    embedder: Embedder,
    *,
    progress: bool = False,
    approximate_above: int = APPROXIMATE_ABOVE,
    full: bool = False,
) -> BuildReport:
    """Read the corpus, embed the passages and sentence units not embedded before (all of them
    when `full`), and publish a new index version."""
    started = time.perf_counter()
    corpus_path, index_dir = Path(corpus_path), Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    # One indexer at a time per index folder; readers never wait for it.
    with FileLock(str(index_dir / ".lock")):
        corpus, articles = read_corpus(corpus_path)
        indexed = Corpus(articles=articles)
        passages, units, passage_texts, keyword_texts = chunk_corpus(
            indexed, None if full else previous_chunks(index_dir)
        )
        unit_texts = [articles[a].text[s:e] for a, s, e in units]
        passage_cache, unit_cache = embedding_caches(index_dir, embedder)
        passage_vectors = passage_cache.embed(passage_texts, embedder, reuse=not full, progress=progress)
        unit_vectors = unit_cache.embed(unit_texts, embedder, reuse=not full, progress=progress)
        data = IndexData(
            articles=articles,
            passages=passages,
            units=units,
            passage_vectors=passage_vectors,
            unit_vectors=unit_vectors,
            keyword=KeywordIndex.build(keyword_texts),
            model=embedder.name,
            dimension=embedder.dimension,
            corpus_fingerprint=corpus.fingerprint(),
            chunker=chunker_key(),
        )
        version = write_version(data, index_dir, approximate_above)
        passage_cache.prune()
        unit_cache.prune()
    return BuildReport(
        version=version,
        articles=len(articles),
        passages=len(passages),
        units=len(units),
        seconds=time.perf_counter() - started,
        errors=corpus.errors,
        embedded=passage_cache.embedded + unit_cache.embedded,
        linked=len(corpus.articles) - len(articles),
    )
