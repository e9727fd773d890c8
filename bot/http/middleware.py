"""Operations around the HTTP app: request ids, access logs, Prometheus metrics, body limit and deadline.

Plain ASGI middleware: they see every response, including the ones Starlette produces for
routing and validation errors, and they do not buffer bodies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from bot.observability import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("bot.access")


class HttpMiddleware:
    """Plain ASGI middleware that sees HTTP requests (with their headers) and passes the rest on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, dict(scope.get("headers") or []), receive, send)

    async def handle(self, scope: Scope, headers: dict[bytes, bytes], receive: Receive, send: Send) -> None:
        raise NotImplementedError


class BodyLimitMiddleware(HttpMiddleware):
    """Refuse request bodies over `max_bytes` with 413, by Content-Length or while streaming, and
    bodies not received within `read_seconds` of the headers with 408 (a client sending part of
    a body and then waiting would otherwise hold its connection and task for ever)."""

    def __init__(self, app: ASGIApp, max_bytes: int, read_seconds: float) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes
        self.read_seconds = read_seconds

    async def handle(self, scope: Scope, headers: dict[bytes, bytes], receive: Receive, send: Send) -> None:
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, 413, f"The request body is over {self.max_bytes // 1024} KiB.")
            return
        seen = 0
        started = refused = received = False
        deadline = asyncio.get_running_loop().time() + self.read_seconds

        async def limited_receive() -> Message:
            nonlocal seen, refused, received
            if received or refused:  # after the body: waiting for a disconnect has no deadline
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                # Answer 408 now; as for 413, the app gets an end of body and its reply is dropped.
                refused = True
                if not started:
                    late = f"The request body did not arrive within {self.read_seconds:g} s."
                    await self._refuse(send, 408, late)
                return {"type": "http.request", "body": b"", "more_body": False}
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                received = not message.get("more_body", False)
                if seen > self.max_bytes:
                    # Answer 413 now; the app gets an empty end of body and its reply is dropped.
                    refused = True
                    if not started:
                        await self._refuse(send, 413, f"The request body is over {self.max_bytes // 1024} KiB.")
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited_receive, tracking_send)

    async def _refuse(self, send: Send, status: int, error: str) -> None:
        body = json.dumps({"error": error}).encode()
        # The rest of the body may still come, or never: the connection is not kept for another request.
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class ObservabilityMiddleware(HttpMiddleware):
    """X-Request-ID on every response (echoed if sent), an access log line, request metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics, json_logs: bool = False) -> None:
        super().__init__(app)
        self.metrics = metrics
        self.json_logs = json_logs

    async def handle(self, scope: Scope, headers: dict[bytes, bytes], receive: Receive, send: Send) -> None:
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
