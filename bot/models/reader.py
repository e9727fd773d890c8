"""The reader: a cross-encoder (all-MiniLM-L6-v2's first layers, fine-tuned here by
`bot.models.training`) that reads a question and a sentence together and scores "this sentence
answers the question" as one logit. Answering uses it to rescore candidate sentences
(`bot.answer.reading`).

It ships in the repository (bot/models/data/reader/: float16 tensors that differ from the bundled
model, and a manifest with their sha256), is rebuilt with torch from the bundled weights plus that
difference, and exported once, like the encoder, into

    <index dir>/encoders/reader-<key>/
      model.onnx, openvino.xml/.bin   the whole reader: token ids, mask and types in, one logit out
      export.json                     the shipped weights' sha256, each model file's, the probe figures
      probes.npy                      torch's logits of PROBES, checked at every load
      tokenizer.json                  the bundled model's tokenizer (pairs: [CLS] q [SEP] s [SEP])

Servers run it on OpenVINO or ONNX Runtime and never import torch; a load whose logits drift
more than MAX_LOGIT_DRIFT from torch's on the probes is refused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import ModelError
from bot.models.export import ONNX_OPSET, write_graphs
from bot.models.export import staged as staged_export
from bot.models.files import checked_bundled_dir
from bot.models.runtimes import (
    BUILD_BATCH,
    RUNTIMES,
    Export,
    ExportedTransformer,
    Runtime,
    ensure_export,
    export_dir,
    export_in_child,
    read_export,
    sound_export,
)
from bot.models.spans import PROBES, SpanFinder, TorchSpans, open_spans
from bot.models.training import WEIGHTS, check_weights, load_reader, read_manifest, scores

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).parent / "data" / "reader"
EXPORT_FORMAT = 1
EXPORT_COMMAND = "export-reader"
# OpenVINO computes in lower precision (and reads float16 weights): measured drift on the probes
# (`bot.models.spans.PROBES`) is ~1e-2; a wrong or damaged graph is off by whole logits.
MAX_LOGIT_DRIFT = 0.1


def shipped_sha256(folder: Path = SHIPPED) -> str:
    """The sha256 the shipped reader's manifest records for its weights."""
    return str(read_manifest(folder).get("weights_sha256", ""))


def export_folder(index_dir: Path, shipped: Path = SHIPPED) -> Path:
    """Where the export of the shipped reader lives in `index_dir`."""
    return export_dir(index_dir, "reader", shipped_sha256(shipped), EXPORT_FORMAT)


def export_reader(index_dir: Path, shipped: Path = SHIPPED) -> Path:
    """Export the shipped reader under `index_dir` once (with torch), with its probe logits."""
    import torch

    target = export_folder(index_dir, shipped)
    if sound_export(target, EXPORT_FORMAT, EXPORT_COMMAND, "reader"):
        return target
    model: Any = load_reader(shipped)

    class Logit(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> Any:
            features = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            return self.model(features)["scores"].reshape(-1, 1)

    tokenized = model.preprocess([list(p) for p in PROBES[:2]])
    names = ["input_ids", "attention_mask", "token_type_ids"]
    inputs = tuple(tokenized[n] for n in names)
    with staged_export(target) as staging:
        hashes = write_graphs(Logit(), inputs, staging, "logit", {0: "batch"})
        shutil.copyfile(checked_bundled_dir() / "tokenizer.json", staging / "tokenizer.json")
        manifest = read_manifest(shipped)
        np.save(staging / "probes.npy", scores(model, list(PROBES)))
        record: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "weights_sha256": manifest["weights_sha256"],
            "layers": manifest["layers"],
            "max_length": manifest["max_length"],
            "sha256": hashes,
            "torch": torch.__version__,
            "opset": ONNX_OPSET,
        }
        (staging / "export.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        drift: dict[str, float | None] = {}
        runtimes: tuple[Runtime, ...] = ("onnx", "openvino")
        for runtime in runtimes:
            try:
                drift[runtime] = check_probes(staging, ExportedReader(staging, runtime, reader_threads()))
            except ModelError as exc:  # recorded: loading this runtime will refuse with the reason
                log.warning("%s", exc)
                drift[runtime] = None
        record["probe_max_drift"] = drift
        (staging / "export.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return target


class ExportedReader:
    """The exported reader on ONNX Runtime or OpenVINO: a logit per (question, text) pair, and the
    short answer in a text when it has its span head (`bot.models.spans`)."""

    def __init__(self, folder: Path, runtime: Runtime, threads: int, spans: SpanFinder | None = None) -> None:
        record = json.loads((Path(folder) / "export.json").read_text(encoding="utf-8"))
        self.folder = Path(folder)
        self.runtime = runtime
        self.spans = spans
        self.transformer = ExportedTransformer(folder, "reader", runtime, threads, max_length=int(record["max_length"]))

    def answer_spans(self, question: str, texts: list[str]) -> list[tuple[int, int] | None] | None:
        """The span head's short answer in each text (None: it has none); None without a span head."""
        return self.spans.answer_spans(question, texts) if self.spans is not None else None

    def score_pairs(self, pairs: list[tuple[str, str]], batch_size: int = BUILD_BATCH) -> np.ndarray:
        """The logit of each (question, text) pair."""
        return self.transformer.forward(pairs, 1, _logit, batch_size).reshape(-1)

    def score(self, question: str, texts: list[str]) -> np.ndarray:
        """The logit of each text for `question` (the `Reader` of `bot.answer.reading`)."""
        return self.score_pairs([(question, text) for text in texts])


def _logit(output: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return output.reshape(-1, 1)


class TorchReader:
    """The shipped reader and its span head on torch (BOT_ENCODER=torch; builds and evaluations)."""

    def __init__(self, shipped: Path = SHIPPED, spans: SpanFinder | None = None) -> None:
        self.model = load_reader(shipped)
        self.spans = spans if spans is not None else TorchSpans()

    def answer_spans(self, question: str, texts: list[str]) -> list[tuple[int, int] | None] | None:
        return self.spans.answer_spans(question, texts)

    def score_pairs(self, pairs: list[tuple[str, str]], batch_size: int = BUILD_BATCH) -> np.ndarray:
        return scores(self.model, pairs, batch_size)

    def score(self, question: str, texts: list[str]) -> np.ndarray:
        return self.score_pairs([(question, text) for text in texts])


def reader_threads() -> int:
    """Threads for the reader: OMP_NUM_THREADS when set, else every CPU.

    Unlike the encoder's one short question, the reader runs a few pairs of ~50 tokens at a time,
    on the encoder's thread (the two never run at once). `make bench`, openvino, 2 CPUs, reader on:
    one thread 17.1 ms p50 at one client and 70 q/s at 32 clients; two (the encoder's one) 14.5 ms
    and 95 q/s."""
    configured = os.environ.get("OMP_NUM_THREADS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return max(1, os.cpu_count() or 1)


def check_probes(folder: Path, reader: ExportedReader) -> float:
    """Score PROBES with `reader`; refuse it when a logit is more than MAX_LOGIT_DRIFT from torch's."""
    reference = np.load(folder / "probes.npy")
    # One at a time, as a server's first questions come.
    found = np.concatenate([reader.score_pairs([pair]) for pair in PROBES])
    drift = float(np.max(np.abs(found - reference)))
    if not drift <= MAX_LOGIT_DRIFT:
        raise ModelError(
            f"the {reader.runtime} reader in {folder} gives logits {drift:.4f} from torch's on the probe pairs, "
            f"more than the {MAX_LOGIT_DRIFT} allowed: set BOT_READER=off, or delete {folder} and run "
            "`bot export-reader` to export it again"
        )
    return drift


def load_exported(folder: Path, runtime: Runtime, threads: int) -> ExportedReader:
    """The export in `folder` on `runtime`, checked: its model file's hash, then the probe logits."""
    read_export(folder, runtime, EXPORT_FORMAT, EXPORT_COMMAND)
    reader = ExportedReader(folder, runtime, threads)
    check_probes(folder, reader)
    return reader


ReaderModel = ExportedReader | TorchReader


def export_reader_in_child(index_dir: Path, shipped: Path = SHIPPED) -> None:
    """`bot export-reader` in a child process, so a server never imports torch."""
    export_in_child(EXPORT_COMMAND, index_dir, "--reader", str(shipped))


def open_reader(runtime: Runtime, index_dir: Path, *, export: Export = "never", shipped: Path = SHIPPED) -> ReaderModel:
    """The shipped reader on `runtime` (the encoder's); a missing export is made here, in a child
    process, or refused. The shipped weights are checked first, whichever the runtime."""
    check_shipped(shipped)
    if runtime == "torch":
        return TorchReader(shipped)
    if runtime not in RUNTIMES:
        raise ModelError(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    folder = ensure_export(
        export_folder(index_dir, shipped),
        export,
        lambda: export_reader(index_dir, shipped),
        lambda: export_reader_in_child(index_dir, shipped),
    )
    exported = load_exported(folder, runtime, reader_threads())
    try:
        exported.spans = open_spans(runtime, index_dir, threads=reader_threads(), export=export)
    except ModelError as exc:  # the reader still reads; the patterns mark the short answers
        log.warning("answering without the span head: %s", exc)
    return exported


def check_shipped(shipped: Path = SHIPPED) -> None:
    """Refuse shipped weights whose sha256 is not the one their manifest records."""
    check_weights(shipped, read_manifest(shipped), WEIGHTS, "reader", "train-reader")
