"""Embeddings already computed, kept beside the index so a rebuild only embeds what is new.

    index/embeddings/<kind>-<model key>/
      shard-<time>-<id>/keys.npy      uint8 (N, 16): sha256(model, text)[:16] of each text
      shard-<time>-<id>/vectors.npy   (N, d) vectors, float32 for passages, float16 for units

Keys hash the model name and the exact text, so a changed passage, or another model, is a
miss. Shards are append-only: each batch of fresh embeddings becomes a new shard, written to a
hidden folder, fsynced and renamed, so a build killed mid-way keeps what it had embedded and the
next run carries on from there. Only the indexer (under the index lock) reads or writes here;
`prune` folds the shards into one holding just the vectors the newest build used.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
import uuid
from pathlib import Path
from typing import Protocol

import numpy as np

from bot.durable import fsync_path

log = logging.getLogger(__name__)

KEY_BYTES = 16
# Fresh vectors are written out every this many texts, so a killed build loses at most one batch.
FLUSH_EVERY = 4096
# Fold the shards once they hold this many more vectors than the newest build used, or this many shards.
PRUNE_SLACK = 4096
MAX_SHARDS = 32


class _Encoder(Protocol):
    name: str
    dimension: int

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray: ...


class EmbeddingCache:
    """Vectors of one kind of text ("passages", "units") for one model, keyed by content hash."""

    def __init__(self, root: Path, kind: str, model: str, dimension: int, dtype: type[np.floating] = np.float32):
        model_key = hashlib.sha256(f"{model}\0{dimension}".encode()).hexdigest()[:12]
        self.folder = Path(root) / f"{kind}-{model_key}"
        self.model = model
        self.dimension = dimension
        self.dtype = np.dtype(dtype)
        self._shards: list[np.ndarray] = []
        self._where: dict[bytes, tuple[int, int]] = {}
        self.embedded = 0  # texts the last `embed` had to embed
        self._used: set[bytes] = set()  # keys of the texts of the last `embed`
        self._load()

    def _load(self) -> None:
        if not self.folder.is_dir():
            return
        for shard in sorted(self.folder.glob("shard-*")):
            try:
                keys = np.load(shard / "keys.npy")
                vectors = np.load(shard / "vectors.npy", mmap_mode="r")
                if keys.shape != (len(vectors), KEY_BYTES) or vectors.shape[1:] != (self.dimension,):
                    raise ValueError(f"shapes {keys.shape} and {vectors.shape} do not match")
            except (OSError, ValueError) as exc:  # a damaged shard is only a lost cache: re-embed
                log.warning("ignoring embedding cache shard %s: %s", shard, exc)
                continue
            number = len(self._shards)
            self._shards.append(vectors)
            raw = keys.tobytes()
            for row in range(len(keys)):
                self._where[raw[row * KEY_BYTES : (row + 1) * KEY_BYTES]] = (number, row)

    def __len__(self) -> int:
        return len(self._where)

    def key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.model}\0{text}".encode()).digest()[:KEY_BYTES]

    def embed(self, texts: list[str], embedder: _Encoder, *, reuse: bool = True, progress: bool = False) -> np.ndarray:
        """Vectors for `texts`: from the cache when `reuse`, the rest embedded (and cached)."""
        from tqdm import tqdm

        keys = [self.key(text) for text in texts]
        self._used = set(keys)
        out = np.empty((len(texts), self.dimension), dtype=self.dtype)
        todo: dict[bytes, list[int]] = {}  # texts to embed (each distinct text once) → rows
        by_shard: dict[int, tuple[list[int], list[int]]] = {}
        for position, key in enumerate(keys):
            found = self._where.get(key) if reuse else None
            if found is None:
                todo.setdefault(key, []).append(position)
            else:
                rows, places = by_shard.setdefault(found[0], ([], []))
                rows.append(found[1])
                places.append(position)
        for shard, (rows, places) in by_shard.items():
            out[places] = self._shards[shard][rows]
        pending = list(todo.items())
        label = f"embedding {self.folder.name.split('-')[0]}"
        with tqdm(total=len(pending), desc=label, unit="text", disable=not progress) as bar:
            for start in range(0, len(pending), FLUSH_EVERY):
                batch = pending[start : start + FLUSH_EVERY]
                vectors = embedder.encode([texts[rows[0]] for _, rows in batch]).astype(self.dtype)
                for (_, rows), vector in zip(batch, vectors, strict=True):
                    out[rows] = vector
                self._append([key for key, _ in batch], vectors)
                bar.update(len(batch))
        self.embedded = len(pending)
        return out

    def _append(self, keys: list[bytes], vectors: np.ndarray) -> None:
        """Write one shard atomically and make it part of this cache."""
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = self.folder / f".tmp-{uuid.uuid4().hex}"
        staging.mkdir()
        key_array = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(-1, KEY_BYTES)
        np.save(staging / "keys.npy", key_array)
        np.save(staging / "vectors.npy", np.ascontiguousarray(vectors, dtype=self.dtype))
        for path in (staging / "keys.npy", staging / "vectors.npy", staging):
            fsync_path(path)
        final = self.folder / f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        staging.rename(final)
        fsync_path(self.folder)
        number = len(self._shards)
        self._shards.append(np.load(final / "vectors.npy", mmap_mode="r"))
        for row, key in enumerate(keys):
            self._where[key] = (number, row)

    def prune(self) -> None:
        """Fold the shards into one holding only the vectors the last `embed` used, when worth it."""
        for leftover in self.folder.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        keep = self._used & self._where.keys()
        if len(self._where) - len(keep) <= PRUNE_SLACK and len(self._shards) <= MAX_SHARDS:
            return
        old = sorted(self.folder.glob("shard-*"))
        keys = sorted(keep)
        vectors = np.empty((len(keys), self.dimension), dtype=self.dtype)
        for n, key in enumerate(keys):
            shard, row = self._where[key]
            vectors[n] = self._shards[shard][row]
        self._shards, self._where = [], {}
        self._append(keys, vectors)  # the folded shard is complete before any old one goes
        for folder in old:
            shutil.rmtree(folder, ignore_errors=True)
