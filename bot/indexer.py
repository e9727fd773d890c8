"""Build an index version from a corpus: chunk, embed, store, publish."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from filelock import FileLock

from bot.chunking import chunk_article
from bot.corpus import Corpus, load_corpus
from bot.embedding import Embedder
from bot.embedding_cache import EmbeddingCache
from bot.errors import CorpusError
from bot.keyword import KeywordIndex
from bot.records import Article, Copy
from bot.store import APPROXIMATE_ABOVE, IndexData, write_version


@dataclass
class BuildReport:
    """What a build did, for the CLI and the HTTP edge to report."""

    version: str
    articles: int
    passages: int
    units: int
    seconds: float
    errors: list[CorpusError] = field(default_factory=list)
    embedded: int = 0  # passages and units embedded by this build (the rest came from the cache)
    linked: int = 0  # near-duplicate copies linked to their original instead of indexed


def link_copies(articles: list[Article]) -> list[Article]:
    """Drop near-duplicates whose original is in the corpus, listing them on the original instead;
    a copy whose original is gone is indexed in its own right."""
    originals = {a.id for a in articles if not a.duplicate_of}
    copies: dict[str, list[Copy]] = {}
    kept: list[Article] = []
    for article in articles:
        if article.duplicate_of in originals:
            copy = Copy(id=article.id, title=article.title, url=article.url, source=article.source, date=article.date)
            copies.setdefault(article.duplicate_of, []).append(copy)
        else:
            kept.append(article)
    return [replace(a, copies=tuple(copies[a.id])) if a.id in copies else a for a in kept]


def chunk_corpus(corpus: Corpus) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Passages and units of every article as offset tables, plus the texts to embed."""
    passage_rows: list[tuple[int, int, int, int, int]] = []
    unit_rows: list[tuple[int, int, int]] = []
    keyword_texts: list[str] = []
    for number, article in enumerate(corpus.articles):
        units, passages = chunk_article(article.id, article.text)
        base = len(unit_rows)
        index_of = {(u.start, u.end): base + i for i, u in enumerate(units)}
        unit_rows.extend((number, u.start, u.end) for u in units)
        for passage in passages:
            first = index_of[(passage.sentences[0].start, passage.sentences[0].end)]
            passage_rows.append((number, passage.start, passage.end, first, first + len(passage.sentences)))
            # The title goes into the keyword field: "Stargate" questions find its articles.
            keyword_texts.append(f"{article.title}\n{passage.text}")
    passages_table = np.array(passage_rows, dtype=np.int64).reshape(-1, 5)
    units_table = np.array(unit_rows, dtype=np.int64).reshape(-1, 3)
    passage_texts = [corpus.articles[a].text[s:e] for a, s, e, _, _ in passage_rows]
    return passages_table, units_table, passage_texts, keyword_texts


def is_current(corpus_path: Path, index_dir: Path, model: str) -> bool:
    """True when the live index was built from exactly this corpus with this model."""
    from bot.errors import StoreError
    from bot.store import FORMAT_VERSION, current_version, read_manifest

    try:
        manifest = read_manifest(index_dir / "versions" / current_version(index_dir))
    except StoreError:
        return False
    corpus = load_corpus(corpus_path)
    return (
        manifest.get("format_version") == FORMAT_VERSION
        and manifest["model"]["name"] == model
        and manifest["corpus"]["fingerprint"] == corpus.fingerprint()
    )


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
        corpus = load_corpus(corpus_path)
        if not corpus.articles:
            reason = "no readable articles" + (f" ({len(corpus.errors)} malformed)" if corpus.errors else "")
            raise CorpusError(str(corpus_path), f"{reason}: add .md/.txt/.jsonl articles first")
        articles = link_copies(corpus.articles)
        indexed = Corpus(articles=articles)
        passages, units, passage_texts, keyword_texts = chunk_corpus(indexed)
        unit_texts = [articles[a].text[s:e] for a, s, e in units]
        cache_root = index_dir / "embeddings"
        passage_cache = EmbeddingCache(cache_root, "passages", embedder.name, embedder.dimension, np.float32)
        unit_cache = EmbeddingCache(cache_root, "units", embedder.name, embedder.dimension, np.float16)
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
        )
        version = write_version(data, index_dir, approximate_above)
        passage_cache.prune(passage_texts)
        unit_cache.prune(unit_texts)
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
