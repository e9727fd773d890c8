"""The span head's trainer on the real bundled model: made-up sentences, a short run, the shipped
difference reloaded; and the shipped span head as servers run it (exported, checked, refused when changed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.errors import ModelError
from bot.models import span_training, spans, training
from bot.models.runtimes import RUNTIMES
from bot.models.span_training import SpanExample
from bot.models.training import FROZEN
from bot.quality.span_data import measure
from tests.test_reader_runtime import changed_copy

pytestmark = pytest.mark.slow

EXPORTED = [r for r in RUNTIMES if r != "torch"]


def example(question: str, text: str, answer: str | None) -> SpanExample:
    if answer is None:
        return SpanExample(question, text, None, None)
    start = text.index(answer)
    return SpanExample(question, text, start, start + len(answer), (answer,))


# Made-up questions and sentences: the answer of each, and sentences that hold none.
EXAMPLES = [
    example(
        "Which city will host the Zorblax summit?", "The Zorblax summit will be held in Vantoria next May.", "Vantoria"
    ),
    example(
        "Who leads Quintrel Corporation?",
        "Quintrel Corporation is led by chief executive Mara Okonkwo.",
        "Mara Okonkwo",
    ),
    example(
        "How much did Fenwick Group pay for the Orvik ferry line?",
        "Fenwick Group paid 40 million crowns for the Orvik ferry line.",
        "40 million crowns",
    ),
    example(
        "When will the Castelfane museum reopen?",
        "The Castelfane museum will reopen on 3 June after repairs.",
        "3 June",
    ),
    example(
        "Who designed the Tarn bridge?",
        "The Tarn bridge was designed by Ilse Varga of Ostvik Engineering.",
        "Ilse Varga",
    ),
    example(
        "Where is Brightwater Systems based?", "Brightwater Systems, based in Quillfield, makes pumps.", "Quillfield"
    ),
    example("Who leads Quintrel Corporation?", "Quintrel Corporation sells widgets in Lumeria.", None),
    example("When will the Castelfane museum reopen?", "The Castelfane museum holds a famous tapestry.", None),
]


# Made-up: its answer comes after the first 64 tokens, so truncation cuts it off; it is left out
# of training rather than taught as a sentence with no answer.
CUT_OFF = example(
    "Who rang the bell of the Velmora lighthouse?",
    "The Velmora lighthouse, " + "which stands on a rock above the grey harbour, " * 8 + "was rung by Ilse Varga.",
    "Ilse Varga",
)


def run(seed: int = 0) -> tuple[span_training.SpanModel, dict[str, Any]]:
    hyper = training.Hyper(
        epochs=25, batch_size=4, learning_rate=1e-4, warmup_ratio=0.0, seed=seed, bf16=False, threads=2
    )
    model = span_training.new_span_model(seed=seed)
    return model, span_training.train_spans(model, [*EXAMPLES, CUT_OFF], hyper)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[span_training.SpanModel, dict[str, Any], Path]:
    model, record = run()
    out = tmp_path_factory.mktemp("spans")
    span_training.save_spans(model, out, {"training": record})
    return model, record, out


def test_training_lowers_the_loss_and_marks_each_answer(trained: tuple[Any, dict[str, Any], Path]) -> None:
    model, record, _ = trained
    losses = record["logged_losses"] or []
    assert record["answers_cut_off"] == 1 and record["examples"] == len(EXAMPLES)
    before = measure(EXAMPLES, spans.TorchSpans(span_training.new_span_model()).spans_of_pairs)
    after = measure(EXAMPLES, spans.TorchSpans(model).spans_of_pairs)
    assert after["exact_match"] == 1.0 and after["left_unmarked"] == 1.0, after
    assert (before["exact_match"] or 0) < 0.5, before  # an untrained head does not already know them
    assert not losses or losses[-1] < 1.0


def test_the_shipped_difference_reloads_to_the_same_marks(trained: tuple[Any, dict[str, Any], Path]) -> None:
    model, _, out = trained
    reloaded = span_training.load_spans(out)
    pairs = [(e.question, e.text) for e in EXAMPLES]
    first, second = span_training.span_logits(model, pairs), span_training.span_logits(reloaded, pairs)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    from safetensors import safe_open

    with safe_open(str(out / span_training.WEIGHTS), "np") as shipped:
        names = set(shipped.keys())
        assert {str(shipped.get_tensor(n).dtype) for n in names} == {"float16"}
    assert not [n for n in names if any(part in n for part in FROZEN)]
    assert "qa_outputs.weight" in names


def test_two_runs_with_one_seed_give_identical_weights(trained: tuple[Any, dict[str, Any], Path]) -> None:
    model, _, _ = trained
    again, _ = run()
    first, second = training.shipped_tensors(model.network), training.shipped_tensors(again.network)
    assert first.keys() == second.keys()
    assert all(bool((first[n] == second[n]).all()) for n in first)


@pytest.mark.parametrize(
    ("lead", "expected"),
    [(1.0, (2, 3)), (span_training.NULL_MARGIN - 0.5, (2, 3)), (span_training.NULL_MARGIN + 0.5, None)],
)
def test_a_sentence_holds_no_answer_only_when_cls_wins_by_the_margin(
    lead: float, expected: tuple[int, int] | None
) -> None:
    """The head runs on quotes chosen as answers: [CLS] beating the best span by a little leaves it marked."""
    text_tokens = np.array([False, False, True, True, True, False])
    logits = np.zeros((6, 2))
    logits[2, 0], logits[3, 1] = 2.0, 1.5  # the best span: tokens 2..3, start + end 3.5
    logits[0] = (3.5 + lead) / 2  # [CLS]'s start + end, `lead` above the best span's
    assert span_training.best_tokens(logits, text_tokens) == expected


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_changed_shipped_span_weights_are_refused_on_every_runtime(runtime: str, tmp_path: Path) -> None:
    shipped = changed_copy(spans.SHIPPED, tmp_path, span_training.WEIGHTS)
    with pytest.raises(ModelError, match=r"span head's weights were changed; restore them"):
        spans.open_spans(runtime, tmp_path / "index", export="here", shipped=shipped)  # type: ignore[arg-type]
    assert not (tmp_path / "index").exists()  # refused before anything was exported


# Made-up pairs the shipped head marks; the same marks on every runtime.
PAIRS = [
    ("Which company built the Tarn bridge?", "The Tarn bridge was built by Ostvik Engineering in 2029."),
    ("When was the Tarn bridge built?", "The Tarn bridge was built by Ostvik Engineering in 2029."),
    ("Where is Brightwater Systems based?", "Brightwater Systems, based in Quillfield, makes pumps."),
]


def test_the_shipped_head_marks_made_up_answers() -> None:
    found = spans.TorchSpans().spans_of_pairs(PAIRS)
    marked = [text[s[0] : s[1]] if s else None for (_, text), s in zip(PAIRS, found, strict=True)]
    assert marked == ["Ostvik Engineering", "2029", "Quillfield"]


@pytest.mark.parametrize("runtime", EXPORTED)
def test_the_exported_head_marks_as_torch_does(runtime: str, seed_index: Path) -> None:
    exported = spans.open_spans(runtime, seed_index, export="here")  # type: ignore[arg-type]
    assert exported.spans_of_pairs(PAIRS) == spans.TorchSpans().spans_of_pairs(PAIRS)


@pytest.mark.parametrize(("runtime", "name"), [("onnx", "model.onnx"), ("openvino", "openvino.bin")])
def test_a_changed_span_export_is_refused_with_the_command_that_remakes_it(
    runtime: str, name: str, seed_index: Path, tmp_path: Path
) -> None:
    spans.open_spans("onnx", seed_index, export="here")
    folder = changed_copy(spans.export_folder(seed_index), tmp_path, name)
    with pytest.raises(ModelError, match=rf"{name} has sha256 .* run `bot export-reader`"):
        spans.load_exported_spans(folder, runtime, 1)  # type: ignore[arg-type]
