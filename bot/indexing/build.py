"""Build an index version from a corpus: chunk, embed, store, publish."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from filelock import FileLock

from bot.articles.corpus import Corpus, load_corpus
from bot.errors import CorpusError
from bot.indexing.chunking import chunk_article
from bot.indexing.dense import APPROXIMATE_ABOVE
from bot.indexing.embedding_cache import EmbeddingCache
from bot.indexing.keyword import KeywordIndex
from bot.indexing.versions import Chunks, IndexData, current_chunks, write_version
from bot.models.encoder import Embedder
from bot.records import Article, Copy

if TYPE_CHECKING:
    from bot.indexing.milvus_store import MilvusTarget


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


def chunker_key() -> str:
    """Changes whenever the chunking rules may have: a hash of their source."""
    import bot.indexing.chunking

    return hashlib.sha256(Path(bot.indexing.chunking.__file__).read_bytes()).hexdigest()[:16]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def previous_chunks(index_dir: Path) -> dict[str, Chunks]:
    """The units and passages of every article in the live version, by text hash, when that
    version was chunked by these same rules: unchanged articles need not be chunked again."""
    return {text_hash(text): chunks for text, chunks in current_chunks(index_dir, chunker_key())}


def _chunk(article: Article) -> Chunks:
    units, passages = chunk_article(article.id, article.text)
    first = {(u.start, u.end): i for i, u in enumerate(units)}
    unit_rows = np.array([(u.start, u.end) for u in units], dtype=np.int64).reshape(-1, 2)
    passage_rows = [(p.start, p.end, first[(p.sentences[0].start, p.sentences[0].end)], 0) for p in passages]
    rows = np.array(passage_rows, dtype=np.int64).reshape(-1, 4)
    rows[:, 3] = rows[:, 2] + np.array([len(p.sentences) for p in passages], dtype=np.int64)
    return unit_rows, rows


def chunk_corpus(
    corpus: Corpus, known: dict[str, Chunks] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Passages and units of every article as offset tables, plus the texts to embed; articles
    whose text is in `known` (see `previous_chunks`) reuse their chunks."""
    known = known or {}
    passage_parts: list[np.ndarray] = []
    unit_parts: list[np.ndarray] = []
    base = 0
    for number, article in enumerate(corpus.articles):
        units, passages = known.get(text_hash(article.text)) or _chunk(article)
        unit_parts.append(np.column_stack([np.full(len(units), number), units]))
        passage_parts.append(np.column_stack([np.full(len(passages), number), passages[:, :2], passages[:, 2:] + base]))
        base += len(units)
    passages_table = np.concatenate(passage_parts).astype(np.int64) if passage_parts else np.zeros((0, 5), np.int64)
    units_table = np.concatenate(unit_parts).astype(np.int64) if unit_parts else np.zeros((0, 3), np.int64)
    passage_texts = [corpus.articles[a].text[s:e] for a, s, e in passages_table[:, :3].tolist()]
    # The title goes into the keyword field: "Stargate" questions find its articles.
    keyword_texts = [
        f"{corpus.articles[a].title}\n{text}"
        for a, text in zip(passages_table[:, 0].tolist(), passage_texts, strict=True)
    ]
    return passages_table, units_table, passage_texts, keyword_texts


def is_current(corpus_path: Path, index_dir: Path, model: str, milvus: MilvusTarget | None = None) -> bool:
    """True when the live index was built from exactly this corpus with this model and chunking."""
    from bot.errors import StoreError

    if milvus is not None:
        from bot.indexing.milvus_build import milvus_is_current

        return milvus_is_current(milvus, corpus_path, model)
    from bot.indexing.versions import FORMAT_VERSION, current_version, read_manifest

    try:
        manifest = read_manifest(index_dir / "versions" / current_version(index_dir))
    except StoreError:
        return False
    corpus = load_corpus(corpus_path)
    return (
        manifest.get("format_version") == FORMAT_VERSION
        and manifest["model"]["name"] == model
        and manifest["corpus"]["fingerprint"] == corpus.fingerprint()
        and manifest.get("chunker") == chunker_key()
    )


def read_corpus(corpus_path: Path) -> tuple[Corpus, list[Article]]:
    """The corpus and its articles with copies linked; no readable article is a CorpusError."""
    corpus = load_corpus(corpus_path)
    if not corpus.articles:
        reason = "no readable articles" + (f" ({len(corpus.errors)} malformed)" if corpus.errors else "")
        raise CorpusError(str(corpus_path), f"{reason}: add .md/.txt/.jsonl articles first")
    return corpus, link_copies(corpus.articles)


def build_index(
    corpus_path: Path | str,
    index_dir: Path | str,
    embedder: Embedder,
    *,
    progress: bool = False,
    approximate_above: int = APPROXIMATE_ABOVE,
    full: bool = False,
    milvus: MilvusTarget | None = None,
) -> BuildReport:
    """Read the corpus, embed the passages and sentence units not embedded before (all of them
    when `full`), and publish a new index version (into Milvus when `milvus` says where)."""
    if milvus is not None:
        from bot.indexing.milvus_build import build_milvus

        return build_milvus(milvus, corpus_path, index_dir, embedder, progress=progress, full=full)
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
