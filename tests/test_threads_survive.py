"""Background loops outlive one bad turn: the corpus watcher, the question encoder."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from bot.answer.batching import BatchingEncoder
from bot.errors import BotError
from bot.indexing.building import BuildReport
from bot.indexing.stores import FaissStore
from bot.indexing.watcher import watch
from tests.conftest import FakeEmbedder, wait_until, write_article


def test_the_corpus_watch_survives_an_unexpected_error_in_a_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_article(corpus, "ferry.md", "Quillfield ferry", "The ferry of Quillfield runs twice a day.")
    from bot.indexing.faiss_build import build_index as real_build

    calls: list[int] = []

    def flaky_build(*args: object, **kwargs: object) -> BuildReport:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk hiccup")  # not a BotError: the kind that used to end the watch
        return real_build(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("bot.indexing.stores.build_index", flaky_build)
    stop = threading.Event()
    builds: list[BuildReport] = []
    errors: list[BotError] = []
    thread = threading.Thread(
        target=watch,
        args=(corpus, FaissStore(tmp_path / "index"), FakeEmbedder()),
        kwargs={"stop": stop, "on_build": builds.append, "on_error": errors.append, "debounce_ms": 200},
        daemon=True,
    )
    thread.start()
    try:
        wait_until(lambda: errors, timeout=20)
        assert "disk hiccup" in str(errors[0])
        write_article(corpus, "mill.md", "Brackwater mill", "The mill of Brackwater reopened.")
        wait_until(lambda: builds, timeout=30)
        assert thread.is_alive() and builds[0].articles == 2
    finally:
        stop.set()
        thread.join(timeout=10)


class ShortModel(FakeEmbedder):
    """A broken model: one row too few for any call that holds a question about Quillfield."""

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        vectors = super().encode(texts, batch_size=batch_size, progress=progress)
        return vectors[:-1] if any("Quillfield" in t for t in texts) else vectors


def test_the_encoder_survives_a_model_answering_with_the_wrong_number_of_rows() -> None:
    async def scenario() -> np.ndarray:
        encoder = BatchingEncoder(ShortModel())
        try:
            with pytest.raises(ValueError):
                await asyncio.wait_for(encoder.encode("Where is Quillfield?"), timeout=5)
            return await asyncio.wait_for(encoder.encode("Where is Brackwater?"), timeout=5)
        finally:
            await encoder.close()

    assert asyncio.run(scenario()).shape == (64,)
