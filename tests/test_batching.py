"""The server's question batches: powers of two of the waiting questions, first come first."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from bot.answer.batching import BatchingEncoder
from tests.conftest import FakeEmbedder


class GatedEmbedder(FakeEmbedder):
    """The fake model, whose first call waits until the test opens the gate (the queue fills)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = threading.Event()

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        self.calls.append(list(texts))
        self.gate.wait(10)
        time.sleep(0.02)  # long enough for the leftovers to be seen waiting
        return super().encode(texts)


def test_waiting_questions_are_encoded_as_powers_of_two_first_come_first() -> None:
    embedder = GatedEmbedder()
    questions = [f"When does ferry {n} leave Quillfield?" for n in range(12)]

    async def ask_all() -> list[np.ndarray]:
        encoder = BatchingEncoder(embedder)
        first = asyncio.ensure_future(encoder.encode(questions[0]))
        while not embedder.calls:  # the first question is being encoded; the others queue behind it
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(encoder.encode(q)) for q in questions[1:]]
        await asyncio.sleep(0.01)
        embedder.gate.set()
        vectors = await asyncio.gather(first, *rest)
        await encoder.close()
        return vectors

    vectors = asyncio.run(ask_all())
    # 11 waiting: 8 now (the earliest), the 3 left over join the next batch, run as 2 then 1.
    assert [len(call) for call in embedder.calls] == [1, 8, 2, 1]
    assert [q for call in embedder.calls for q in call] == questions
    np.testing.assert_array_equal(np.vstack(vectors), FakeEmbedder().encode(questions))


class PickyEmbedder(GatedEmbedder):
    """The gated fake model, refusing a text that is not valid Unicode as the real tokenizer does
    (with a TypeError, for the whole batch)."""

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        vectors = super().encode(texts)
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise TypeError("TextEncodeInput must be Union[TextInputSequence, ...]") from None
        return vectors


def test_a_question_the_model_refuses_fails_alone_and_its_batch_mates_are_answered() -> None:
    embedder = PickyEmbedder()
    questions = [f"When does ferry {n} leave Quillfield?" for n in range(5)]
    questions[2] = "When does ferry \ud800 leave Quillfield?"

    async def ask_all() -> tuple[list[np.ndarray | BaseException], np.ndarray]:
        encoder = BatchingEncoder(embedder)
        first = asyncio.ensure_future(encoder.encode(questions[0]))
        while not embedder.calls:
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(encoder.encode(q)) for q in questions[1:]]
        twice = asyncio.ensure_future(encoder.encode(questions[1]))  # two requests, one question
        await asyncio.sleep(0.01)
        embedder.gate.set()
        found = await asyncio.gather(first, *rest, twice, return_exceptions=True)
        after = await encoder.encode("When does the last ferry leave?")  # the worker lives on
        await encoder.close()
        return found, after

    found, after = asyncio.run(ask_all())
    # The first alone; the four that waited in one call, which fails; then each of them alone.
    assert [len(call) for call in embedder.calls] == [1, 4, 1, 1, 1, 1, 1]
    assert isinstance(found[2], TypeError)
    expected = FakeEmbedder().encode([*questions, questions[1]])
    for n, result in enumerate(found):
        if n != 2:
            assert isinstance(result, np.ndarray), result
            np.testing.assert_array_equal(result, expected[n])
    np.testing.assert_array_equal(after, FakeEmbedder().encode(["When does the last ferry leave?"])[0])


class GatedReader:
    """A fake reader: a pair's logit is its text's length; it fails on a text holding "poison",
    and its first call waits until the test opens the gate (the other questions queue)."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, str]]] = []
        self.gate = threading.Event()

    def score_pairs(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        self.calls.append(list(pairs))
        self.gate.wait(10)
        if any("poison" in text for _, text in pairs):
            raise ValueError("the reader cannot read that")
        return np.array([float(len(text)) for _, text in pairs])


def test_waiting_questions_are_read_together_and_a_bad_one_fails_alone() -> None:
    reader = GatedReader()
    asks = [(f"Who runs ferry {n}?", [f"Ferry {n} is run by Quillfield Lines.", "No."]) for n in range(5)]
    asks[3] = ("Who runs the poisoned ferry?", ["poison", "Ferry three is run by nobody."])

    async def read_all() -> list[np.ndarray | BaseException]:
        encoder = BatchingEncoder(FakeEmbedder(), reader=reader)
        first = asyncio.ensure_future(encoder.read(*asks[0]))
        while not reader.calls:
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(encoder.read(q, texts)) for q, texts in asks[1:]]
        await asyncio.sleep(0.01)
        reader.gate.set()
        found = await asyncio.gather(first, *rest, return_exceptions=True)
        await encoder.close()
        return found

    found = asyncio.run(read_all())
    # The first alone; the four that waited in one call, which fails; then each of them alone.
    assert [len(call) for call in reader.calls] == [2, 8, 2, 2, 2, 2]
    for n, result in enumerate(found):
        if n == 3:
            assert isinstance(result, ValueError)
        else:
            np.testing.assert_array_equal(result, [float(len(t)) for t in asks[n][1]])


def test_a_thread_reads_through_the_same_batches() -> None:
    reader = GatedReader()
    reader.gate.set()
    encoder = BatchingEncoder(FakeEmbedder(), reader=reader)
    logits = encoder.read_blocking("Who runs the ferry?", ["Quillfield Lines runs it.", "No."])
    np.testing.assert_array_equal(logits, [25.0, 3.0])
    assert encoder.read_sizes == [2]
    asyncio.run(encoder.close())
