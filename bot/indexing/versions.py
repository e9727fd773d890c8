"""The index on disk: its layout, immutable versions, the manifest, publishing and garbage collection.

    index/
      CURRENT                 name of the live version (replaced atomically)
      versions/<version>/     one complete, immutable build
        manifest.json         format, model and dimension, corpus fingerprint, counts, build time
        articles.jsonl        article metadata and clean text, in article-number order
        passages.npy          int64 (P, 5): article, start, end, first unit, last unit + 1
        units.npy             int64 (U, 3): article, start, end of every quotable sentence unit
        passage_vectors.npy   float32 (P, d) normalised passage embeddings
        unit_vectors.npy      float16 (U, d) normalised sentence-unit embeddings
        passages.faiss        FAISS inner-product index over passage_vectors (exact; IVF when large)
        keyword/              BM25 index over "title + passage"
      .lock                   held by the one indexer at work

A build is written to a hidden folder, fsynced, renamed into `versions/`, and only then named in
CURRENT; a crash at any moment leaves the previous version loadable. The dense index inside a
version is `bot.indexing.dense`'s; the BM25 one is `bot.indexing.keyword`'s.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.durable import fsync_path, write_atomically
from bot.errors import IndexCorruptError, IndexMismatchError, IndexMissingError, StoreError
from bot.indexing.dense import APPROXIMATE_ABOVE, build_faiss, read_faiss, search_faiss, write_faiss
from bot.indexing.index import Candidates, Index
from bot.indexing.keyword import KeywordIndex
from bot.records import Article

# 2: keyword tokens join irregular verbs' past forms to the present (bot/indexing/keyword.py).
FORMAT_VERSION = 2
KEEP_VERSIONS = 3
# A version stays this long after it stopped being current: a server that read CURRENT just
# before the switch may still be loading it (a load that fails anyway is retried by LiveIndex).
KEEP_REPLACED_SECONDS = 60.0


@dataclass
class IndexData:
    """Everything a version holds, in memory, ready to be written."""

    articles: list[Article]
    passages: np.ndarray  # (P, 5) int64
    units: np.ndarray  # (U, 3) int64
    passage_vectors: np.ndarray  # (P, d) float32
    unit_vectors: np.ndarray  # (U, d) float32 or float16
    keyword: KeywordIndex
    model: str
    dimension: int
    corpus_fingerprint: str
    chunker: str = ""  # hash of the chunking rules, so a later build may reuse these chunks


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        fsync_path(path)
    fsync_path(folder)


def write_version(data: IndexData, index_dir: Path, approximate_above: int = APPROXIMATE_ABOVE) -> str:
    """Write a complete version and publish it as current; returns its name."""
    index_dir.mkdir(parents=True, exist_ok=True)
    (index_dir / "versions").mkdir(exist_ok=True)
    built = dt.datetime.now(dt.UTC)
    version = built.strftime("%Y%m%dT%H%M%S%fZ") + "-" + data.corpus_fingerprint[:8]
    staging = index_dir / f".building-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        faiss_index = build_faiss(data.passage_vectors, approximate_above)
        with (staging / "articles.jsonl").open("w", encoding="utf-8") as handle:
            for article in data.articles:
                handle.write(json.dumps(asdict(article), ensure_ascii=False) + "\n")
        np.save(staging / "passages.npy", data.passages.astype(np.int64))
        np.save(staging / "units.npy", data.units.astype(np.int64))
        np.save(staging / "passage_vectors.npy", data.passage_vectors.astype(np.float32))
        np.save(staging / "unit_vectors.npy", data.unit_vectors.astype(np.float16))
        write_faiss(faiss_index, staging / "passages.faiss")
        data.keyword.save(staging / "keyword")
        manifest = {
            "format_version": FORMAT_VERSION,
            "version": version,
            "model": {"name": data.model, "dimension": data.dimension},
            "corpus": {"fingerprint": data.corpus_fingerprint},
            "chunker": data.chunker,
            "counts": {"articles": len(data.articles), "passages": len(data.passages), "units": len(data.units)},
            "faiss": type(faiss_index).__name__,
            "built_at": built.isoformat(timespec="seconds"),
        }
        # The manifest goes last: a folder without one was never finished.
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _fsync_tree(staging)
        staging.rename(index_dir / "versions" / version)
        fsync_path(index_dir / "versions")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    publish(index_dir, version)
    collect_garbage(index_dir)
    return version


def publish(index_dir: Path, version: str) -> None:
    """Point CURRENT at `version` with an atomic rename."""
    write_atomically(index_dir / "CURRENT", version + "\n", prefix=".CURRENT-")


def current_version(index_dir: Path) -> str:
    """The name of the live version, or IndexMissingError."""
    try:
        version = (index_dir / "CURRENT").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise IndexMissingError(f"No index in {index_dir}: run `bot index` first.") from None
    if not (index_dir / "versions" / version / "manifest.json").is_file():
        raise IndexMissingError(f"{index_dir}/CURRENT names {version!r}, which is incomplete: run `bot index`.")
    return version


def version_time(version: str) -> dt.datetime | None:
    """When a version was built, from its name (None for a name this bot did not make)."""
    try:
        return dt.datetime.strptime(version.split("-", 1)[0], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def collect_garbage(index_dir: Path, keep: int = KEEP_VERSIONS, keep_replaced_seconds: float | None = None) -> None:
    """Remove unfinished builds and old versions: all but the newest `keep`, never the current
    one, and never one replaced less than `keep_replaced_seconds` ago (a server may be loading it)."""
    for leftover in index_dir.glob(".building-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in index_dir.glob(".CURRENT-*"):
        leftover.unlink(missing_ok=True)
    versions = sorted((index_dir / "versions").iterdir()) if (index_dir / "versions").is_dir() else []
    live = current_version(index_dir)
    grace = KEEP_REPLACED_SECONDS if keep_replaced_seconds is None else keep_replaced_seconds
    horizon = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=grace)
    for n, old in enumerate(versions[: max(0, len(versions) - keep)]):
        replaced_at = version_time(versions[n + 1].name)
        if old.name != live and (replaced_at is None or replaced_at < horizon):
            shutil.rmtree(old, ignore_errors=True)


def read_manifest(folder: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return manifest


Chunks = tuple[np.ndarray, np.ndarray]  # units (U, 2): start, end; passages (P, 4): start, end, first, last + 1


def current_chunks(index_dir: Path, chunker: str) -> list[tuple[str, Chunks]]:
    """Every article text of the live version with its units and passages (unit numbers counted
    from the article's first), when that version was chunked by the rules `chunker` names; empty
    when there is no such version."""
    try:
        folder = index_dir / "versions" / current_version(index_dir)
        manifest = read_manifest(folder)
        if manifest.get("chunker") != chunker:
            return []
        with (folder / "articles.jsonl").open(encoding="utf-8") as handle:
            texts = [str(json.loads(line)["text"]) for line in handle]
        passages, units = np.load(folder / "passages.npy"), np.load(folder / "units.npy")
        counts = manifest["counts"]
        if (len(texts), len(passages), len(units)) != (counts["articles"], counts["passages"], counts["units"]):
            return []  # a damaged version's chunks must not be carried into the next one
    except (StoreError, OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return []  # no usable previous version: chunk everything
    numbers = np.arange(len(texts) + 1)
    p_bounds, u_bounds = np.searchsorted(passages[:, 0], numbers), np.searchsorted(units[:, 0], numbers)
    found: list[tuple[str, Chunks]] = []
    for n, text in enumerate(texts):
        rows = passages[p_bounds[n] : p_bounds[n + 1], 1:5].copy()
        rows[:, 2:4] -= u_bounds[n]
        found.append((text, (units[u_bounds[n] : u_bounds[n + 1], 1:3], rows)))
    return found


class FaissIndex(Index):
    """One version in its folder: the tables and vectors memory-mapped, FAISS and bm25s loaded."""

    def __init__(self, folder: Path) -> None:
        try:
            self._load(folder)
            self._check()
        except (IndexMismatchError, IndexCorruptError):
            raise
        # A half-copied or damaged version: a file missing or cut short (OSError, FAISS's
        # RuntimeError), JSON or numpy that does not parse (ValueError), a manifest or article
        # line without a field (KeyError, TypeError). Refused with the reason, never served.
        except (
            OSError,
            RuntimeError,
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            IndexError,
            RecursionError,
        ) as exc:
            raise IndexCorruptError(
                f"index version {folder.name} cannot be loaded: {type(exc).__name__}: {exc}"
            ) from None

    def _load(self, folder: Path) -> None:
        manifest = read_manifest(folder)
        if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
            found = manifest.get("format_version") if isinstance(manifest, dict) else None
            raise IndexMismatchError(
                f"The index in {folder.parent.parent} has format {found}, "
                f"this bot reads format {FORMAT_VERSION}: run `bot index --full` to rebuild it."
            )
        with (folder / "articles.jsonl").open(encoding="utf-8") as handle:
            articles = [_article_line(line, n) for n, line in enumerate(handle, start=1)]
        passages, units = _mapped(folder / "passages.npy"), _mapped(folder / "units.npy")
        self.passage_vectors = _mapped(folder / "passage_vectors.npy")
        self.unit_vectors = _mapped(folder / "unit_vectors.npy")
        self.faiss = read_faiss(folder / "passages.faiss")
        self.bm25 = KeywordIndex.load(folder / "keyword")
        super().__init__(folder, manifest, articles, passages, units, self.bm25.stats)

    def _check(self) -> None:
        """The tables, the FAISS index and the manifest must agree, or answering would index past
        an end (a passages.npy cut short, a version half-copied): IndexCorruptError says which."""
        counts = self.manifest["counts"]
        # Fields /readyz and /metrics read on every call: a manifest without them is refused now.
        dt.datetime.fromisoformat(str(self.manifest["built_at"]))
        if not isinstance(self.manifest["version"], str) or not isinstance(self.manifest["model"]["name"], str):
            raise ValueError("manifest.json: 'version' and 'model.name' must be text")
        passages, units = len(self.passages), len(self.units)
        dimension = int(self.manifest["model"]["dimension"])
        problems = [
            f"{name}: {found}, expected {expected}"
            for name, found, expected in (
                ("articles in articles.jsonl", len(self.articles), counts["articles"]),
                ("rows of passages.npy", passages, counts["passages"]),
                ("rows of passage_vectors.npy", len(self.passage_vectors), passages),
                ("vectors in passages.faiss", int(self.faiss.ntotal), passages),
                ("rows of units.npy", units, counts["units"]),
                ("rows of unit_vectors.npy", len(self.unit_vectors), units),
                ("columns of passages.npy", self.passages.shape[1:], (5,)),
                ("columns of units.npy", self.units.shape[1:], (3,)),
                ("dimension of passage_vectors.npy", self.passage_vectors.shape[1:], (dimension,)),
                ("dimension of unit_vectors.npy", self.unit_vectors.shape[1:], (dimension,)),
                ("dimension of passages.faiss", int(self.faiss.d), dimension),
                ("documents in keyword/", int(self.bm25.num_docs), passages),
            )
            if found != expected
        ]
        if not problems and passages and units:
            lengths = np.array([len(a.text) for a in self.articles], dtype=np.int64)
            article, start, end = (np.asarray(self.units[:, c]) for c in range(3))
            if article.min() < 0 or article.max() >= len(self.articles):
                problems.append("units.npy names an article that articles.jsonl does not have")
            elif (start < 0).any() or (end < start).any() or (end > lengths[article]).any():
                problems.append("units.npy has a span outside its article's text")
            table = np.asarray(self.passages)
            if table[:, 0].min() < 0 or table[:, 0].max() >= len(self.articles):
                problems.append("passages.npy names an article that articles.jsonl does not have")
            elif (table[:, 3] < 0).any() or (table[:, 4] > units).any() or (table[:, 4] < table[:, 3]).any():
                problems.append("passages.npy names units that units.npy does not have")
        if problems:
            raise IndexCorruptError(f"index version {self.folder.name} is inconsistent: " + "; ".join(problems))

    def candidates(
        self,
        vector: np.ndarray,
        tokens: list[str],
        depth: int,
        mask: np.ndarray | None = None,
        since: dt.date | None = None,
        until: dt.date | None = None,
    ) -> Candidates:
        """FAISS's top-`depth` and bm25s's top-`depth` within the mask and the dates; each scored by
        both (the cosine of the stored vector, BM25 from bm25s's scores of every passage)."""
        dated = self.date_mask(since, until)
        if dated is not None:
            mask = dated if mask is None else dated * mask
        dense_ids, _ = self.dense_search(vector, depth, mask)
        keyword_scores = self.bm25.scores(tokens, mask)
        if keyword_scores.any():
            top = np.argpartition(-keyword_scores, min(depth, len(keyword_scores) - 1))[:depth]
            keyword_ids = top[keyword_scores[top] > 0]
        else:
            keyword_ids = np.zeros(0, dtype=np.int64)
        ids = np.unique(np.concatenate([dense_ids, keyword_ids]).astype(np.int64))
        dense = np.asarray(self.passage_vectors[ids], dtype=np.float32) @ vector.astype(np.float32)
        return ids, dense, keyword_scores[ids].astype(np.float32)

    def unit_vectors_of(self, ranges: list[tuple[int, int]]) -> list[np.ndarray]:
        """The sentence-unit vectors of each [first, last) range of units."""
        return [np.asarray(self.unit_vectors[first:last], dtype=np.float32) for first, last in ranges]

    def dense_search(self, vector: np.ndarray, n: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-`n` passages by inner product (cosine, vectors being normalised)."""
        n = min(n, len(self))
        if n <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        query = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
        allowed = None
        if mask is not None:
            allowed = np.flatnonzero(mask).astype(np.int64)
            if not len(allowed):
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return search_faiss(self.faiss, query, n, allowed)

    def keyword_search(self, tokens: list[str], n: int) -> np.ndarray:
        """Top-`n` passages by BM25 alone, best first."""
        scores = self.bm25.scores(tokens)
        return np.array([p for p in np.argsort(-scores, kind="stable")[:n] if scores[p] > 0], dtype=np.int64)


def _mapped(path: Path) -> np.ndarray:
    """A table memory-mapped read-only, as a plain ndarray over the same pages (no copy).

    Every index into an np.memmap makes another memmap and runs its __array_finalize__, and
    answering reads single cells of these tables dozens of times a question: under 32 clients
    that was ~5% of the server's samples (py-spy). The view keeps the mapping alive."""
    table: np.ndarray = np.load(path, mmap_mode="r").view(np.ndarray)
    return table


def _article_line(line: str, number: int) -> Article:
    """One line of a version's articles.jsonl, checked: a line missing a field is corruption."""
    try:
        article = Article.from_dict(json.loads(line))
    except (TypeError, AttributeError) as exc:  # a field missing or unknown, or not an object
        raise ValueError(f"articles.jsonl line {number}: {exc}") from None
    for name in ("id", "title", "text"):
        if not isinstance(getattr(article, name), str):
            raise ValueError(f"articles.jsonl line {number}: {name!r} is not text")
    if article.date is not None and not isinstance(article.date, str):
        raise ValueError(f"articles.jsonl line {number}: 'date' is not text")
    return article


def open_index(index_dir: Path) -> FaissIndex:
    """Load the current version of the index in `index_dir`."""
    index_dir = Path(index_dir)
    return FaissIndex(index_dir / "versions" / current_version(index_dir))
