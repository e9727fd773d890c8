"""What a running service tells its operators: Prometheus metrics and log lines (text or JSON).

Shared by both edges that run as a service: the HTTP app and `bot slack` (Socket Mode).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from bot.indexing.versions import Index
    from bot.service import Service


class Metrics:
    """The service's Prometheus registry (one per app, so tests can build many apps)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.registry = CollectorRegistry()
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
            lambda: len(self.service.encoder.batch_sizes) if self.service.encoder else 0
        )
        Gauge("bot_encode_questions", "Questions encoded (cache misses).", registry=self.registry).set_function(
            lambda: sum(self.service.encoder.batch_sizes) if self.service.encoder else 0
        )

    def _index_value(self, read: Callable[[Index], float]) -> float:
        index = self.service.live.current() if self.service.live is not None else None
        return float(read(index)) if index is not None else float("nan")

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


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
        return json.dumps(payload, ensure_ascii=False)


def configure_logging(log_format: str, level: str) -> None:
    """Text or JSON lines on stderr for the bot's and uvicorn's loggers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for chatty in ("faiss.loader", "sentence_transformers", "httpx", "bm25s"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
