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
