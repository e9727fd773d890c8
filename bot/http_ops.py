"""Operations around the HTTP app: request ids, access logs, Prometheus metrics, body limit.

Plain ASGI middleware: they see every response, including the ones Starlette produces for
routing and validation errors, and they do not buffer bodies.
"""

from __future__ import annotations

import hmac
import json
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("bot.access")


class _ServiceView(Protocol):
    """What the metrics read from the service: the live index and the encoder's batch sizes."""

    live: Any
    encoder: Any


class Metrics:
    """The service's Prometheus registry (one per app, so tests can build many apps)."""

    def __init__(self, service: _ServiceView) -> None:
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
            lambda: len(self.service.encoder.batch_sizes) if self.service.encoder else 0
        )
        Gauge("bot_encode_questions", "Questions encoded (cache misses).", registry=self.registry).set_function(
            lambda: sum(self.service.encoder.batch_sizes) if self.service.encoder else 0
        )

    def _index_value(self, read: Callable[[Any], float]) -> float:
        index = self.service.live.current() if self.service.live is not None else None
        return float(read(index)) if index is not None else float("nan")

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def bearer_matches(authorization: str, key: str) -> bool:
    """True when an Authorization header carries `Bearer <key>` (compared in constant time)."""
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = refused = False

        async def limited_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Answer 413 now; the app gets an empty end of body and its reply is dropped.
                    refused = True
                    if not started:
                        await self._refuse(send)
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited_receive, tracking_send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": f"The request body is over {self.max_bytes // 1024} KiB."}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


class ObservabilityMiddleware:
    """X-Request-ID on every response (echoed if sent), an access log line, request metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics, json_logs: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.json_logs = json_logs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if given and len(given) <= 200 and given.isprintable() else uuid.uuid4().hex
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            path_template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(path_template, scope["method"], str(status)).inc()
            self.metrics.latency.labels(path_template, str(status)).observe(elapsed)
            fields = {
                "request_id": request_id,
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "ms": round(elapsed * 1000, 2),
                "client": (scope.get("client") or ("-",))[0],
            }
            if self.json_logs:
                access_log.info(json.dumps(fields))
            else:
                access_log.info('%(client)s "%(method)s %(path)s" %(status)s %(ms)sms id=%(request_id)s', fields)


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
