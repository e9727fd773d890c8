"""Training the span head: the short answer inside a quoted sentence (`quotes[].answer`).

The model: all six layers of the bundled all-MiniLM-L6-v2 (sha256-checked) with a linear layer
that gives every token a start and an end logit (transformers' BertForQuestionAnswering). Input:
[CLS] question [SEP] sentence [SEP], at most MAX_LENGTH tokens, as the reader reads it. The
answer is the sentence's tokens a..b with the highest start(a) + end(b), b - a < MAX_ANSWER_TOKENS;
the sentence holds none when [CLS]'s start + end beats that by more than NULL_MARGIN (SQuAD 2.0's
rule, with its null-score threshold), which is how it learns from questions the sentence does not
answer.

Trained with transformers' Trainer (cross-entropy of the start and end positions), on CPU,
deterministic for a seed, from `bot.quality.span_data`'s examples. What ships in
bot/models/data/spans/: `spans.safetensors`, the float16 tensors that differ from the bundled model
(the word and position embeddings stay frozen and come from the bundled weights), and
`manifest.json` (base model and weights sha256, data hashes and counts, seed, hyperparameters,
losses, figures). Rebuilt from both at load, checked by sha256, like the reader.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.errors import ModelError
from bot.models.files import BUNDLED_SHA256, bundled_model_dir, verify_bundled
from bot.models.training import (
    MAX_LENGTH,
    Hyper,
    check_weights,
    is_frozen,
    quiet,
    round_to_shipped,
    seeded,
    trainer_arguments,
    write_shipped,
)

if TYPE_CHECKING:
    from transformers import BertForQuestionAnswering

FORMAT = 1
WEIGHTS = "spans.safetensors"
MANIFEST = "manifest.json"
DEFAULT_OUT = Path(__file__).parent / "data" / "spans"
# The longest answer marked, in word pieces (SQuAD's answers: 3 words on average, few above 10).
MAX_ANSWER_TOKENS = 16
IGNORED = -1  # no position: an answer cut off by truncation (such examples are left out)
# How far [CLS]'s start + end must beat the best span for the sentence to hold no answer. The head
# runs on quotes already chosen as answers, where leaving the answer unmarked is the common miss.
# Exact match given the right sentence, by margin (0, 1, 2, 3, 4, 6, 8): on the `train` pages'
# sentences 0.713 0.723 0.732 0.738 0.741 0.743 0.743, gains halving after 3, which was chosen
# there; on the held-out pages' 0.523 0.537 0.546 0.555 0.559 0.563 0.565, with SQuAD v2's
# unanswerable sentences left unmarked 0.33 0.28 0.23 0.18 0.15 0.09 0.06.
NULL_MARGIN = 3.0


@dataclass(frozen=True, slots=True)
class SpanExample:
    """A question and one sentence unit; `start`/`end` are the answer's offsets in `text`, or None."""

    question: str
    text: str
    start: int | None
    end: int | None
    answers: tuple[str, ...] = ()

    @property
    def answerable(self) -> bool:
        return self.start is not None


@dataclass(slots=True)
class SpanModel:
    """The torch model and its tokenizer."""

    network: BertForQuestionAnswering
    tokenizer: Any  # the bundled model's fast tokenizer (offsets, sequence ids)
    max_length: int = MAX_LENGTH


def new_span_model(max_length: int = MAX_LENGTH, seed: int = 0, layers: int = 6) -> SpanModel:
    """The bundled model's first `layers` layers with a fresh (seeded) start/end layer, on the CPU."""
    from transformers import AutoTokenizer, BertForQuestionAnswering

    if not 1 <= layers <= 6:
        raise ModelError(f"the span head keeps 1 to 6 of the bundled model's layers, not {layers}")
    folder = bundled_model_dir()
    verify_bundled(folder)
    seeded(seed)
    with quiet():
        network = BertForQuestionAnswering.from_pretrained(str(folder), local_files_only=True, num_hidden_layers=layers)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return SpanModel(network, tokenizer, max_length)


def encode(model: SpanModel, questions: Sequence[str], texts: Sequence[str]) -> Any:
    """The pairs as the model reads them, with each token's offsets in its text."""
    return model.tokenizer(
        list(questions),
        list(texts),
        truncation="longest_first",
        max_length=model.max_length,
        return_offsets_mapping=True,
    )


def positions(encoded: Any, row: int, start: int | None, end: int | None) -> tuple[int, int]:
    """The token positions of a character answer [start, end) in row `row`'s text: (0, 0) for no
    answer, IGNORED when truncation cut it off."""
    if start is None or end is None:
        return 0, 0
    sequence = encoded.sequence_ids(row)
    offsets = encoded["offset_mapping"][row]
    first = last = None
    for token, (side, (a, b)) in enumerate(zip(sequence, offsets, strict=True)):
        if side != 1 or a == b:
            continue
        if first is None and a <= start < b:
            first = token
        if a < end <= b:
            last = token
    if first is None or last is None or last < first:
        return IGNORED, IGNORED
    return first, last


def train_spans(model: SpanModel, examples: Sequence[SpanExample], hyper: Hyper) -> dict[str, Any]:
    """Fine-tune `model` in place with transformers' Trainer; returns the run's record."""
    import torch
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    torch.set_num_threads(hyper.threads)
    for name, parameter in model.network.named_parameters():
        parameter.requires_grad = not is_frozen(name)
    encoded = encode(model, [e.question for e in examples], [e.text for e in examples])
    found = [positions(encoded, i, e.start, e.end) for i, e in enumerate(examples)]
    # An answer truncation cut off is left out: transformers clamps a position outside the tokens
    # to [CLS] before the loss, which would teach "no answer" for a sentence that has one.
    kept = [i for i, (start, _) in enumerate(found) if start != IGNORED]
    data = Dataset.from_dict(
        {
            "input_ids": [encoded["input_ids"][i] for i in kept],
            "attention_mask": [encoded["attention_mask"][i] for i in kept],
            "token_type_ids": [encoded["token_type_ids"][i] for i in kept],
            "start_positions": [found[i][0] for i in kept],
            "end_positions": [found[i][1] for i in kept],
        }
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="spans-train-") as work:
        args = TrainingArguments(**trainer_arguments(hyper, work))
        trainer = Trainer(
            model=model.network,
            args=args,
            train_dataset=data,
            data_collator=DataCollatorWithPadding(model.tokenizer),
        )
        with quiet():
            trainer.train()
    losses = [float(row["loss"]) for row in trainer.state.log_history if "loss" in row]
    round_to_shipped(model.network)
    model.network.eval()  # type: ignore[no-untyped-call]
    return {
        "examples": len(kept),
        "answerable": sum(examples[i].answerable for i in kept),
        "answers_cut_off": len(examples) - len(kept),
        "seconds": round(time.perf_counter() - started, 1),
        "steps": int(trainer.state.global_step),
        "logged_losses": [round(x, 4) for x in losses],
    }


def save_spans(model: SpanModel, out: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write out/spans.safetensors (float16, the difference from the bundled model) and out/manifest.json."""
    described = {
        "layers": int(model.network.config.num_hidden_layers),
        "max_length": model.max_length,
        "max_answer_tokens": MAX_ANSWER_TOKENS,
        "input": {"pair": ["question", "sentence unit text"], "truncation": "longest_first"},
        "architecture": "BERT layers -> linear 384 -> 2 (a start and an end logit per token)",
        "output": f"the tokens a..b with the highest start + end; none when [CLS]'s start + end is more than {NULL_MARGIN} higher",
    }
    return write_shipped(model.network, out, WEIGHTS, described, record)


def read_span_manifest(folder: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"no span head in {folder}: {folder / MANIFEST} is unreadable ({exc})") from None
    return manifest


def check_span_weights(folder: Path) -> dict[str, Any]:
    """The manifest, after refusing weights whose sha256 (or base model) is not the one it records."""
    manifest = read_span_manifest(folder)
    check_weights(folder, manifest, WEIGHTS, "span head", "train-spans")
    if manifest.get("base_sha256") != BUNDLED_SHA256:
        raise ModelError(f"{folder / MANIFEST} was trained on another base model ({manifest.get('base_sha256')})")
    return manifest


def load_spans(folder: Path = DEFAULT_OUT) -> SpanModel:
    """The shipped span head, rebuilt from the bundled model and `folder`'s weights (both checked)."""
    from safetensors.torch import load_file

    manifest = check_span_weights(folder)
    model = new_span_model(int(manifest["max_length"]), layers=int(manifest.get("layers", 6)))
    shipped = {name: tensor.float() for name, tensor in load_file(str(folder / manifest["weights"])).items()}
    missing, unexpected = model.network.load_state_dict(shipped, strict=False)
    if unexpected or [name for name in missing if not is_frozen(name)]:
        raise ModelError(f"{folder / manifest['weights']} does not fit the span head: {unexpected or missing}")
    model.network.eval()  # type: ignore[no-untyped-call]
    return model


def span_logits(model: SpanModel, pairs: Sequence[tuple[str, str]]) -> list[np.ndarray]:
    """Each pair's (tokens, 2) start and end logits, unpadded."""
    return [logits for logits, _, _ in read_pairs(model, pairs)]


Read = tuple[np.ndarray, list[int | None], list[tuple[int, int]]]  # logits, sequence ids, offsets


def read_pairs(model: SpanModel, pairs: Sequence[tuple[str, str]]) -> list[Read]:
    """Each pair's (tokens, 2) start and end logits, unpadded, with its tokens' sequence ids (0 the
    question, 1 the text, None [CLS]/[SEP]) and character offsets, from one tokenization."""
    import torch

    out: list[Read] = []
    for first in range(0, len(pairs), 64):
        chunk = pairs[first : first + 64]
        batch = model.tokenizer(
            [q for q, _ in chunk],
            [t for _, t in chunk],
            truncation="longest_first",
            max_length=model.max_length,
            padding=True,
            return_offsets_mapping=True,
            return_tensors="pt",
        )
        offsets = batch.pop("offset_mapping").tolist()
        with torch.inference_mode():
            found = model.network(**batch)
        logits = torch.stack([found.start_logits, found.end_logits], dim=-1).float().numpy()
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        for row, n in enumerate(int(length) for length in lengths):
            out.append((logits[row, :n], batch.sequence_ids(row)[:n], [tuple(o) for o in offsets[row][:n]]))
    return out


def best_tokens(logits: np.ndarray, text_tokens: np.ndarray) -> tuple[int, int] | None:
    """The answer's first and last token (among `text_tokens`, a boolean per token), or None when
    the [CLS] token's start + end beats every span by more than NULL_MARGIN (no answer in the sentence)."""
    starts, ends = logits[:, 0], logits[:, 1]
    allowed = np.flatnonzero(text_tokens[: len(starts)])
    if not len(allowed):
        return None
    best, where = -np.inf, None
    for a in allowed:
        stop = a + MAX_ANSWER_TOKENS
        candidates = allowed[(allowed >= a) & (allowed < stop)]
        b = candidates[int(np.argmax(ends[candidates]))]
        if starts[a] + ends[b] > best:
            best, where = float(starts[a] + ends[b]), (int(a), int(b))
    if where is None or starts[0] + ends[0] > best + NULL_MARGIN:
        return None
    return where
