"""What every build does, on either backend: read the corpus, link near-duplicate copies, chunk
the articles into offset tables (reusing the chunks of unchanged texts), embed what was not
embedded before, and report. `bot.indexing.faiss_build` and `bot.indexing.milvus_build` then
write the result their own way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

import bot.indexing.chunking
from bot.articles.corpus import Corpus, load_corpus
from bot.errors import CorpusError
from bot.indexing.chunking import chunk_article
from bot.indexing.embedding_cache import EmbeddingCache
from bot.indexing.versions import FORMAT_VERSION, Chunks
from bot.models.encoder import Embedder
from bot.records import Article, Copy


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
    return hashlib.sha256(Path(bot.indexing.chunking.__file__).read_bytes()).hexdigest()[:16]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


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


def read_corpus(corpus_path: Path) -> tuple[Corpus, list[Article]]:
    """The corpus and its articles with copies linked; no readable article is a CorpusError."""
    corpus = load_corpus(corpus_path)
    if not corpus.articles:
        reason = "no readable articles" + (f" ({len(corpus.errors)} malformed)" if corpus.errors else "")
        raise CorpusError(str(corpus_path), f"{reason}: add .md/.txt/.jsonl articles first")
    return corpus, link_copies(corpus.articles)


def embedding_caches(index_dir: Path, embedder: Embedder) -> tuple[EmbeddingCache, EmbeddingCache]:
    """The vectors of passages and of sentence units already embedded with this model (units are
    kept as float16, as the index stores them)."""
    root = index_dir / "embeddings"
    return (
        EmbeddingCache(root, "passages", embedder.name, embedder.dimension, np.float32),
        EmbeddingCache(root, "units", embedder.name, embedder.dimension, np.float16),
    )


def described(corpus: Corpus, embedder: Embedder) -> dict[str, Any]:
    """What a version says of itself on either backend: format, model, corpus, chunking rules."""
    return {
        "format_version": FORMAT_VERSION,
        "model": {"name": embedder.name, "dimension": embedder.dimension},
        "corpus": {"fingerprint": corpus.fingerprint()},
        "chunker": chunker_key(),
    }


def matches(manifest: dict[str, Any] | None, corpus_path: Path, model: str) -> bool:
    """True when a version's manifest says it holds exactly this corpus, chunked by these rules,
    embedded with this model, in this format."""
    return (
        manifest is not None
        and manifest.get("format_version") == FORMAT_VERSION
        and manifest["model"]["name"] == model
        and manifest["corpus"]["fingerprint"] == load_corpus(corpus_path).fingerprint()
        and manifest.get("chunker") == chunker_key()
    )
