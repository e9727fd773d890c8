"""The encoder without torch: the model exported to ONNX, run on ONNX Runtime or OpenVINO.

The only module importing onnxruntime and openvino. `bot index` (or `bot export-encoder`) exports
the bundled, sha256-checked weights once, with torch (`bot.indexing.embedding.export_onnx`), into

    <index dir>/encoders/onnx-<key>/
      model.onnx            the transformer: token ids and mask in, token vectors out (ONNX Runtime)
      openvino.xml, .bin    the same graph as OpenVINO IR with float16 weights (OpenVINO)
      openvino-cache/       OpenVINO's compiled model, made by the export's check
      export.json           the model, the weights' and each model file's sha256, each runtime's probe cosine
      probes.npy            torch's vectors of PROBES, the reference every load is checked against
      tokenizer.json, modules.json, sentence_bert_config.json, 1_Pooling/config.json

Serving reads only that folder: `tokenizers` splits the text, the runtime runs the transformer,
numpy mean-pools over the attention mask and L2-normalises (what modules.json and the pooling
config say), so a server on either runtime never imports torch. Every load checks the hash of
the model file it reads and encodes PROBES again: a vector below MIN_COSINE to torch's refuses
the runtime, with the figure, as a ModelError.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bot.errors import ModelError
from bot.indexing.embedding import sha256_file

log = logging.getLogger(__name__)

Runtime = Literal["torch", "onnx", "openvino"]
RUNTIMES: tuple[Runtime, ...] = ("torch", "onnx", "openvino")
# Chosen by `make bench` (bench/README.md has the table): OpenVINO encoded a batch of 32 questions
# 2-3x faster than torch and ONNX Runtime here, one question in about half torch's time, and its
# vectors stay at cosine >= 0.99998 to torch's.
DEFAULT_RUNTIME: Runtime = "openvino"
# 2: OpenVINO reads its own IR with float16 weights (openvino.xml/.bin) instead of model.onnx.
EXPORT_FORMAT = 2
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
# The file each runtime loads, hashed at export and checked at every load.
MODEL_FILES: dict[str, tuple[str, ...]] = {"onnx": ("model.onnx",), "openvino": ("openvino.xml", "openvino.bin")}
SIDE_FILES = ("tokenizer.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json")
BUILD_BATCH = 64
# Token counts are padded to a multiple of this: OpenVINO keeps buffers per input shape, and fewer
# distinct shapes keep a server's peak memory down (60 mixed batches of 1-64 questions: 400 MB
# peak unpadded, 347 MB padded to 16, ~360 MB padded to 32). Padding is masked: vectors are the same.
PAD_TO = 16


def batch_sizes(count: int, largest: int) -> list[int]:
    """`count` texts as batches of powers of two, none above `largest`: 23 → 16, 4, 2, 1.

    OpenVINO keeps ~2.5 MB of state for every input shape it has run, for the life of the
    process, and a server's batches come in every size the queue happened to hold: 32 clients
    ran ~60 shapes and the server kept growing. Powers of two bound a token length's shapes to
    log2(largest) + 1 with no padded rows to compute (a padded batch of 32 for 23 questions
    costs 9 encodes; the three small batches cost ~6% more than one batch of 23)."""
    cap = 1 << max(0, max(1, largest).bit_length() - 1)  # the largest power of two <= largest
    sizes = []
    while count > 0:
        size = min(cap, 1 << (count.bit_length() - 1))
        sizes.append(size)
        count -= size
    return sizes


def export_dir(index_dir: Path, model: str, weights_sha256: str) -> Path:
    """Where the export of `model` with these weights lives under `index_dir`."""
    key = hashlib.sha256(f"{model}\0{weights_sha256}\0{EXPORT_FORMAT}".encode()).hexdigest()[:12]
    return Path(index_dir) / "encoders" / f"onnx-{key}"


def min_cosine(reference: np.ndarray, vectors: np.ndarray) -> float:
    """The lowest cosine between matching rows (both sets are L2-normalised)."""
    return float(np.min(np.sum(reference.astype(np.float64) * vectors.astype(np.float64), axis=1)))


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


class ExportedEmbedder:
    """Tokenize with `tokenizers`, run the transformer, mean-pool over the mask, L2-normalise."""

    runtime: str = ""

    def __init__(self, folder: Path, name: str, threads: int) -> None:
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        self.name = name
        self.threads = max(1, threads)
        config = json.loads((self.folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
        pooling = json.loads((self.folder / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
        check_modules(json.loads((self.folder / "modules.json").read_text(encoding="utf-8")), pooling)
        self.dimension = int(pooling["word_embedding_dimension"])
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=int(config["max_seq_length"]))
        self.tokenizer.enable_padding(pad_to_multiple_of=PAD_TO)
        # One call at a time, as with torch: each call already uses the encoder's threads.
        self._lock = threading.Lock()

    def encode(self, texts: list[str], *, batch_size: int = BUILD_BATCH, progress: bool = False) -> np.ndarray:
        """Embed `texts`; rows are L2-normalised float32. Longest first, so batches pad little."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        with self._lock:
            start = 0
            for size in batch_sizes(len(order), batch_size):
                chosen = order[start : start + size]
                start += size
                encodings = self.tokenizer.encode_batch([texts[i] for i in chosen])
                ids = np.array([e.ids for e in encodings], dtype=np.int64)
                mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
                types = np.array([e.type_ids for e in encodings], dtype=np.int64)
                tokens = self._run(ids, mask, types)
                weights = mask[..., None].astype(np.float32)
                pooled = (tokens * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
                norms = np.linalg.norm(pooled, axis=1, keepdims=True)
                out[chosen] = pooled / np.clip(norms, 1e-12, None)
        return out

    def _run(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class OnnxEmbedder(ExportedEmbedder):
    runtime = "onnx"

    def __init__(self, folder: Path, name: str, threads: int) -> None:
        super().__init__(folder, name, threads)
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # its graph warnings are not the reader's business
        self.session = onnxruntime.InferenceSession(
            str(self.folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )

    def _run(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        result: Any = self.session.run(None, feeds)[0]
        return np.asarray(result, dtype=np.float32)


class OpenVinoEmbedder(ExportedEmbedder):
    runtime = "openvino"

    def __init__(self, folder: Path, name: str, threads: int) -> None:
        super().__init__(folder, name, threads)
        import openvino

        core = openvino.Core()
        # LATENCY: one stream, so a single question uses the encoder's threads and nothing else.
        # CACHE_DIR keeps the compiled model (written by the export's own check): a server then
        # loads it in ~0.3 s less and ~15 MB lower peak memory than compiling the IR afresh.
        self.compiled = core.compile_model(
            str(self.folder / "openvino.xml"),
            "CPU",
            {
                "INFERENCE_NUM_THREADS": self.threads,
                "PERFORMANCE_HINT": "LATENCY",
                "CACHE_DIR": str(self.folder / "openvino-cache"),
            },
        )
        self.request = self.compiled.create_infer_request()
        self.output = self.compiled.output(0)

    def _run(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        result = self.request.infer(feeds)
        return np.asarray(result[self.output], dtype=np.float32)


def write_openvino_ir(folder: Path) -> None:
    """Convert `folder`/model.onnx to OpenVINO IR with float16 weights (openvino.xml and .bin).

    OpenVINO computes in bfloat16 on CPUs that have it (AMX here) and keeps its compiled model's
    weights memory-mapped from the cache, so float32 weights only cost memory: from the float16
    IR a server peaked ~65 MB lower (280 MB against 344 MB, compile + probes + 500 questions in
    mixed batches, measured in one process), at the same speed, with the probes at cosine
    0.999978 to torch's (0.999982 from model.onnx)."""
    import openvino

    model = openvino.Core().read_model(str(folder / "model.onnx"))
    openvino.save_model(model, str(folder / "openvino.xml"), compress_to_fp16=True)


def check_modules(modules: list[dict[str, Any]], pooling: dict[str, Any]) -> None:
    """The exported path knows one recipe: a transformer, mean pooling, normalisation."""
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    if kinds != ["Transformer", "Pooling", "Normalize"] or modes != ["pooling_mode_mean_tokens"]:
        raise ModelError(
            f"the onnx and openvino encoders run Transformer + mean Pooling + Normalize models; this one has "
            f"modules {kinds} and pooling {modes}: set BOT_ENCODER=torch"
        )


def read_export(folder: Path, runtime: Runtime = "onnx") -> dict[str, Any]:
    """The export's record, after checking the model file(s) `runtime` loads against their sha256."""
    record_path = folder / "export.json"
    if not record_path.is_file():
        raise ModelError(f"no exported encoder in {folder}: run `bot export-encoder` (or `bot index`)")
    record: dict[str, Any] = json.loads(record_path.read_text(encoding="utf-8"))
    if record.get("format") != EXPORT_FORMAT:
        raise ModelError(f"{folder} holds an export of format {record.get('format')}: run `bot export-encoder`")
    expected = record.get("sha256") or {}
    for name in MODEL_FILES.get(runtime, ()):
        actual = sha256_file(folder / name) if (folder / name).is_file() else "missing"
        if actual != expected.get(name):
            raise ModelError(
                f"{folder / name} has sha256 {actual}, but {expected.get(name)} was exported: the file is corrupt "
                f"or was replaced; delete {folder} and run `bot export-encoder`"
            )
    return record


def load_exported(folder: Path, name: str, runtime: Runtime, threads: int) -> ExportedEmbedder:
    """The export in `folder` on `runtime`, checked: its model file's hash, then the probe vectors."""
    read_export(folder, runtime)
    embedder: ExportedEmbedder
    try:
        if runtime == "onnx":
            embedder = OnnxEmbedder(folder, name, threads)
        elif runtime == "openvino":
            embedder = OpenVinoEmbedder(folder, name, threads)
        else:
            raise ModelError(f"unknown encoder runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    except (OSError, RuntimeError, ValueError) as exc:  # the runtimes' own errors derive from these
        raise ModelError(f"the {runtime} runtime cannot load {folder / MODEL_FILES[runtime][0]}: {exc}") from exc
    check_probes(folder, embedder)
    return embedder


def export_in_child(index_dir: Path, model: str) -> None:
    """Run `bot export-encoder` in a child process, so this process never imports torch."""
    log.warning("exporting the encoder into %s (once; `bot index` does this ahead of time)", index_dir)
    command = [sys.executable, "-m", "bot", "export-encoder", "--index", str(index_dir), "--model", model]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ModelError(f"exporting the encoder failed: {(done.stderr or done.stdout).strip()[-1000:]}")
