"""Where an index is kept: FAISS and BM25 files in a folder, or a Milvus server, cluster or Lite
file. A store is made once from the settings (`bot.settings.store_of`) and is the one object that
knows which: it builds a version from a corpus, tells whether the live one is current, names it
and opens it. Every caller (the CLI, the service, the watcher, a server's live index) holds a
store and never asks which backend it is.

Either way the index folder holds the indexer's lock and the embedding cache: the indexer is the
single writer, and vectors embedded once are not embedded again by either backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bot.indexing.building import BuildReport
from bot.indexing.dense import APPROXIMATE_ABOVE
from bot.indexing.faiss_build import build_index, is_current
from bot.indexing.index import Index
from bot.indexing.milvus_build import build_milvus, milvus_is_current
from bot.indexing.milvus_index import open_milvus_index
from bot.indexing.milvus_store import MilvusTarget
from bot.indexing.milvus_store import current_version as milvus_version
from bot.indexing.versions import current_version, open_index
from bot.models.encoder import Embedder


class Store(Protocol):
    """An index's home: build into it, ask what it serves, open it."""

    @property
    def index_dir(self) -> Path:
        """The folder of the lock and the embedding cache (and, for FAISS, the versions)."""
        ...

    def describe(self) -> str:
        """Where it is, for messages."""
        ...

    def build(
        self, corpus_path: Path, embedder: Embedder, *, progress: bool = False, full: bool = False
    ) -> BuildReport:
        """Bring the index in line with the corpus and publish it."""
        ...

    def is_current(self, corpus_path: Path, model: str) -> bool:
        """True when the live version holds exactly this corpus, chunked and embedded as now."""
        ...

    def current_version(self) -> str:
        """The live version's name; IndexMissingError when none was published."""
        ...

    def open(self) -> Index:
        """The live version, loaded."""
        ...


@dataclass(frozen=True)
class FaissStore:
    """Versions as files under `index_dir` (`bot.indexing.versions`), FAISS exact or IVF."""

    index_dir: Path
    approximate_above: int = APPROXIMATE_ABOVE

    def describe(self) -> str:
        return str(self.index_dir)

    def build(
        self, corpus_path: Path, embedder: Embedder, *, progress: bool = False, full: bool = False
    ) -> BuildReport:
        return build_index(
            corpus_path,
            self.index_dir,
            embedder,
            progress=progress,
            approximate_above=self.approximate_above,
            full=full,
        )

    def is_current(self, corpus_path: Path, model: str) -> bool:
        return is_current(corpus_path, self.index_dir, model)

    def current_version(self) -> str:
        return current_version(self.index_dir)

    def open(self) -> Index:
        return open_index(self.index_dir)


@dataclass(frozen=True)
class MilvusStore:
    """Versions in Milvus (`bot.indexing.milvus_store`); the lock and the cache in `index_dir`."""

    target: MilvusTarget
    index_dir: Path

    def describe(self) -> str:
        return f"Milvus {self.target.describe()}"

    def build(
        self, corpus_path: Path, embedder: Embedder, *, progress: bool = False, full: bool = False
    ) -> BuildReport:
        return build_milvus(self.target, corpus_path, self.index_dir, embedder, progress=progress, full=full)

    def is_current(self, corpus_path: Path, model: str) -> bool:
        return milvus_is_current(self.target, corpus_path, model)

    def current_version(self) -> str:
        return milvus_version(self.target)

    def open(self) -> Index:
        return open_milvus_index(self.target)
