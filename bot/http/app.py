"""The HTTP service: `/ask` and its neighbours, as a FastAPI app (`create_app()`) under uvicorn.

The model and index load once, in a background thread, so `/healthz` answers from the first
moment; `/readyz` turns 200 when both are in. Every error is a JSON `{"error": ...}` with the
status of its type (`bot/http/errors.py`), never a 500 for anything a client sent.

One router per resource: `ask.py` (/ask), `articles.py` (/articles), `operations.py` (/healthz,
/readyz, /metrics), `web.py` (the page), `slack.py` (/slack/events).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI

from bot import __version__
from bot.http import articles, connections, operations
from bot.http.ask import ask_router
from bot.http.deps import RateLimit
from bot.http.errors import add_error_handlers
from bot.http.middleware import BodyLimitMiddleware, ObservabilityMiddleware
from bot.http.slack import mount_slack
from bot.http.web import mount_web
from bot.models.encoder import Embedder, export_encoder_in_child, export_folder
from bot.models.reader import check_shipped, export_reader_in_child
from bot.models.reader import export_folder as reader_folder
from bot.observability import configure_logging
from bot.service import Service
from bot.settings import Settings, get_settings

# With several workers, how long a question waits for its worker's model and index to load.
LOAD_WAIT_SECONDS = 60.0
# How long shutting down waits for a feed poll in flight (its writes are atomic either way).
POLLER_STOP_SECONDS = 10.0


def create_app(
    settings: Settings | None = None, *, embedder: Embedder | None = None, wait_for_load: bool = False
) -> FastAPI:
    """Build the app; `embedder` lets tests inject a model (the real one is loaded otherwise).

    With `wait_for_load` a question that arrives while the model and index are still loading
    waits for them (up to LOAD_WAIT_SECONDS) instead of getting a 503: with several workers on a
    port, /readyz may have come from a worker that is ready while this one is not yet.
    """
    settings = settings or get_settings()
    service = Service(settings, embedder)
    service.wait_for_load = LOAD_WAIT_SECONDS if wait_for_load else 0.0

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.loop = asyncio.get_running_loop()  # where questions are batched, Slack's too
        loader = threading.Thread(target=service.load, name="load", daemon=True)
        loader.start()
        stop_polling = threading.Event()
        poller = threading.Thread(target=service.poll_feeds, args=(stop_polling,), name="feeds", daemon=True)
        if settings.poll_feeds:
            poller.start()
        yield
        stop_polling.set()
        if poller.is_alive():  # a poll in flight may finish its write; the next process picks up the rest
            await asyncio.to_thread(poller.join, POLLER_STOP_SECONDS)
        await service.close()

    app = FastAPI(
        title="Stargate Q&A bot",
        version=__version__,
        description="Answers questions about news articles with verbatim, cited quotes.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.rate_limit = RateLimit(settings.rate_limit)
    # Added last = outermost: even a 413 from the body limit gets a request id, a log line, a metric.
    app.add_middleware(BodyLimitMiddleware, max_bytes=64 * 1024, read_seconds=connections.READ_SECONDS)
    app.add_middleware(ObservabilityMiddleware, metrics=service.metrics, json_logs=settings.log_format == "json")
    add_error_handlers(app, settings.max_question_chars)
    app.include_router(ask_router(settings.max_question_chars))
    app.include_router(operations.router)
    app.include_router(articles.router)
    mount_web(app)  # GET / (the question page) and /static
    if settings.slack_bot_token or settings.slack_signing_secret:
        mount_slack(app, service)  # POST /slack/events
    return app


def worker_app() -> FastAPI:
    """The app of one of several `bot serve` workers (uvicorn imports it by name in each process)."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings, wait_for_load=True)


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the app under uvicorn until SIGINT/SIGTERM, finishing in-flight requests first.

    With BOT_WORKERS above 1, uvicorn binds the port once and runs that many worker processes on
    it; each loads its own encoder and memory-maps the same index version (the pages are shared),
    watches CURRENT, keeps its own rate-limit counts and its own metrics (see the README).
    """
    configure_logging(settings.log_format, settings.log_level)
    # Once, before any worker starts (a child process: this one never imports torch).
    if settings.encoder != "torch":
        if not (export_folder(settings.model, settings.index_dir) / "export.json").is_file():
            export_encoder_in_child(settings.index_dir, settings.model)
        if settings.reader == "on":
            check_shipped()  # changed weights are refused before anything starts
            if not (reader_folder(settings.index_dir) / "export.json").is_file():
                export_reader_in_child(settings.index_dir)
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    print(
        f"Serving on http://{shown}:{port}  (web page: http://{shown}:{port}/, docs: http://{shown}:{port}/docs)",
        flush=True,
    )
    auth = ' -H "Authorization: Bearer $BOT_API_KEY"' if settings.api_key else ""
    print(
        f"Try: curl -s http://{shown}:{port}/ask{auth} -H 'Content-Type: application/json' "
        '-d \'{"question": "Who will chair Stargate?", "k": 3}\'',
        flush=True,
    )
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "access_log": False,  # ObservabilityMiddleware writes one line per request, with its id
        "log_config": None,
        "timeout_graceful_shutdown": 30,
        # uvicorn trusts X-Forwarded-For from loopback by default: any local process could then
        # pick its own client address (and rate-limit bucket). Only named proxies are trusted.
        "proxy_headers": settings.forwarded_allow_ips is not None,
        "forwarded_allow_ips": settings.forwarded_allow_ips or "",
        # A deadline for each request's headers, a cap on connections, a short listen backlog.
        **connections.connection_options(),
    }
    if settings.workers > 1:
        # The workers read their settings afresh; the one given on the command line travels by env.
        os.environ["BOT_INDEX_DIR"] = str(settings.index_dir)
        uvicorn.run("bot.http.app:worker_app", factory=True, workers=settings.workers, **common)
        return
    config = uvicorn.Config(create_app(settings), **common)
    asyncio.run(uvicorn.Server(config).serve())
