"""The HTTP service: `/ask` and its neighbours, as a FastAPI app (`create_app()`) under uvicorn.

The model and index load once, in a background thread, so `/healthz` answers from the first
moment; `/readyz` turns 200 when both are in. Every error is a JSON `{"error": ...}` with the
status of its type (`bot/http/errors.py`), never a 500 for anything a client sent.

One router per resource: `ask.py` (/ask), `articles.py` (/articles), `operations.py` (/healthz,
/readyz, /metrics), `web.py` (the page), `slack.py` (/slack/events).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bot import __version__
from bot.http import articles, operations
from bot.http.ask import ask_router
from bot.http.deps import RateLimit
from bot.http.errors import add_error_handlers
from bot.http.middleware import BodyLimitMiddleware, ObservabilityMiddleware
from bot.indexing.embedding import Embedder
from bot.observability import configure_logging
from bot.service import Service
from bot.settings import Settings, get_settings


def create_app(settings: Settings | None = None, *, embedder: Embedder | None = None) -> FastAPI:
    """Build the app; `embedder` lets tests inject a model (the real one is loaded otherwise)."""
    settings = settings or get_settings()
    service = Service(settings, embedder)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = threading.Thread(target=service.load, name="load", daemon=True)
        loader.start()
        yield
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
    app.add_middleware(BodyLimitMiddleware, max_bytes=64 * 1024)
    app.add_middleware(ObservabilityMiddleware, metrics=service.metrics, json_logs=settings.log_format == "json")
    add_error_handlers(app, settings.max_question_chars)
    app.include_router(ask_router(settings.max_question_chars))
    app.include_router(operations.router)
    app.include_router(articles.router)

    from bot.http.web import mount_web

    mount_web(app)  # GET / (the question page) and /static
    if settings.slack_bot_token or settings.slack_signing_secret:
        from bot.http.slack import mount_slack

        mount_slack(app, service)  # POST /slack/events
    return app


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the app under uvicorn until SIGINT/SIGTERM, finishing in-flight requests first."""
    import uvicorn

    configure_logging(settings.log_format, settings.log_level)
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
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        access_log=False,  # ObservabilityMiddleware writes one line per request, with its id
        log_config=None,
        timeout_graceful_shutdown=30,
        # uvicorn trusts X-Forwarded-For from loopback by default: any local process could then
        # pick its own client address (and rate-limit bucket). Only named proxies are trusted.
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips or "",
    )
    asyncio.run(uvicorn.Server(config).serve())
