"""What one client connection may hold of the server: a deadline for its request, and a place
among a bounded number of connections.

uvicorn closes an idle keep-alive connection, but sets no deadline on reading a request: a client
that sent half its headers, or its headers and half its body, and then waited, held its
connection (and, for a body, an ASGI task) for as long as it liked. 3,000 such connections were
all still open after 90 s; 20,500 used up the process's 20,000 file descriptors, and then nobody
was answered. So:

- the headers of a request must arrive within READ_SECONDS of the connection (or of the previous
  response on a kept-alive one), else the connection gets a 408 and is closed (`DeadlineProtocol`);
  the body then has READ_SECONDS more (`bot.http.middleware.BodyLimitMiddleware`);
- past uvicorn's `limit_concurrency` (MAX_CONNECTIONS, or half the descriptors the process may
  open when that is less) a new connection gets a 503 and is closed at once, so idle connections
  cannot take the last descriptor; uvicorn itself answers 503 to a request past the same limit;
- a short listen BACKLOG: asyncio's accept loop, once out of descriptors, logs one traceback per
  pending connection of the backlog each time it retries (393,217 lines, 178 MB, in ~30 s); the
  log keeps one of them a minute (`bot.observability.accept_errors`).
"""

from __future__ import annotations

import asyncio
import json
import resource
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

READ_SECONDS = 15.0  # for a request's headers, then as long again for its body
MAX_CONNECTIONS = 2048
BACKLOG = 128
LATE = "The request did not arrive in time: send the headers and the body within {seconds:g} s."
BUSY = "The server has too many open connections; retry in a few seconds."


def max_connections() -> int:
    """MAX_CONNECTIONS, or half the file descriptors this process may open when that is fewer
    (the rest: the index's files, the model, logs, the connections closed meanwhile)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return MAX_CONNECTIONS if soft == resource.RLIM_INFINITY else max(16, min(MAX_CONNECTIONS, soft // 2))


def connection_options() -> dict[str, Any]:
    """uvicorn's options for the limits above (the HTTP protocol is httptools', as uvicorn's own
    "auto" picks when it is installed)."""
    return {"http": DeadlineProtocol, "limit_concurrency": max_connections(), "backlog": BACKLOG}


def raw_response(status: bytes, error: str, *headers: bytes) -> bytes:
    """A whole HTTP/1.1 response with a JSON `{"error": ...}` body, which closes the connection."""
    body = json.dumps({"error": error}).encode()
    head = [b"HTTP/1.1 " + status, b"content-type: application/json", b"content-length: %d" % len(body)]
    return b"\r\n".join([*head, *headers, b"connection: close", b"", body])


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline on a request's headers and a connection cap."""

    _late: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.limit_concurrency is not None and len(self.connections) > self.limit_concurrency:
            self._close_with(raw_response(b"503 Service Unavailable", BUSY, b"retry-after: 5"))
            return
        self._await_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_headers()  # a kept-alive connection's next request has its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        if self._late is not None:
            self._late.cancel()
            self._late = None
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        if self._late is not None:
            self._late.cancel()
        self._late = self.loop.call_later(READ_SECONDS, self._headers_late, self.cycle)

    def _headers_late(self, before: object) -> None:
        self._late = None
        # A request whose headers came meanwhile has a new cycle; one still being answered (a
        # pipelined one) is not waiting for headers either.
        waiting = self.cycle is before and (self.cycle is None or self.cycle.response_complete)
        if waiting and not self.transport.is_closing():
            self._close_with(raw_response(b"408 Request Timeout", LATE.format(seconds=READ_SECONDS)))

    def _close_with(self, response: bytes) -> None:
        self.transport.write(response)
        self.transport.close()
