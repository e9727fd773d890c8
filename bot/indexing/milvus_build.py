"""Corpus → Milvus: a whole new version, or only the articles that changed in the live one.

Which path a build takes, and why:

- **New version** (new collections, then the pointer switches): the first build, `--full`, or
  when the live version was made with another model, dimension or chunking rules. Nothing in
  the live version can be reused then, and readers must never see a mix.
- **In place** (the live version's collections): otherwise. Articles that are new or whose
  record changed get their rows inserted; removed or changed ones get theirs deleted by
  `article in [...]`; the revision is bumped. One added article costs its own embedding and
  rows, not a rebuild; Milvus maintains BM25 statistics itself as rows come and go.

The lock and the embedding cache stay in the index folder: the indexer is still the single
writer, and vectors embedded once are not embedded again by either backend.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from bot.articles.corpus import Corpus
from bot.errors import StoreError
from bot.indexing.building import BuildReport, chunk_corpus, described, embedding_caches, matches, read_corpus
from bot.indexing.embedding_cache import EmbeddingCache
from bot.indexing.keyword import tokenize
from bot.indexing.milvus_store import (
    MilvusTarget,
    Rows,
    live_articles,
    publish_version,
    read_pointer,
    served_version,
    update_in_place,
)
from bot.models.encoder import Embedder
from bot.records import Article

TEXT_PART_CHARS = 16_000  # a VARCHAR holds 65,535 bytes: 16,000 characters of UTF-8 at most
MAX_PARTS = 255  # the part is the low 8 bits of an article row's id
MAX_TERMS_BYTES = 60_000


def record_hash(article: Article) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(article), sort_keys=True).encode()).hexdigest()


# Unit and passage ids: the article's key in the high bits, its n-th unit or passage in the low.
ROW_BITS = 20


def make_rows(
    articles: list[Article],
    keys: list[int],
    passages: np.ndarray,
    units: np.ndarray,
    passage_vectors: np.ndarray,
    unit_vectors: np.ndarray,
) -> Rows:
    """Rows for `articles` (numbered by position in `passages`/`units`, as `indexer.chunk_corpus` makes them)."""
    unit_ids = np.zeros(len(units), dtype=np.int64)
    first_unit = np.searchsorted(units[:, 0], np.arange(len(articles))) if len(units) else np.zeros(0, np.int64)
    for n in range(len(units)):
        a = int(units[n, 0])
        unit_ids[n] = (keys[a] << ROW_BITS) | (n - int(first_unit[a]))
    unit_rows = [
        {"uid": int(unit_ids[n]), "article": keys[int(a)], "start": int(s), "end": int(e), "vector": unit_vectors[n]}
        for n, (a, s, e) in enumerate(units.tolist())
    ]
    passage_rows: list[dict[str, Any]] = []
    first_passage = np.searchsorted(passages[:, 0], np.arange(len(articles)))
    for n, (a, s, e, fu, lu) in enumerate(passages.tolist()):
        article = articles[a]
        terms = " ".join(tokenize(f"{article.title}\n{article.text[s:e]}")) or "_"
        passage_rows.append(
            {
                "pid": (keys[a] << ROW_BITS) | (n - int(first_passage[a])),
                "article": keys[a],
                "start": s,
                "end": e,
                "first": int(unit_ids[fu]),
                "last": int(unit_ids[lu - 1]) + 1,
                "day": (article.date or "")[:10],
                "terms": terms.encode()[:MAX_TERMS_BYTES].decode(errors="ignore"),
                "dense": passage_vectors[n],
            }
        )
    article_rows: list[dict[str, Any]] = []
    for article, key in zip(articles, keys, strict=True):
        record = dataclasses.asdict(article)
        text = record.pop("text")
        record["hash"] = record_hash(article)
        parts = [text[i : i + TEXT_PART_CHARS] for i in range(0, len(text), TEXT_PART_CHARS)]
        if len(parts) >= MAX_PARTS:
            raise StoreError(f"Article {article.id!r} is too long for the Milvus index ({len(text):,} characters).")
        for part, body in enumerate([json.dumps(record, ensure_ascii=False), *parts]):
            article_rows.append({"row": (key << 8) | part, "article": key, "part": part, "body": body, "v": [0.0, 0.0]})
    return Rows(passage_rows, unit_rows, article_rows)


def _rows(
    articles: list[Article],
    keys: list[int],
    caches: tuple[EmbeddingCache, EmbeddingCache],
    embedder: Embedder,
    *,
    full: bool,
    progress: bool,
) -> Rows:
    passages, units, passage_texts, _ = chunk_corpus(Corpus(articles=articles))
    unit_texts = [articles[a].text[s:e] for a, s, e in units.tolist()]
    passage_vectors = caches[0].embed(passage_texts, embedder, reuse=not full, progress=progress)
    # Stored as float16 by the FAISS backend: the same rounding keeps sentence scores identical.
    unit_vectors = caches[1].embed(unit_texts, embedder, reuse=not full, progress=progress).astype(np.float16)
    return make_rows(articles, keys, passages, units, passage_vectors, unit_vectors.astype(np.float32))


def build_milvus(
    target: MilvusTarget,
    corpus_path: Path | str,
    index_dir: Path | str,
    embedder: Embedder,
    *,
    progress: bool = False,
    full: bool = False,
) -> BuildReport:
    """Bring the Milvus index in line with the corpus (see the module docstring for the paths)."""
    started = time.perf_counter()
    corpus_path, index_dir = Path(corpus_path), Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(index_dir / ".lock")):
        corpus, articles = read_corpus(corpus_path)
        caches = embedding_caches(index_dir, embedder)
        manifest = read_pointer(target)
        now = dt.datetime.now(dt.UTC)
        description = described(corpus, embedder) | {"built_at": now.isoformat(timespec="seconds"), "backend": "milvus"}
        reusable = (
            manifest is not None
            and not full
            and manifest.get("format_version") == description["format_version"]
            and manifest["model"] == description["model"]
            and manifest.get("chunker") == description["chunker"]
        )
        if manifest is None or not reusable:
            rows = _rows(articles, list(range(len(articles))), caches, embedder, full=full, progress=progress)
            version = now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + corpus.fingerprint()[:8]
            counts = {"articles": len(articles), "passages": len(rows.passages), "units": len(rows.units)}
            served = publish_version(
                target, version, rows, {**description, "counts": counts}, embedder.dimension, len(articles)
            )
            for cache in caches:
                cache.prune()
        else:
            live = live_articles(target, manifest)
            hashes = {a.id: record_hash(a) for a in articles}
            removed = [key for article_id, (key, known) in live.items() if hashes.get(article_id) != known]
            added = [a for a in articles if live.get(a.id, (0, ""))[1] != hashes[a.id]]
            if not removed and not added:
                served = served_version(manifest)
                counts = manifest.get("counts", {})
            else:
                first = int(manifest.get("next_key", 0))
                keys = list(range(first, first + len(added)))
                rows = _rows(added, keys, caches, embedder, full=False, progress=progress)
                counts = dict(manifest.get("counts", {}))
                counts["articles"] = len(articles)
                changes = {**description, "counts": counts, "next_key": first + len(added)}
                served = update_in_place(target, manifest, removed, rows, changes)
    return BuildReport(
        version=served,
        articles=len(articles),
        passages=int(counts.get("passages", 0)),
        units=int(counts.get("units", 0)),
        seconds=time.perf_counter() - started,
        errors=corpus.errors,
        embedded=caches[0].embedded + caches[1].embedded,
        linked=len(corpus.articles) - len(articles),
    )


def milvus_is_current(target: MilvusTarget, corpus_path: Path, model: str) -> bool:
    """True when the live Milvus version holds exactly this corpus, embedded with this model."""
    try:
        return matches(read_pointer(target), corpus_path, model)
    except StoreError:
        return False
