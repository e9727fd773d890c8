"""The reader's trainer on the real bundled model: made-up pairs, a short run, the shipped difference reloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.errors import ModelError

pytestmark = pytest.mark.slow

# Made-up questions, each with its answering sentence first and three distractors about the same things.
QUESTIONS = {
    "Which city will host the Zorblax summit?": [
        "The Zorblax summit will be held in Vantoria next May.",
        "Vantoria is known for its glass bridges.",
        "Zorblax Industries makes copper kettles.",
        "The summit was first proposed in a letter.",
    ],
    "Who leads Quintrel Corporation?": [
        "Quintrel Corporation is led by chief executive Mara Okonkwo.",
        "Quintrel Corporation sells widgets in Lumeria.",
        "Mara Okonkwo enjoys sailing on weekends.",
        "Its headquarters stand beside the Orvik river.",
    ],
    "How much did Fenwick Group pay for the Orvik ferry line?": [
        "Fenwick Group paid 40 million crowns for the Orvik ferry line.",
        "The Orvik ferry line runs four boats a day.",
        "Fenwick Group was founded by two brothers.",
        "Passengers complained about the ferry's coffee.",
    ],
    "When will the Castelfane museum reopen?": [
        "The Castelfane museum will reopen on 3 June after repairs.",
        "The Castelfane museum holds a famous tapestry.",
        "Repairs to the roof were paid for by the city.",
        "Visitors queued outside the museum last year.",
    ],
}
PAIRS = [(q, s) for q, sentences in QUESTIONS.items() for s in sentences]
LABELS = [int(i == 0) for sentences in QUESTIONS.values() for i in range(len(sentences))]


def run(seed: int = 0) -> Any:
    from bot.models import training

    hyper = training.Hyper(
        layers=2, epochs=8, batch_size=8, learning_rate=5e-4, warmup_ratio=0.0, seed=seed, bf16=False, threads=2
    )
    model = training.new_model(hyper.layers, seed=seed)
    before = training.mean_loss(model, PAIRS, LABELS)
    record = training.train(model, [q for q, _ in PAIRS], [s for _, s in PAIRS], LABELS, hyper)
    return model, before, record


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, float, Path]:
    from bot.models import training

    model, before, record = run()
    out = tmp_path_factory.mktemp("reader")
    training.save_reader(model, out, {"training": record})
    return model, before, out


def test_training_lowers_the_loss_and_ranks_the_answer_first(trained: tuple[Any, float, Path]) -> None:
    from bot.models import training

    model, before, _ = trained
    assert training.mean_loss(model, PAIRS, LABELS) < before / 2
    for question, sentences in QUESTIONS.items():
        scores = training.scores(model, [(question, s) for s in sentences])
        assert int(np.argmax(scores)) == 0, (question, scores)


def test_the_shipped_difference_reloads_to_the_same_scores(trained: tuple[Any, float, Path]) -> None:
    from bot.models import training

    model, _, out = trained
    reloaded = training.load_reader(out)
    assert np.array_equal(training.scores(model, PAIRS), training.scores(reloaded, PAIRS))
    manifest = training.read_manifest(out)
    assert manifest["layers"] == 2 and manifest["max_length"] == training.MAX_LENGTH
    # Only the difference ships: no vocabulary or position vectors, half-precision values.
    from safetensors import safe_open

    with safe_open(str(out / training.WEIGHTS), "np") as shipped:
        names = set(shipped.keys())
        assert {str(shipped.get_tensor(n).dtype) for n in names} == {"float16"}
    assert not [n for n in names if any(part in n for part in training.FROZEN)]
    assert any(n.endswith("encoder.layer.1.output.dense.weight") for n in names)
    assert not any(".layer.2." in n for n in names)


def test_a_tampered_weights_file_is_refused(trained: tuple[Any, float, Path], tmp_path: Path) -> None:
    import shutil

    from bot.models import training

    _, _, out = trained
    copy = tmp_path / "reader"
    shutil.copytree(out, copy)
    data = bytearray((copy / training.WEIGHTS).read_bytes())
    data[-1] ^= 0xFF
    (copy / training.WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"reader\.safetensors has sha256 .* the weights were changed"):
        training.load_reader(copy)


def test_two_runs_with_one_seed_give_identical_weights(trained: tuple[Any, float, Path]) -> None:
    from bot.models import training

    model, _, _ = trained
    again, _, _ = run()
    first, second = training.shipped_tensors(model), training.shipped_tensors(again)
    assert first.keys() == second.keys()
    assert all(bool((first[n] == second[n]).all()) for n in first)


def test_a_failure_while_measuring_keeps_the_trained_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main
    from bot.cli import reader as reader_cli
    from bot.errors import BotError
    from bot.models import training
    from bot.quality import reader_data
    from bot.quality.reader_text import Pair, Parts

    pairs = [
        Pair(q, s, label, "squad", "positive" if label else "paragraph", f"q{n // 4}")
        for n, ((q, s), label) in enumerate(zip(PAIRS, LABELS, strict=True))
    ]
    data = tmp_path / "data"
    reader_data.write(data, pairs, 0, None, {}, Parts())

    def unreadable(*args: object) -> None:
        raise BotError("the news dev set at build/eval/made-up cannot be read")

    monkeypatch.setattr(reader_cli, "measure", unreadable)
    out = tmp_path / "reader"
    flags = ["--layers", "1", "--epochs", "1", "--batch-size", "8", "--threads", "1", "--no-bf16"]
    assert main(["train-reader", "--data", str(data), "--out", str(out), *flags]) == 1
    assert "cannot be read" in capsys.readouterr().err
    # The trained weights were written before measuring: they load, checked by sha256, without figures.
    reloaded = training.load_reader(out)
    manifest = training.read_manifest(out)
    assert manifest["figures"] == {}
    assert manifest["training"]["pairs"] == len(pairs)
    assert training.scores(reloaded, PAIRS[:1]).shape == (1,)
