"""Question encoding for a server: micro-batched, off the event loop, with a cache.

Encoding the question is nearly all of a request's cost. Requests that arrive while the model is
busy wait in a queue and are encoded together in the next call, so 32 concurrent clients cost a
few batched calls rather than 32 single ones, and a lone client waits for nothing but its own
encode. A call takes the largest power of two of the waiting questions, the earliest first; the
rest join the next call (at 32 clients: encoder CPU 2.10 -> 1.82 ms a question, as the model
then runs as few batches as possible, each of a shape it has run before). Repeated questions
are served from an LRU cache of their vectors. When a batch fails, each of its questions is
encoded alone: one text the model refuses fails only the requests that asked it.

Threads without an event loop (Slack's listeners) use `encode_blocking`, which queues the question
on the encoder's loop, so they share the batches and the cache with HTTP's requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

import numpy as np

from bot.answer.reading import Offsets, SpanReader
from bot.models.encoder import Embedder

Pairs = list[tuple[str, str]]
Result = TypeVar("Result")
Job = TypeVar("Job")  # what one request asks of a model: a question to encode, or its pairs to read
Waiter = asyncio.Future[np.ndarray]


class PairScorer(Protocol):
    """A reader that scores (question, text) pairs of several questions in one call."""

    def score_pairs(self, pairs: Pairs) -> np.ndarray: ...


MAX_BATCH = 64
# Pairs read in one call at most (the reader of ~10 questions at a time); more wait for the next.
MAX_READ_PAIRS = 256
CACHE_SIZE = 2048
BLOCKING_TIMEOUT = 120.0  # seconds a thread waits for its vector before giving up


class BatchingEncoder:
    """Encode questions in batches on one worker thread; `await encode(q)` from any request."""

    def __init__(
        self,
        embedder: Embedder,
        max_batch: int = MAX_BATCH,
        cache_size: int = CACHE_SIZE,
        loop: asyncio.AbstractEventLoop | None = None,
        reader: PairScorer | None = None,
    ) -> None:
        self.embedder = embedder
        self.reader = reader
        self._reads: asyncio.Queue[tuple[Pairs, asyncio.Future[np.ndarray]]] | None = None
        self._reading: asyncio.Task[None] | None = None
        self.read_sizes: list[int] = []  # pairs of every reader call, for metrics and tests
        self.max_batch = max_batch
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[np.ndarray]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode")
        self.batch_sizes: list[int] = []  # every encode call's size, for metrics and tests
        self.cache_hits = 0
        self._loop = loop  # the loop the queue lives on: the server's, else the first caller's
        self._loop_lock = threading.Lock()
        self._own_loop: asyncio.AbstractEventLoop | None = None  # started for threads when no server runs

    async def encode(self, question: str) -> np.ndarray:
        """The question's vector, from the cache or the next batch."""
        home = self._home(asyncio.get_running_loop())
        if home is not None:  # another loop's caller joins the queue's loop
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.encode(question), home))
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

    def _home(self, running: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop | None:
        """None when `running` is the loop the queues live on (it becomes so when there is none
        yet); else that loop, for the caller to hop to."""
        with self._loop_lock:
            if self._loop is None or self._loop.is_closed():
                self._loop = running
            return None if self._loop is running else self._loop

    async def _run(self, queue: asyncio.Queue[tuple[str, asyncio.Future[np.ndarray]]]) -> None:
        loop = asyncio.get_running_loop()
        waiting: list[tuple[str, asyncio.Future[np.ndarray]]] = []  # queued, not yet in a batch
        while True:
            if not waiting:
                waiting.append(await queue.get())
            # Everything that queued up while the previous batch was encoding is a candidate.
            while len(waiting) < self.max_batch and not queue.empty():
                waiting.append(queue.get_nowait())
            waiting = [item for item in waiting if not item[1].done()]  # requests gone meanwhile
            if not waiting:
                continue
            texts = list(dict.fromkeys(text for text, _ in waiting))
            # A power of two of them, first come first: the encoder runs each batch size as
            # power-of-two batches anyway (bot.models.runtimes.batch_sizes), and the ones left
            # over join the next batch rather than running now as small, dear batches.
            texts = texts[: 1 << (min(len(texts), self.max_batch).bit_length() - 1)]
            chosen = set(texts)
            batch = [item for item in waiting if item[0] in chosen]
            waiting = [item for item in waiting if item[0] not in chosen]
            self.batch_sizes.append(len(texts))
            try:
                vectors = await loop.run_in_executor(self._executor, self._encode, texts)
                # Inside the try: a model answering with the wrong number of rows must fail this
                # batch's waiters, not end the worker with them waiting forever.
                by_text = dict(zip(texts, vectors, strict=True))
            except Exception:
                # One question may be what failed (a text the tokenizer refuses): each is encoded
                # alone, and only a failing one's waiters get its error; the loop lives on.
                waiters = [(text, [f for t, f in batch if t == text]) for text in texts]
                await self._one_by_one(self._encode_one, waiters)
                continue
            for text, vector in by_text.items():
                self._remember(text, vector)
            for text, future in batch:
                if not future.done():  # the request may have been cancelled meanwhile
                    future.set_result(by_text[text])

    async def _one_by_one(self, run: Callable[[Job], np.ndarray], jobs: list[tuple[Job, list[Waiter]]]) -> None:
        """After a call over several jobs failed: `run` each job alone on the model's thread, its
        result or its own error to its waiters, so one bad input fails only its own requests."""
        loop = asyncio.get_running_loop()
        for job, waiters in jobs:
            if all(w.done() for w in waiters):  # the requests are gone: nothing to redo
                continue
            try:
                result = await loop.run_in_executor(self._executor, run, job)
            except Exception as exc:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(result)

    async def read(self, question: str, texts: list[str]) -> np.ndarray:
        """The reader's logits of `texts` for `question`, read with the other waiting questions'
        pairs in one call, on the encoder's thread (the model threads never run two at once)."""
        running = asyncio.get_running_loop()
        home = self._home(running)
        if home is not None:
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.read(question, texts), home))
        if not texts:
            return np.zeros(0, dtype=np.float32)
        if self._reads is None:
            self._reads = asyncio.Queue()
        if self._reading is None or self._reading.done():
            self._reading = running.create_task(self._read_run(self._reads))
        future: asyncio.Future[np.ndarray] = running.create_future()
        self._reads.put_nowait(([(question, t) for t in texts], future))
        return await future

    async def _read_run(self, queue: asyncio.Queue[tuple[Pairs, asyncio.Future[np.ndarray]]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await queue.get()]
            size = len(jobs[0][0])
            while not queue.empty() and size < MAX_READ_PAIRS:
                waiting = queue.get_nowait()
                jobs.append(waiting)
                size += len(waiting[0])
            jobs = [job for job in jobs if not job[1].done()]
            if not jobs:
                continue
            pairs = [pair for job, _ in jobs for pair in job]
            self.read_sizes.append(len(pairs))
            try:
                logits = await loop.run_in_executor(self._executor, self._score, pairs)
                if len(logits) != len(pairs):
                    raise ValueError(f"the reader scored {len(logits)} pairs of {len(pairs)}")
            except Exception:
                # One question's pairs may be what failed: each is read alone, and only a failing
                # one gets the error.
                await self._one_by_one(self._score, [(job, [future]) for job, future in jobs])
                continue
            start = 0
            for job, future in jobs:
                if not future.done():
                    future.set_result(logits[start : start + len(job)])
                start += len(job)

    def _score(self, pairs: Pairs) -> np.ndarray:
        assert self.reader is not None
        return np.asarray(self.reader.score_pairs(pairs), dtype=np.float32).reshape(-1)

    def on_model_thread(self, run: Callable[[], Result], timeout: float = BLOCKING_TIMEOUT) -> Result:
        """`run()` on the models' thread (so model threads never run two at once), waited for."""
        return self._executor.submit(run).result(timeout)

    def read_blocking(self, question: str, texts: list[str], timeout: float = BLOCKING_TIMEOUT) -> np.ndarray:
        """`read` for a thread without an event loop (answering runs in worker threads)."""
        return asyncio.run_coroutine_threadsafe(self.read(question, texts), self._thread_loop()).result(timeout)

    def _thread_loop(self) -> asyncio.AbstractEventLoop:
        """The encoder's event loop; one of its own, in a thread, when no server's loop runs it."""
        with self._loop_lock:
            if self._loop is None or self._loop.is_closed():
                self._loop = self._own_loop = asyncio.new_event_loop()
                threading.Thread(
                    target=_run_until_stopped, args=(self._own_loop,), name="encode-loop", daemon=True
                ).start()
            return self._loop

    def encode_blocking(self, question: str, timeout: float = BLOCKING_TIMEOUT) -> np.ndarray:
        """`encode` for a thread without an event loop: queued on the encoder's loop, waited for."""
        return asyncio.run_coroutine_threadsafe(self.encode(question), self._thread_loop()).result(timeout)

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self.embedder.encode(texts, batch_size=max(len(texts), 1))

    def _encode_one(self, text: str) -> np.ndarray:
        vectors = self._encode([text])
        if len(vectors) != 1:
            raise ValueError(f"the encoder gave {len(vectors)} vectors for one question")
        vector: np.ndarray = vectors[0]
        return vector  # not cached: this runs on the model's thread, the cache is the loop's

    def _remember(self, text: str, vector: np.ndarray) -> None:
        self._cache[text] = vector
        self._cache.move_to_end(text)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def close(self) -> None:
        """Stop the batching task (on whichever loop it runs) and the encoding thread."""
        loop = self._loop
        if loop is not None and loop.is_running() and loop is not asyncio.get_running_loop():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._close_here(), loop))
        else:
            await self._close_here()
        if self._own_loop is not None and self._own_loop.is_running():
            self._own_loop.call_soon_threadsafe(self._own_loop.stop)

    async def _close_here(self) -> None:
        for task in (self._worker, self._reading):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._executor.shutdown(wait=False, cancel_futures=True)


def _run_until_stopped(loop: asyncio.AbstractEventLoop) -> None:
    try:
        loop.run_forever()
    finally:
        loop.close()


class BatchedReader:
    """The Reader answering takes (`bot.answer.reading`), reading through a server's batches."""

    def __init__(self, encoder: BatchingEncoder) -> None:
        self.encoder = encoder

    def score(self, question: str, texts: list[str]) -> np.ndarray:
        return self.encoder.read_blocking(question, texts)

    def answer_spans(self, question: str, texts: list[str]) -> list[Offsets | None] | None:
        """The reader's span head on the models' thread (a call for the one or two quotes an answer marks)."""
        reader = self.encoder.reader
        if not isinstance(reader, SpanReader):
            return None
        return self.encoder.on_model_thread(lambda: reader.answer_spans(question, texts))
