"""The service core under every edge: the model, the live index, the metrics and the two paths
that change what a server holds.

    ask:     index or UnavailableError → answer → count
    change:  accept into the corpus → rebuild if the index is stale → switch the live index
    feeds:   (BOT_POLL_FEEDS) poll the due feeds → the change path, once for all they bring

The HTTP app, the Slack app (over HTTP or Socket Mode) and the CLI's `bot ingest` all go through
here; they only translate what comes back (or the BotError raised) for their audience.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bot.answer.answering import answer_with_vector
from bot.answer.asking import Ask, checked
from bot.answer.batching import BatchedReader, BatchingEncoder
from bot.answer.claims import answer_message
from bot.answer.conversation import Turn, answer_in_conversation
from bot.answer.reading import Reader
from bot.articles.ingest import CorpusWriter, IngestReport, Outcome, read_sources
from bot.articles.pages import check_article_page
from bot.articles.sources import Draft, Rejection, draft_from_fields, read_url
from bot.errors import BotError, IngestError, NotWriterError, UnavailableError
from bot.feeds.polling import Poller
from bot.feeds.subscriptions import FeedStore
from bot.indexing.building import BuildReport
from bot.indexing.index import Index
from bot.indexing.live import LiveIndex
from bot.indexing.stores import Store
from bot.models.encoder import Embedder, open_embedder
from bot.models.reader import ReaderModel, open_reader
from bot.observability import Metrics
from bot.quality.gaps import DeclinedLog
from bot.records import Answer
from bot.settings import Settings, feed_store, store_of

log = logging.getLogger("bot.service")
LOADING = "The model and index are loading; retry in a few seconds."
NOT_WRITER = (
    "This server does not change articles: set BOT_API_KEY on it to enable that "
    "(one server per index folder should: see the README's Scaling)."
)


@dataclass(frozen=True)
class Change:
    """What adding an article did, once it is searchable: `status` is an ingest status (added,
    updated, linked, duplicate); title, date and url are the served article's (a duplicate's:
    the article it repeats), else the page's."""

    id: str
    status: str
    passages: int
    index_version: str
    title: str
    date: str | None = None
    url: str | None = None
    detail: str | None = None


def accept_then_build(
    writer: CorpusWriter, items: list[Draft | Rejection], store: Store, embedder: Embedder, *, progress: bool = False
) -> tuple[IngestReport, BuildReport | None]:
    """Write the items into the corpus, then rebuild the index when it no longer matches the corpus
    (also when an earlier run stopped between the two)."""
    report = writer.accept(items)
    build = None
    if report.changed or (writer.articles() and not store.is_current(writer.corpus_dir, embedder.name)):
        build = store.build(writer.corpus_dir, embedder, progress=progress)
    return report, build


def ingest(
    sources: list[str],
    feeds: list[str],
    corpus_dir: Path,
    store: Store,
    embedder: Embedder,
    *,
    allow_private: bool = False,
    progress: bool = False,
) -> tuple[IngestReport, BuildReport | None]:
    """`bot ingest`: read the sources into the corpus, then bring the index up to date."""
    writer = CorpusWriter(corpus_dir, store.index_dir / ".ingest.lock")
    items = read_sources(sources, feeds, allow_private, writer.known_urls())
    return accept_then_build(writer, items, store, embedder, progress=progress)


class Service:
    """What a running bot holds: settings, model, live index, question encoder, metrics."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None = None,
        *,
        index: Index | None = None,
        reader: ReaderModel | None = None,
    ) -> None:
        """`index`: answer from this one version (the CLI) instead of following the index folder;
        `embedder` and `reader`: the models to answer with (else loaded from the settings: the
        encoder, and the shipped reader when BOT_READER is on)."""
        self.settings = settings
        self.reader_model = reader
        self.store = store_of(settings)
        self.embedder = embedder
        self.fixed = index
        self.live: LiveIndex | None = None
        self.encoder: BatchingEncoder | None = None
        self.load_error: str | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the server's, where questions are batched
        self.loaded = threading.Event()  # set when loading ended, loaded or not
        self.wait_for_load = 0.0  # seconds a question waits for a loading model (several workers)
        self.feeds = FeedStore(settings.data_dir)
        self.metrics = Metrics(
            self.current,
            lambda: self.encoder.batch_sizes if self.encoder else [],
            lambda: self.encoder.read_sizes if self.encoder else [],
            self.feeds.feeds,
        )
        self.declined = DeclinedLog(settings.data_dir)
        self._writer: CorpusWriter | None = None
        self._making_writer = threading.Lock()  # requests run in worker threads: one writer for all

    def load(self) -> None:
        """Load the model and the index (runs in a thread at start-up); a failure is kept in `error`."""
        try:
            if self.embedder is None:
                # The models the settings name; a missing export is made by a child process: this
                # one never imports torch. (A caller that hands in its embedder hands in its reader.)
                settings = self.settings
                self.embedder = open_embedder(settings.model, settings.encoder, settings.index_dir, export="child")
                if self.reader_model is None and settings.reader == "on":
                    self.reader_model = open_reader(settings.encoder, settings.index_dir, export="child")
            if self.encoder is None:
                self.encoder = BatchingEncoder(self.embedder, loop=self.loop, reader=self.reader_model)
            live = LiveIndex(self.store, self.embedder.name)
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
    def reader(self) -> Reader | None:
        """What answering rescores with: the reader through the server's batches, or called here."""
        if self.reader_model is None:
            return None
        if self.encoder is not None and self.encoder.reader is self.reader_model:
            return BatchedReader(self.encoder)
        return self.reader_model

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

    def _prepared(self, ask: Ask) -> tuple[Ask, Index, Embedder]:
        """The ask checked, with this deployment's threshold; the served index and its model."""
        ask = replace(checked(ask, self.settings.max_question_chars), threshold=self.settings.threshold)
        index = self.index()
        assert self.embedder is not None  # index() checked it
        return ask, index, self.embedder

    def _answered(
        self,
        index: Index,
        embedder: Embedder,
        ask: Ask,
        history: Sequence[Turn],
        vector: np.ndarray | None,
        started: float,
    ) -> Answer:
        """The one answering path: a question with its vector, or after earlier ones (a follow-up
        may need two encodings, done here)."""
        if history:
            encode = partial(self._vector, embedder)
            return answer_in_conversation(index, encode, ask, history, reader=self.reader, started=started)
        assert vector is not None
        return answer_with_vector(index, ask, vector, reader=self.reader, started=started)

    def _vector(self, embedder: Embedder, text: str) -> np.ndarray:
        """One question's vector from a thread: through the server's batches and vector cache when
        it runs, else encoded here (the CLI)."""
        encoder = self.encoder
        return encoder.encode_blocking(text) if encoder is not None else embedder.encode([text])[0]

    def _counted(self, result: Answer, surface: str) -> Answer:
        """Count the answer; a declined one per surface, and HTTP's in the data folder (bot gaps)."""
        self.metrics.answers.labels(answered=str(result.answered).lower()).inc()
        if not result.answered:
            self.metrics.declined.labels(surface=surface).inc()
            if surface == "http":  # Slack's store keeps its own; no user or address is written
                self.declined.record(result)
        return result

    def answer(self, ask: Ask, history: Sequence[Turn] = (), surface: str = "cli") -> Answer:
        """Answer with the served index from a thread (Slack's listeners, the CLI), after the
        conversation's earlier questions (`history`, oldest first). A loaded service's questions
        join the batches and vector cache of `ask`; the CLI encodes here."""
        started = time.perf_counter()
        ask, index, embedder = self._prepared(ask)
        vector = None if history else self._vector(embedder, ask.question)
        return self._counted(self._answered(index, embedder, ask, history, vector, started), surface)

    async def ask(self, ask: Ask, history: Sequence[Turn] = (), surface: str = "http") -> Answer:
        """Answer with the served index, questions encoded in micro-batches (the HTTP app); after
        earlier questions, through the conversation path (its encodings are not batched)."""
        if history:
            return await asyncio.to_thread(self.answer, ask, history, surface)
        started = time.perf_counter()
        if self.wait_for_load:
            deadline = time.monotonic() + self.wait_for_load
            while not self.loaded.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        ask, index, embedder = self._prepared(ask)
        if self.encoder is None:
            self.encoder = BatchingEncoder(embedder, loop=self.loop, reader=self.reader_model)
        vector = await self.encoder.encode(ask.question)
        return await asyncio.to_thread(
            lambda: self._counted(self._answered(index, embedder, ask, (), vector, started), surface)
        )

    def about_message(self, text: str, k: int = 3, surface: str = "slack") -> Answer:
        """The quotes that bear best on what a message claims (Slack's message shortcut)."""
        index = self.index()
        embedder = self.embedder
        assert embedder is not None  # index() checked it
        ask = Ask(text, k, threshold=self.settings.threshold)
        encode = partial(self._vector, embedder)
        result = answer_message(index, encode, ask, max_chars=self.settings.max_question_chars, reader=self.reader)
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

    def check_writer(self) -> None:
        """NotWriterError unless this server changes articles: the one with BOT_API_KEY, which
        `POST /articles` needs too, is the single writer of its index folder (README, Scaling)."""
        if self.settings.api_key is None or not self.settings.api_key.get_secret_value():
            raise NotWriterError(NOT_WRITER)

    def add(self, fields: dict[str, Any], origin: str) -> Change:
        """`POST /articles` and Slack's links: an article from its fields (title, text, date, url,
        source, author), or, when only `url` is given, from its page, fetched; once searchable."""
        self.check_writer()
        self.index()
        draft: Draft
        url = fields.get("url")
        if url and fields.get("title") is None and fields.get("text") is None:
            draft = check_article_page(read_url(str(url), self.settings.allow_private_urls))
        else:
            draft = draft_from_fields(fields, origin)
        outcome, version = self.add_article(draft)
        assert outcome.id is not None  # every status but "rejected" (raised) names its article
        index = self.index()
        number = index.article_number.get(outcome.id)
        served = index.articles[number] if number is not None else None
        return Change(
            id=outcome.id,
            status=outcome.status,
            passages=self.passages_of(outcome.id),
            index_version=version,
            title=served.title if served else draft.title,
            date=served.date if served else draft.date,
            url=served.url if served else draft.url,
            detail=outcome.detail,
        )

    def add_article(self, draft: Draft) -> tuple[Outcome, str]:
        """Accept one article, rebuild if stale, serve the result; the outcome and the index version."""
        self.index()
        assert self.embedder is not None
        report, build = accept_then_build(self.writer(), [draft], self.store, self.embedder)
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
        build = self.store.build(self.settings.corpus_dir, self.embedder)
        return self._switch(build)

    def poll_feeds(self, stop: threading.Event) -> None:
        """Poll the subscribed feeds until `stop` (BOT_POLL_FEEDS), once the model and index are in:
        what is new goes the way of POST /articles, then this process serves it at once. Another
        process polling the same index folder is left to it (see `Poller.run`)."""
        while not self.loaded.wait(0.5):
            if stop.is_set():
                return
        if self.live is None or self.embedder is None:
            log.error("feeds not polled: %s", self.error or LOADING)
            return
        settings = self.settings
        poller = Poller(
            feed_store(settings),
            self._take,
            lambda: self.writer().known_urls(),
            settings.index_dir,
            allow_private=settings.allow_private_urls,
            first_poll=settings.feed_first_poll,
        )
        poller.run(stop)

    def _take(self, items: list[Draft | Rejection]) -> IngestReport:
        assert self.embedder is not None
        report, build = accept_then_build(self.writer(), items, self.store, self.embedder)
        if build is not None and self.live is not None:
            self.live.refresh()
        return report

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
