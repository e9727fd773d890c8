"""Question encoding for a server: micro-batched, off the event loop, with a cache.

Encoding the question is nearly all of a request's cost. Requests that arrive while the model is
busy wait in a queue and are encoded together in the next call, so 32 concurrent clients cost a
few batched calls rather than 32 single ones, and a lone client waits for nothing but its own
encode. Repeated questions are served from an LRU cache of their vectors.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bot.indexing.embedding import Embedder

MAX_BATCH = 64
CACHE_SIZE = 2048


class BatchingEncoder:
    """Encode questions in batches on one worker thread; `await encode(q)` from any request."""

    def __init__(self, embedder: Embedder, max_batch: int = MAX_BATCH, cache_size: int = CACHE_SIZE) -> None:
        self.embedder = embedder
        self.max_batch = max_batch
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[np.ndarray]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode")
        self.batch_sizes: list[int] = []  # every encode call's size, for metrics and tests
        self.cache_hits = 0

    async def encode(self, question: str) -> np.ndarray:
        """The question's vector, from the cache or the next batch."""
        cached = self._cache.get(question)
        if cached is not None:
            self._cache.move_to_end(question)
            self.cache_hits += 1
            return cached
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run(self._queue))
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((question, future))
        return await future

    async def _run(self, queue: asyncio.Queue[tuple[str, asyncio.Future[np.ndarray]]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            # Everything that queued up while the previous batch was encoding goes in this one.
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            texts = list(dict.fromkeys(text for text, _ in batch))
            self.batch_sizes.append(len(texts))
            try:
                vectors = await loop.run_in_executor(self._executor, self._encode, texts)
                # Inside the try: a model answering with the wrong number of rows must fail this
                # batch's waiters, not end the worker with them waiting forever.
                by_text = dict(zip(texts, vectors, strict=True))
            except Exception as exc:  # the model failed: every waiter gets the error, the loop lives
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for text, vector in by_text.items():
                self._remember(text, vector)
            for text, future in batch:
                if not future.done():  # the request may have been cancelled meanwhile
                    future.set_result(by_text[text])

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self.embedder.encode(texts, batch_size=max(len(texts), 1))

    def _remember(self, text: str, vector: np.ndarray) -> None:
        self._cache[text] = vector
        self._cache.move_to_end(text)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._executor.shutdown(wait=False, cancel_futures=True)
