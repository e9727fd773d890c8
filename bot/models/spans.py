"""The span head served: the short answer inside a quoted sentence, or none.

Trained by `bot.models.span_training` and shipped in bot/models/data/spans/ (float16 difference
from the bundled model, manifest with its sha256). Like the reader it is exported once into the
index folder and served on ONNX Runtime or OpenVINO, so a server never imports torch:

    <index dir>/encoders/spans-<key>/
      model.onnx, openvino.xml/.bin   token ids, mask and types in; a start and an end logit per token out
      export.json                     the shipped weights' sha256, each model file's, the probe figures
      probes.npy                      torch's logits of PROBES (each alone, concatenated), checked at every load
      tokenizer.json                  the bundled model's tokenizer (pairs: [CLS] q [SEP] s [SEP])

A load whose logits drift more than MAX_LOGIT_DRIFT from torch's on the probes, or that marks a
different answer in one of them, is refused. BOT_READER turns it on and off with the reader.
"""

from __future__ import annotations

import json
import logging
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
from bot.models.span_training import (
    DEFAULT_OUT,
    SpanModel,
    best_tokens,
    check_span_weights,
    load_spans,
    read_pairs,
    span_logits,
)

log = logging.getLogger(__name__)

SHIPPED = DEFAULT_OUT
EXPORT_FORMAT = 1
EXPORT_COMMAND = "export-reader"  # exports the reader and its span head together
# Start and end logits run to ~±10; OpenVINO's lower precision moves them by a few hundredths. A
# wrong or damaged graph is off by whole logits, and marks other answers.
MAX_LOGIT_DRIFT = 0.5
Span = tuple[int, int]  # an answer's start and end offsets in its text
# Made-up pairs, short and long, answering and not, so that padding and truncation are used: every
# load of the span head and of the reader runs them.
PROBES = (
    (
        "Who will chair the Harrowgate project?",
        "Masha Ilvane of Brightwater Systems will chair the Harrowgate project.",
    ),
    ("Who will chair the Harrowgate project?", "The weather in Quillfield was mild on Tuesday."),
    (
        "How much will the Oskarby data centres cost?",
        "The four data centres near Oskarby will cost 2.4 billion crowns. " * 6,
    ),
    ("When did the Velmora council approve the bridge?", "The Velmora council approved the Tarn bridge in March 2031."),
    ("a", "b"),
)


def export_folder(index_dir: Path, shipped: Path = SHIPPED) -> Path:
    """Where the export of the shipped span head lives in `index_dir`."""
    return export_dir(index_dir, "spans", check_span_weights(shipped)["weights_sha256"], EXPORT_FORMAT)


def _text_tokens(sequence_ids: list[int | None]) -> np.ndarray:
    """Which tokens are the sentence's own (not the question's, not [CLS]/[SEP])."""
    return np.array([side == 1 for side in sequence_ids], dtype=bool)


def _span(logits: np.ndarray, sequence_ids: list[int | None], offsets: list[tuple[int, int]]) -> Span | None:
    tokens = best_tokens(logits, _text_tokens(sequence_ids))
    if tokens is None:
        return None
    start, end = offsets[tokens[0]][0], offsets[tokens[1]][1]
    return (start, end) if end > start else None


def export_spans(index_dir: Path, shipped: Path = SHIPPED) -> Path:
    """Export the shipped span head under `index_dir` once (with torch), with its probe logits."""
    import torch

    target = export_folder(index_dir, shipped)
    if sound_export(target, EXPORT_FORMAT, EXPORT_COMMAND, "span head"):
        return target
    model = load_spans(shipped)

    class StartEnd(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = model.network

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> Any:
            found = self.network(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return torch.stack([found.start_logits, found.end_logits], dim=-1)

    tokenized = model.tokenizer(
        [q for q, _ in PROBES[:2]], [t for _, t in PROBES[:2]], padding=True, return_tensors="pt"
    )
    inputs = tuple(tokenized[n] for n in ("input_ids", "attention_mask", "token_type_ids"))
    with staged_export(target) as staging:
        hashes = write_graphs(StartEnd(), inputs, staging, "start_end", {0: "batch", 1: "tokens"})
        shutil.copyfile(checked_bundled_dir() / "tokenizer.json", staging / "tokenizer.json")
        manifest = check_span_weights(shipped)
        np.save(staging / "probes.npy", np.concatenate(span_logits(model, list(PROBES))))
        record: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "weights_sha256": manifest["weights_sha256"],
            "max_length": manifest["max_length"],
            "probe_spans": [list(s) if s else None for s in TorchSpans(model).spans_of_pairs(list(PROBES))],
            "sha256": hashes,
            "torch": torch.__version__,
            "opset": ONNX_OPSET,
        }
        (staging / "export.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        drift: dict[str, float | None] = {}
        runtimes: tuple[Runtime, ...] = ("onnx", "openvino")
        for runtime in runtimes:
            try:
                drift[runtime] = check_probes(staging, ExportedSpans(staging, runtime, 1))
            except ModelError as exc:  # recorded: loading this runtime will refuse with the reason
                log.warning("%s", exc)
                drift[runtime] = None
        record["probe_max_drift"] = drift
        (staging / "export.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return target


class ExportedSpans:
    """The exported span head on ONNX Runtime or OpenVINO."""

    def __init__(self, folder: Path, runtime: Runtime, threads: int) -> None:
        record = json.loads((Path(folder) / "export.json").read_text(encoding="utf-8"))
        self.folder = Path(folder)
        self.runtime = runtime
        self.transformer = ExportedTransformer(folder, "spans", runtime, threads, max_length=int(record["max_length"]))

    def spans_of_pairs(self, pairs: list[tuple[str, str]]) -> list[Span | None]:
        found = self.transformer.token_outputs(pairs, BUILD_BATCH)
        return [_span(output, encoding.sequence_ids, encoding.offsets) for encoding, output in found]

    def answer_spans(self, question: str, texts: list[str]) -> list[Span | None]:
        """The answer's offsets in each text, or None where it holds none."""
        return self.spans_of_pairs([(question, text) for text in texts])


class TorchSpans:
    """The shipped span head on torch (BOT_ENCODER=torch; builds and evaluations)."""

    def __init__(self, model: SpanModel | None = None, shipped: Path = SHIPPED) -> None:
        self.model = model if model is not None else load_spans(shipped)

    def spans_of_pairs(self, pairs: list[tuple[str, str]]) -> list[Span | None]:
        return [_span(logits, sides, offsets) for logits, sides, offsets in read_pairs(self.model, pairs)]

    def answer_spans(self, question: str, texts: list[str]) -> list[Span | None]:
        return self.spans_of_pairs([(question, text) for text in texts])


SpanFinder = ExportedSpans | TorchSpans


def check_probes(folder: Path, spans: ExportedSpans) -> float:
    """Run PROBES (one at a time, as a server's first questions come); refuse the export when a
    logit drifts more than MAX_LOGIT_DRIFT from torch's or a probe's answer differs."""
    reference = np.load(folder / "probes.npy")
    found = [spans.transformer.token_outputs([pair], BUILD_BATCH)[0] for pair in PROBES]
    flat = np.concatenate([output for _, output in found])
    record = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    spotted = (_span(output, encoding.sequence_ids, encoding.offsets) for encoding, output in found)
    marked = [list(s) if s else None for s in spotted]
    drift = float(np.max(np.abs(flat - reference))) if flat.shape == reference.shape else float("inf")
    if not drift <= MAX_LOGIT_DRIFT or marked != record.get("probe_spans"):
        raise ModelError(
            f"the {spans.runtime} span head in {folder} gives logits {drift:.4f} from torch's on the probe pairs "
            f"(at most {MAX_LOGIT_DRIFT} allowed), marking {marked} where torch marks {record.get('probe_spans')}: "
            f"set BOT_READER=off, or delete {folder} and run `bot export-reader` to export it again"
        )
    return drift


def load_exported_spans(folder: Path, runtime: Runtime, threads: int) -> ExportedSpans:
    """The export in `folder` on `runtime`, checked: its model file's hash, then the probes."""
    read_export(folder, runtime, EXPORT_FORMAT, EXPORT_COMMAND)
    spans = ExportedSpans(folder, runtime, threads)
    check_probes(folder, spans)
    return spans


def export_spans_in_child(index_dir: Path, shipped: Path = SHIPPED) -> None:
    """`bot export-reader` in a child process, so a server never imports torch."""
    export_in_child(EXPORT_COMMAND, index_dir)


def open_spans(
    runtime: Runtime, index_dir: Path, *, threads: int = 1, export: Export = "never", shipped: Path = SHIPPED
) -> SpanFinder:
    """The shipped span head on `runtime`; a missing export is made here, in a child process, or
    refused. The shipped weights are checked first, whichever the runtime."""
    check_span_weights(shipped)
    if runtime == "torch":
        return TorchSpans(shipped=shipped)
    if runtime not in RUNTIMES:
        raise ModelError(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    folder = ensure_export(
        export_folder(index_dir, shipped),
        export,
        lambda: export_spans(index_dir, shipped),
        lambda: export_spans_in_child(index_dir, shipped),
    )
    return load_exported_spans(folder, runtime, threads)
