"""The service core under every edge: the model, the live index, the metrics and the two paths
that change what a server holds.

    ask:     index or UnavailableError → answer → count
    change:  accept into the corpus → rebuild if the index is stale → switch the live index

The HTTP app, the Slack app (over HTTP or Socket Mode) and the CLI's `bot ingest` all go through
here; they only translate what comes back (or the BotError raised) for their audience.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from bot.answer.answering import answer_with_vector, validate_question
from bot.answer.batching import BatchingEncoder
from bot.answer.claims import answer_message
from bot.answer.conversation import Turn, answer_in_conversation
from bot.articles.ingest import CorpusWriter, IngestReport, Outcome, read_sources
from bot.articles.sources import Draft, Rejection
from bot.errors import BotError, IngestError, UnavailableError
from bot.indexing.build import BuildReport, build_index, is_current
from bot.indexing.dense import APPROXIMATE_ABOVE
from bot.indexing.live import LiveIndex
from bot.indexing.versions import Index
from bot.models.encoder import Embedder
from bot.observability import Metrics
from bot.quality.gaps import DeclinedLog
from bot.records import Answer
from bot.settings import milvus_target

if TYPE_CHECKING:
    from bot.indexing.milvus_store import MilvusTarget
    from bot.settings import Settings

log = logging.getLogger("bot.api")
LOADING = "The model and index are loading; retry in a few seconds."


def accept_then_build(
    writer: CorpusWriter,
    items: list[Draft | Rejection],
    index_dir: Path,
    embedder: Embedder,
    *,
    progress: bool = False,
    approximate_above: int = APPROXIMATE_ABOVE,
    milvus: MilvusTarget | None = None,
) -> tuple[IngestReport, BuildReport | None]:
    """Write the items into the corpus, then rebuild the index when it no longer matches the corpus
    (also when an earlier run stopped between the two)."""
    report = writer.accept(items)
    build = None
    if report.changed or (writer.articles() and not is_current(writer.corpus_dir, index_dir, embedder.name, milvus)):
        build = build_index(
            writer.corpus_dir,
            index_dir,
            embedder,
            progress=progress,
            approximate_above=approximate_above,
            milvus=milvus,
        )
    return report, build


def ingest(
    sources: list[str],
    feeds: list[str],
    corpus_dir: Path,
    index_dir: Path,
    embedder: Embedder,
    *,
    allow_private: bool = False,
    progress: bool = False,
    approximate_above: int = APPROXIMATE_ABOVE,
    milvus: MilvusTarget | None = None,
) -> tuple[IngestReport, BuildReport | None]:
    """`bot ingest`: read the sources into the corpus, then bring the index up to date."""
    writer = CorpusWriter(corpus_dir, index_dir / ".ingest.lock")
    items = read_sources(sources, feeds, allow_private, writer.known_urls())
    return accept_then_build(
        writer, items, index_dir, embedder, progress=progress, approximate_above=approximate_above, milvus=milvus
    )


@dataclass(frozen=True)
class Filters:
    """Which articles a question is asked of, and how much newer ones are preferred."""

    since: str | None = None  # ISO day, inclusive
    until: str | None = None  # ISO day, inclusive
    recent: float | None = None  # half-life in days of the recency boost
    asked_on: str | None = None  # ISO day the question was asked: articles dated near it are preferred


NO_FILTERS = Filters()


class AnswerOptions(TypedDict):
    """What `answer_with_vector` and `answer_in_conversation` take from Filters and the settings."""

    since: str | None
    until: str | None
    recency_half_life_days: float | None
    asked_on: str | None
    threshold: float


class Service:
    """What a running bot holds: settings, model, live index, question encoder, metrics."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None, *, index: Index | None = None) -> None:
        """`index`: answer from this one version (the CLI) instead of following the index folder."""
        self.settings = settings
        self.embedder = embedder
        self.fixed = index
        self.live: LiveIndex | None = None
        self.encoder: BatchingEncoder | None = None
        self.load_error: str | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the server's, where questions are batched
        self.loaded = threading.Event()  # set when loading ended, loaded or not
        self.wait_for_load = 0.0  # seconds a question waits for a loading model (several workers)
        self.metrics = Metrics(self)
        self.declined = DeclinedLog(settings.data_dir)
        self._writer: CorpusWriter | None = None
        self._making_writer = threading.Lock()  # requests run in worker threads: one writer for all

    def load(self) -> None:
        """Load the model and the index (runs in a thread at start-up); a failure is kept in `error`."""
        try:
            if self.embedder is None:
                from bot.models.encoder import open_embedder

                # A missing export is made by a child process: this one never imports torch.
                settings = self.settings
                self.embedder = open_embedder(settings.model, settings.encoder, settings.index_dir, export="child")
            if self.encoder is None:
                self.encoder = BatchingEncoder(self.embedder, loop=self.loop)
            live = LiveIndex(self.settings.index_dir, self.embedder.name, milvus_target(self.settings))
            live.refresh()
            live.watch()
            self.live = live
        except BotError as exc:
            self.load_error = str(exc)
            log.error("cannot load: %s", exc)
        except Exception as exc:  # a thread that dies silently would leave /readyz "loading" forever
            self.load_error = f"The model or index failed to load: {type(exc).__name__}: {exc}"
            log.exception("cannot load")
        finally:
            self.loaded.set()

    @property
    def error(self) -> str:
        """Why there is no index to answer from ("" when there is one)."""
        if self.load_error:
            return self.load_error
        if self.live is None:
            return LOADING
        return self.live.error or ""

    def current(self) -> Index | None:
        """The served index, or None while there is none."""
        if self.fixed is not None:
            return self.fixed
        return self.live.current() if self.live is not None else None

    def index(self) -> Index:
        """The served index with its model, or UnavailableError saying why not."""
        index = self.current()
        if index is None or self.embedder is None:
            raise UnavailableError(self.error or LOADING)
        return index

    def _prepare(self, question: str, k: int) -> tuple[str, Index, Embedder]:
        question = validate_question(question, k, self.settings.max_question_chars)
        index = self.index()
        assert self.embedder is not None  # index() checked it
        return question, index, self.embedder

    def _options(self, filters: Filters) -> AnswerOptions:
        """The keyword arguments both answering paths take from the filters and the settings."""
        return {
            "since": filters.since,
            "until": filters.until,
            "recency_half_life_days": filters.recent,
            "asked_on": filters.asked_on,
            "threshold": self.settings.threshold,
        }

    def _answer(
        self, index: Index, question: str, vector: np.ndarray, k: int, filters: Filters, started: float
    ) -> Answer:
        return answer_with_vector(index, question, vector, k, started=started, **self._options(filters))

    def _vector(self, embedder: Embedder, text: str) -> np.ndarray:
        """One question's vector from a thread: through the server's batches and vector cache when
        it runs, else encoded here (the CLI)."""
        encoder = self.encoder
        return encoder.encode_blocking(text) if encoder is not None else embedder.encode([text])[0]

    def _converse(
        self, index: Index, embedder: Embedder, question: str, history: Sequence[Turn], k: int, filters: Filters
    ) -> Answer:
        """A question after earlier ones: a follow-up may need two encodings, done here."""
        return answer_in_conversation(
            index,
            lambda text: self._vector(embedder, text),
            question,
            history,
            k,
            **self._options(filters),
        )

    def _counted(self, result: Answer, surface: str) -> Answer:
        """Count the answer; a declined one per surface, and HTTP's in the data folder (bot gaps)."""
        self.metrics.answers.labels(answered=str(result.answered).lower()).inc()
        if not result.answered:
            self.metrics.declined.labels(surface=surface).inc()
            if surface == "http":  # Slack's store keeps its own; no user or address is written
                self.declined.record(result)
        return result

    def answer(
        self,
        question: str,
        k: int = 3,
        filters: Filters = NO_FILTERS,
        history: Sequence[Turn] = (),
        surface: str = "cli",
    ) -> Answer:
        """Answer with the served index from a thread (Slack's listeners, the CLI), after the
        conversation's earlier questions (`history`, oldest first). A loaded service's questions
        join the batches and vector cache of `ask`; the CLI encodes here."""
        started = time.perf_counter()
        question, index, embedder = self._prepare(question, k)
        if history:
            return self._counted(self._converse(index, embedder, question, history, k, filters), surface)
        return self._counted(
            self._answer(index, question, self._vector(embedder, question), k, filters, started), surface
        )

    async def ask(
        self,
        question: str,
        k: int = 3,
        filters: Filters = NO_FILTERS,
        history: Sequence[Turn] = (),
        surface: str = "http",
    ) -> Answer:
        """Answer with the served index, questions encoded in micro-batches (the HTTP app); after
        earlier questions, through the conversation path (its encodings are not batched)."""
        if history:
            return await asyncio.to_thread(self.answer, question, k, filters, history, surface)
        started = time.perf_counter()
        if self.wait_for_load:
            deadline = time.monotonic() + self.wait_for_load
            while not self.loaded.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        question, index, embedder = self._prepare(question, k)
        if self.encoder is None:
            self.encoder = BatchingEncoder(embedder, loop=self.loop)
        vector = await self.encoder.encode(question)
        return await asyncio.to_thread(
            lambda: self._counted(self._answer(index, question, vector, k, filters, started), surface)
        )

    def about_message(self, text: str, k: int = 3, surface: str = "slack") -> Answer:
        """The quotes that bear best on what a message claims (Slack's message shortcut)."""
        index = self.index()
        embedder = self.embedder
        assert embedder is not None  # index() checked it
        result = answer_message(
            index,
            lambda claim: self._vector(embedder, claim),
            text,
            k,
            threshold=self.settings.threshold,
            max_chars=self.settings.max_question_chars,
        )
        return self._counted(result, surface)

    # -- changing the corpus while serving ----------------------------------------------------

    def writer(self) -> CorpusWriter:
        """Made on first use, so a read-only deployment (e.g. BOT_CORPUS_DIR=x.jsonl) still starts."""
        with self._making_writer:
            if self._writer is None:
                self._writer = CorpusWriter(self.settings.corpus_dir, self.settings.index_dir / ".ingest.lock")
            return self._writer

    def _switch(self, build: BuildReport | None) -> str:
        """Load the version `build` published (or the current one); its name."""
        live = self.live
        assert live is not None  # index() was checked first
        if build is not None:
            live.refresh()
        index = live.current()
        if index is None or (build is not None and index.version < build.version):
            raise UnavailableError(f"Written, but the new index is not loaded yet: {live.error or 'retry'}")
        return str(index.version)

    def add_article(self, draft: Draft) -> tuple[Outcome, str]:
        """Accept one article, rebuild if stale, serve the result; the outcome and the index version."""
        self.index()
        assert self.embedder is not None
        report, build = accept_then_build(
            self.writer(),
            [draft],
            self.settings.index_dir,
            self.embedder,
            approximate_above=self.settings.approximate_above,
            milvus=milvus_target(self.settings),
        )
        outcome = report.outcomes[0]
        if outcome.status == "rejected":
            raise IngestError(outcome.detail or "The article was rejected.")
        return outcome, self._switch(build)

    def remove_article(self, article_id: str) -> str:
        """Remove one article and serve an index without it; the index version."""
        self.index()
        assert self.embedder is not None
        # Checked and removed in one step under the writer's lock (NotFoundError, ConflictError):
        # checked here, concurrent deletes could each see another article left and empty the corpus.
        self.writer().delete(article_id, keep_one=True)
        build = build_index(
            self.settings.corpus_dir,
            self.settings.index_dir,
            self.embedder,
            approximate_above=self.settings.approximate_above,
            milvus=milvus_target(self.settings),
        )
        return self._switch(build)

    def passages_of(self, article_id: str) -> int:
        """How many passages of the article the served index has (0 for links and deletions)."""
        index = self.index()
        number = index.article_number.get(article_id)
        return 0 if number is None else int((index.passage_article == number).sum())

    async def close(self) -> None:
        """Stop following the index folder and the encoder."""
        if self.live is not None:
            self.live.close()
        if self.encoder is not None:
            await self.encoder.close()
