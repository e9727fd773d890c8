"""What a running service tells its operators: Prometheus metrics and log lines (text or JSON).

Shared by both edges that run as a service: the HTTP app and `bot slack` (Socket Mode).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.errors import BotError
from bot.feeds.subscriptions import Subscription
from bot.indexing.index import Index

log = logging.getLogger(__name__)


class Metrics:
    """The service's Prometheus registry (one per app, so tests can build many apps), reading the
    served index (`index()`, None while none is loaded), the encoder's batch sizes and the reader's
    at scrape time."""

    def __init__(
        self,
        index: Callable[[], Index | None],
        batch_sizes: Callable[[], list[int]],
        read_sizes: Callable[[], list[int]] = list,
        feeds: Callable[[], list[Subscription]] = list,
    ) -> None:
        self.index = index
        self.registry = CollectorRegistry()
        self.registry.register(FeedCollector(feeds))
        self.requests = Counter(
            "bot_http_requests_total",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "bot_http_request_duration_seconds",
            "HTTP request latency by route and status.",
            ["route", "status"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.answers = Counter(
            "bot_answers_total",
            "Answers given, by whether the articles answered.",
            ["answered"],
            registry=self.registry,
        )
        self.declined = Counter(
            "bot_declined_answers_total",
            "Questions the articles did not answer (the bot declined), by surface.",
            ["surface"],
            registry=self.registry,
        )
        self.feedback = Counter(
            "bot_feedback_total", "Feedback votes on answers.", ["vote", "channel"], registry=self.registry
        )
        Gauge("bot_index_articles", "Articles in the served index.", registry=self.registry).set_function(
            lambda: self._index_value(lambda i: len(i.articles))
        )
        Gauge("bot_index_passages", "Passages in the served index.", registry=self.registry).set_function(
            lambda: self._index_value(len)
        )
        Gauge(
            "bot_index_age_seconds", "Seconds since the served index was built.", registry=self.registry
        ).set_function(
            lambda: self._index_value(
                lambda i: time.time() - datetime.fromisoformat(i.manifest["built_at"]).timestamp()
            )
        )
        Gauge("bot_encode_batches", "Question-encoding calls made.", registry=self.registry).set_function(
            lambda: len(batch_sizes())
        )
        Gauge("bot_encode_questions", "Questions encoded (cache misses).", registry=self.registry).set_function(
            lambda: sum(batch_sizes())
        )
        Gauge(
            "bot_reader_calls", "Reader calls made (pairs of waiting questions together).", registry=self.registry
        ).set_function(lambda: len(read_sizes()))
        Gauge("bot_reader_pairs", "(question, sentence) pairs the reader scored.", registry=self.registry).set_function(
            lambda: sum(read_sizes())
        )

    def _index_value(self, read: Callable[[Index], float]) -> float:
        index = self.index()
        return float(read(index)) if index is not None else float("nan")

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class FeedCollector(Collector):
    """Each feed's polls, read at scrape time from the feed store in the data folder: any process
    shows them, whichever one polls. Labelled by the feed's URL (without credentials)."""

    COUNTERS = (
        ("bot_feed_polls", "Polls of the feed.", "polls"),
        ("bot_feed_not_modified", "Polls the feed answered 304 Not Modified.", "not_modified"),
        ("bot_feed_new_articles", "Articles added from the feed.", "new_articles"),
        ("bot_feed_failures", "Polls of the feed that failed.", "failed_polls"),
    )
    GAUGES = (
        ("bot_feed_consecutive_failures", "Failed polls of the feed since its last good one.", "failures"),
        ("bot_feed_last_poll_timestamp_seconds", "When the feed was last polled (Unix time).", "last_poll"),
        ("bot_feed_next_poll_timestamp_seconds", "When the feed is polled next (Unix time).", "next_poll"),
    )

    def __init__(self, feeds: Callable[[], list[Subscription]]) -> None:
        self.feeds = feeds

    def collect(self) -> Iterator[Metric]:
        try:
            feeds = self.feeds()
        except BotError as exc:  # an unreadable store costs the feed metrics, not the scrape
            log.warning("feed metrics left out: %s", exc)
            return
        families: list[CounterMetricFamily | GaugeMetricFamily] = []
        for name, text, attribute in self.COUNTERS:
            counter = CounterMetricFamily(name, text, labels=["feed"])
            for feed in feeds:
                counter.add_metric([feed.label], float(getattr(feed, attribute)))
            families.append(counter)
        for name, text, attribute in self.GAUGES:
            gauge = GaugeMetricFamily(name, text, labels=["feed"])
            for feed in feeds:
                value = getattr(feed, attribute)
                gauge.add_metric([feed.label], float("nan") if value is None else float(value))
            families.append(gauge)
        yield from families


# -- log lines that cannot leak a secret or forge a line, whichever library wrote them ----------
#
# `SafeRecords` sits on the root handler(s) (see `configure_logging`), so it sees every
# logger's records: the bot's, uvicorn's, and those slack_bolt and slack_sdk write under their own
# names (bolt logs a request's whole body when its signature fails). It
#
# - blanks Slack tokens (xoxb-, xoxp-, xapp-, ...), the secrets the process registered with
#   `add_secret` (bot token, signing secret, app token), `token=` and `"token": ...` fields (Slack's
#   legacy verification token), `response_url`s and hooks.slack.com URLs (each is a credential to
#   post into a conversation), `Bearer` credentials and passwords inside URLs;
# - escapes line breaks and other control characters, so text from a request (an unsigned body
#   with a newline, say) cannot start a line of its own that looks like the server's.
#
# Tracebacks (exc_info) are formatted by the handler's formatter, after this filter, and keep
# their lines.
_PATTERNS = [
    # Slack tokens: bot (xoxb-), user (xoxp-), app-level (xapp-), and the other xox? kinds.
    (re.compile(r"\b(?:xox[a-z]|xapp)-[A-Za-z0-9-]+"), "(redacted token)"),
    (re.compile(r"(?i)\b(token|response_url)(=|%3D)[^&\s'\"]*"), r"\1\2(redacted)"),
    (re.compile(r"""(?i)(["'](?:token|response_url)["']\s*:\s*)(["'])(?:\\.|(?!\2).)*\2"""), r"\1\2(redacted)\2"),
    (re.compile(r"(?i)https?(?::|%3A)(?:/|%2F){2}hooks\.slack\.com[^\s'\"&]*"), "(redacted url)"),
    (re.compile(r"(?i)\b(bearer\s+)(?!\(redacted)[^\s'\",}]+"), r"\1(redacted)"),
    # Credentials inside a URL (http://user:password@host/), e.g. in a fetch error.
    (re.compile(r"(?i)\b(https?://)[^/@\s:]+:[^/@\s]+@"), r"\1(redacted)@"),
]
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]")


def clean(message: str, secrets: frozenset[str] = frozenset()) -> str:
    """`message` with secrets blanked and control characters escaped (one line, nothing to hide)."""
    for secret in secrets:
        message = message.replace(secret, "(redacted)")
    for pattern, replacement in _PATTERNS:
        message = pattern.sub(replacement, message)
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), message)


class SafeRecords(logging.Filter):
    """Rewrite each record's message with `clean` (a filter on a handler sees every logger's records)."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def add_secret(self, *secrets: str | None) -> None:
        with self._lock:
            self._secrets = self._secrets | {s for s in secrets if s and len(s) >= 8}

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: show both, safely
            message = f"{record.msg!r} % {record.args!r}"
        safe = clean(message, self._secrets)
        if safe != message or record.args:
            record.msg, record.args = safe, None
        return True


# One for the process: the Slack app registers its secrets here, configure_logging installs it.
safe_records = SafeRecords()


ACCEPT_FAILED = "socket.accept() out of system resource"  # asyncio's words, out of file descriptors
ACCEPT_LOG_SECONDS = 60.0


class Throttle(logging.Filter):
    """Let one record starting with `prefix` through every `interval` seconds; the next one says how
    many were dropped. asyncio's accept loop, out of file descriptors, logs a traceback per pending
    connection at each retry: 393,217 of them (178 MB) in ~30 s under a connection flood."""

    def __init__(self, prefix: str, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.prefix, self.interval, self.clock = prefix, interval, clock
        self.dropped = 0
        self._next = float("-inf")
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not (isinstance(record.msg, str) and record.msg.startswith(self.prefix)):
            return True
        with self._lock:
            now = self.clock()
            if now < self._next:
                self.dropped += 1
                return False
            self._next = now + self.interval
            dropped, self.dropped = self.dropped, 0
        if dropped:
            record.msg = f"{record.msg} ({dropped} more like it in the last {self.interval:g} s were not logged)"
        return True


accept_errors = Throttle(ACCEPT_FAILED, ACCEPT_LOG_SECONDS)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        try:
            decoded = json.loads(message) if record.name == "bot.access" else None
        except ValueError:
            decoded = None
        payload.update(decoded if isinstance(decoded, dict) else {"message": message})
        # The traceback of log.exception(...) is the one thing an operator needs from a failure.
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exc_info"] = record.exc_text
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(payload, ensure_ascii=False)


class StderrHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler on whatever `sys.stderr` is when a record is written, not the one it was
    made with: a process that swaps stderr (a test runner capturing each test's output, an
    embedding application) would otherwise log into a closed file ("I/O operation on closed file")."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always sys.stderr


def configure_logging(log_format: str, level: str) -> None:
    """Text or JSON lines on stderr for every logger, secrets blanked and line breaks escaped."""
    handler = StderrHandler()
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    # On the handler, not a logger: it then sees every logger's records, third-party ones included.
    handler.addFilter(safe_records)
    handler.addFilter(accept_errors)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for chatty in ("faiss.loader", "sentence_transformers", "httpx", "bm25s"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
