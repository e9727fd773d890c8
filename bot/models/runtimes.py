"""An exported transformer without torch: `tokenizers` splits the text, ONNX Runtime or OpenVINO runs
the graph. The only module importing onnxruntime, openvino and tokenizers.

Each model exports itself once, with torch (`bot.models.export`), into a folder of its own under
the index folder (the encoder's `encoders/onnx-<key>/`, the reader's `encoders/reader-<key>/`):

      model.onnx            the transformer (ONNX Runtime)
      openvino.xml, .bin    the same graph as OpenVINO IR with float16 weights (OpenVINO)
      openvino-cache/       OpenVINO's compiled model, made by the export's own check
      export.json           what was exported, the format, each model file's sha256, the probe figures
      probes.npy            torch's outputs for a fixed set of probe inputs, checked at every load
      tokenizer.json, …     what the model's own code needs besides the graph

Every load checks the hash of the model file it reads (`read_export`) and runs the probes again
(the model's own check): a file that changed, or outputs that drifted from torch's, are refused
with the reason as a ModelError. What a model does with the graph's output (the encoder pools
token vectors, the reader reads a logit) is the model's; the batches are this module's.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from filelock import FileLock, Timeout

from bot.errors import ModelError
from bot.models.files import sha256_file

log = logging.getLogger(__name__)

Runtime = Literal["torch", "onnx", "openvino"]
RUNTIMES: tuple[Runtime, ...] = ("torch", "onnx", "openvino")
# Chosen by `make bench` (bench/README.md has the table): OpenVINO encoded a batch of 32 questions
# 2-3x faster than torch and ONNX Runtime here, one question in about half torch's time, and its
# vectors stay at cosine >= 0.99998 to torch's.
DEFAULT_RUNTIME: Runtime = "openvino"
# The file each runtime loads, hashed at export and checked at every load.
MODEL_FILES: dict[str, tuple[str, ...]] = {"onnx": ("model.onnx",), "openvino": ("openvino.xml", "openvino.bin")}
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
BUILD_BATCH = 64
# Token counts are padded to a multiple of this: OpenVINO keeps buffers per input shape, and fewer
# distinct shapes keep a server's peak memory down (60 mixed batches of 1-64 questions: 400 MB
# peak unpadded, 347 MB padded to 16, ~360 MB padded to 32). Padding is masked: outputs are the same.
PAD_TO = 16

Inputs = Sequence[str] | Sequence[tuple[str, str]]  # texts, or (question, text) pairs


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


EXPORTS = "encoders"  # the folder of an index's exports
EXPORT_LOCK_SECONDS = 900.0  # an export takes ~20 s; one held this long is stuck


def export_dir(index_dir: Path, prefix: str, *key: object) -> Path:
    """The folder of an export under `index_dir`: `encoders/<prefix>-<hash of key>`."""
    digest = hashlib.sha256("\0".join(str(part) for part in key).encode()).hexdigest()[:12]
    return Path(index_dir) / EXPORTS / f"{prefix}-{digest}"


def min_cosine(reference: np.ndarray, vectors: np.ndarray) -> float:
    """The lowest cosine between matching rows (both sets are L2-normalised)."""
    return float(np.min(np.sum(reference.astype(np.float64) * vectors.astype(np.float64), axis=1)))


def read_export(folder: Path, runtime: Runtime, export_format: int, command: str) -> dict[str, Any]:
    """The export's record, after checking the model file(s) `runtime` loads against their sha256;
    `command` is what makes the export again."""
    record_path = folder / "export.json"
    if not record_path.is_file():
        raise ModelError(f"no exported model in {folder}: run `bot {command}` (or `bot index`)")
    record: dict[str, Any] = json.loads(record_path.read_text(encoding="utf-8"))
    if record.get("format") != export_format:
        raise ModelError(f"{folder} holds an export of format {record.get('format')}: run `bot {command}`")
    expected = record.get("sha256") or {}
    for name in MODEL_FILES.get(runtime, ()):
        actual = sha256_file(folder / name) if (folder / name).is_file() else "missing"
        if actual != expected.get(name):
            raise ModelError(
                f"{folder / name} has sha256 {actual}, but {expected.get(name)} was exported: the file is corrupt "
                f"or was replaced; delete {folder} and run `bot {command}`"
            )
    return record


def sound_export(target: Path, export_format: int, command: str, what: str) -> bool:
    """Whether `target` holds an export every exported runtime can load (its files' hashes); a
    damaged one is removed, with a warning, to be made again."""
    if not (target / "export.json").is_file():
        return False
    try:
        for runtime in MODEL_FILES:
            read_export(target, runtime, export_format, command)  # type: ignore[arg-type]
        return True
    except ModelError as exc:
        log.warning("exporting the %s again: %s", what, exc)
        shutil.rmtree(target, ignore_errors=True)
        return False


class Session(Protocol):
    """A compiled graph: the three token inputs in, its first output out."""

    def run(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray: ...


class OnnxSession:
    def __init__(self, folder: Path, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # its graph warnings are not the reader's business
        self.session = onnxruntime.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}

    def run(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        result: Any = self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})[0]
        return np.asarray(result, dtype=np.float32)


class OpenVinoSession:
    def __init__(self, folder: Path, threads: int) -> None:
        import openvino

        core = openvino.Core()
        # LATENCY: one stream, so a single question uses the model's threads and nothing else.
        # CACHE_DIR keeps the compiled model (written by the export's own check): a server then
        # loads it in ~0.3 s less and ~15 MB lower peak memory than compiling the IR afresh. The
        # cache is keyed by the model's path, so a copied index compiles afresh; two servers doing
        # so at once wrote the same blob, and one failed ("cannot set permissions: No such file or
        # directory [.../openvino-cache/....blob]") and never came ready. One compile at a time:
        # the second reads the first one's blob.
        with held(FileLock(str(folder / ".compile.lock"), timeout=EXPORT_LOCK_SECONDS)):
            self.compiled = core.compile_model(
                str(folder / "openvino.xml"),
                "CPU",
                {
                    "INFERENCE_NUM_THREADS": threads,
                    "PERFORMANCE_HINT": "LATENCY",
                    "CACHE_DIR": str(folder / "openvino-cache"),
                },
            )
        self.request = self.compiled.create_infer_request()
        self.output = self.compiled.output(0)
        self.inputs = {name for port in self.compiled.inputs for name in port.get_names()}

    def run(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        result = self.request.infer({k: v for k, v in feeds.items() if k in self.inputs})
        return np.asarray(result[self.output], dtype=np.float32)


def compile_openvino(folder: Path) -> None:
    """Compile `folder`'s OpenVINO IR once where servers will load it from, so that the first
    server's load reads the compiled blob from CACHE_DIR (the cache is keyed by the model's path:
    the export's own check compiled it in its staging folder). Without it the first server on a
    fresh export compiled afresh: encoder, reader and span head peaked 27 MB higher (368 MB
    against 341 MB, loaded in one process)."""
    if not (folder / MODEL_FILES["openvino"][0]).is_file():
        return
    try:
        OpenVinoSession(folder, 1)
    except (OSError, RuntimeError, ValueError) as exc:  # loading will say so again, with the reason
        log.warning("could not compile %s for OpenVINO: %s", folder, exc)


def open_session(folder: Path, runtime: Runtime, threads: int) -> Session:
    """The graph in `folder` compiled for `runtime`; the runtime's own errors become a ModelError."""
    try:
        if runtime == "onnx":
            return OnnxSession(folder, threads)
        if runtime == "openvino":
            return OpenVinoSession(folder, threads)
    except (OSError, RuntimeError, ValueError) as exc:  # the runtimes' own errors derive from these
        raise ModelError(f"the {runtime} runtime cannot load {folder / MODEL_FILES[runtime][0]}: {exc}") from exc
    raise ModelError(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")


@functools.lru_cache(maxsize=8)
def shared_tokenizer(definition: bytes, max_length: int) -> Any:
    """A `tokenizers.Tokenizer` from its JSON, truncating at `max_length` and padding to PAD_TO;
    one per process for each definition and length (~7 MB each: the reader and the span head
    read the same tokenizer at the same length). Encoding is safe from several threads."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(definition.decode("utf-8"))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_to_multiple_of=PAD_TO)
    return tokenizer


class ExportedTransformer:
    """Tokenize with `tokenizers`, run the graph in power-of-two batches, longest inputs first.

    `head` turns a batch's output (and its attention mask) into one row per input: the encoder
    mean-pools token vectors, the reader reads a logit."""

    def __init__(self, folder: Path, name: str, runtime: Runtime, threads: int, *, max_length: int) -> None:
        self.folder = Path(folder)
        self.name = name
        self.runtime = runtime
        self.threads = max(1, threads)
        try:
            self.tokenizer = shared_tokenizer((self.folder / "tokenizer.json").read_bytes(), max_length)
        except Exception as exc:  # a missing file (OSError) or one tokenizers cannot read (Exception)
            raise ModelError(
                f"cannot read the tokenizer of {self.folder}: {exc}; delete the folder and export it again"
            ) from exc
        self.session = open_session(self.folder, runtime, self.threads)
        # One call at a time: each call already uses the model's threads.
        self._lock = threading.Lock()

    def _run(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        return self.session.run(ids, mask, types)

    def forward(
        self, inputs: Inputs, width: int, head: Callable[[np.ndarray, np.ndarray], np.ndarray], batch_size: int
    ) -> np.ndarray:
        """`head`'s rows (of `width` columns) for every input, in the inputs' order."""
        out = np.zeros((len(inputs), width), dtype=np.float32)
        for chosen, _, output, mask in self._batches(inputs, batch_size):
            out[chosen] = head(output, mask)
        return out

    def token_outputs(self, inputs: Inputs, batch_size: int) -> list[tuple[Any, np.ndarray]]:
        """Each input's encoding (a `tokenizers.Encoding`: tokens, offsets, sequence ids) and its
        graph output row for each of its tokens (padding cut off), in the inputs' order."""
        out: list[tuple[Any, np.ndarray]] = [None] * len(inputs)  # type: ignore[list-item]
        for chosen, encodings, output, mask in self._batches(inputs, batch_size):
            for row, (i, encoding) in enumerate(zip(chosen, encodings, strict=True)):
                out[i] = (encoding, output[row, : int(mask[row].sum())])
        return out

    def _batches(
        self, inputs: Inputs, batch_size: int
    ) -> Iterator[tuple[list[int], list[Any], np.ndarray, np.ndarray]]:
        """The inputs as power-of-two batches, longest first: each batch's input numbers,
        encodings, graph output and attention mask."""
        if not len(inputs):
            return
        lengths = [len(x) if isinstance(x, str) else len(x[0]) + len(x[1]) for x in inputs]
        order = sorted(range(len(inputs)), key=lambda i: -lengths[i])
        with self._lock:
            start = 0
            for size in batch_sizes(len(order), batch_size):
                chosen = order[start : start + size]
                start += size
                encodings = self.tokenizer.encode_batch([inputs[i] for i in chosen])
                ids = np.array([e.ids for e in encodings], dtype=np.int64)
                mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
                types = np.array([e.type_ids for e in encodings], dtype=np.int64)
                yield chosen, encodings, self._run(ids, mask, types), mask


def write_openvino_ir(folder: Path) -> None:
    """Convert `folder`/model.onnx to OpenVINO IR with float16 weights (openvino.xml and .bin).

    OpenVINO keeps its compiled model's weights memory-mapped from the cache, so float32 weights
    only cost memory: from the float16 IR a server peaked ~65 MB lower (280 MB against 344 MB,
    compile + probes + 500 questions in mixed batches, measured in one process), at the same
    speed, with the encoder's probes at cosine 0.999978 to torch's (0.999982 from model.onnx)."""
    import openvino

    model = openvino.Core().read_model(str(folder / "model.onnx"))
    openvino.save_model(model, str(folder / "openvino.xml"), compress_to_fp16=True)


Export = Literal["here", "child", "never"]  # where a missing export is made, if anywhere


def ensure_export(folder: Path, export: Export, here: Callable[[], object], child: Callable[[], None]) -> Path:
    """`folder`, once it holds an export: a missing one is made `here` (with torch), in a `child`
    process (so this one never imports torch), or not at all ("never": loading it then refuses)."""
    if not (folder / "export.json").is_file():
        if export == "here":
            here()
        elif export == "child":
            child()
    return folder


@contextlib.contextmanager
def held(lock: FileLock) -> Iterator[None]:
    """Hold `lock` for the block; a read-only folder or a stuck holder is logged, and the block
    runs without it."""
    try:
        Path(lock.lock_file).parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except (OSError, Timeout) as exc:
        log.warning("going on without the lock %s: %s", lock.lock_file, exc)
    try:
        yield
    finally:
        if lock.is_locked:
            lock.release()


def export_in_child(command: str, index_dir: Path, *options: str) -> None:
    """Run `bot <command> --index <index_dir> <options>` in a child process, so this process never
    imports torch; one such child at a time per index folder.

    Servers started together on a fresh index each found the export missing and each traced the
    same model with torch at once (two readers, ~22 s each on two busy cores, before either
    server bound its port). Under the lock, the second one's child finds the first one's export
    and returns at once."""
    log.warning("running `bot %s` for %s (once; `bot index` does this ahead of time)", command, index_dir)
    line = [sys.executable, "-m", "bot", command, "--index", str(index_dir), *options]
    with held(FileLock(str(Path(index_dir) / EXPORTS / ".export.lock"), timeout=EXPORT_LOCK_SECONDS)):
        done = subprocess.run(line, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ModelError(f"`bot {command}` failed: {(done.stderr or done.stdout).strip()[-1000:]}")
