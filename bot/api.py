"""The HTTP service: `/ask` and its neighbours, as a FastAPI app (`create_app()`) under uvicorn.

The model and index load once, in a background thread, so `/healthz` answers from the first
moment; `/readyz` turns 200 when both are in. Every error is a JSON `{"error": ...}` with a 4xx
status (or 503 while there is no index), never a 500 for anything a client sent.
"""

# No `from __future__ import annotations` here: FastAPI reads the route signatures, and the
# request models carry this deployment's limits from inside create_app().
import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from limits import parse as parse_limit
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, ConfigDict, Field, create_model

from bot import __version__
from bot.answering import EMPTY_QUESTION, MAX_K, answer_with_vector, validate_question
from bot.batching import BatchingEncoder
from bot.embedding import Embedder
from bot.errors import BotError, QuestionError
from bot.http_ops import BodyLimitMiddleware, Metrics, ObservabilityMiddleware, bearer_matches, configure_logging
from bot.live_index import LiveIndex
from bot.records import Answer
from bot.settings import Settings, get_settings, milvus_target

log = logging.getLogger("bot.api")


class ErrorBody(BaseModel):
    error: str = Field(description="What is wrong, in one sentence.")
    detail: list[dict[str, Any]] | None = Field(default=None, description="Field-level problems, if any.")


# The schema says what the handler enforces (so fuzzers and clients see the same rules):
# a question with at least one non-space character, at most BOT_MAX_QUESTION_CHARS long.
NOT_BLANK = r"\S"


class AskRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"question": "Who will chair Stargate?", "k": 3}]}
    )

    question: str = Field(description="The question, in plain words.", min_length=1, pattern=NOT_BLANK)
    k: int = Field(default=3, ge=1, le=MAX_K, description="How many quotes to return (1-20).")
    since: dt.date | None = Field(default=None, description="Only articles dated on or after this day.")
    until: dt.date | None = Field(default=None, description="Only articles dated on or before this day.")
    recent: float | None = Field(
        default=None,
        gt=0,
        le=36500,
        description="Prefer recent articles: a score boost that halves every this many days.",
    )


class ArticleSummary(BaseModel):
    id: str
    title: str
    date: str | None
    url: str | None
    source: str | None
    passages: int


class ArticleList(BaseModel):
    count: int
    articles: list[ArticleSummary]


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        401: "Missing or wrong API key.",
        413: "Request body over 64 KiB.",
        422: "The question or a parameter is invalid.",
        429: "Rate limit exceeded; see Retry-After.",
        503: "The index is not loaded (yet); see the error.",
    }.items()
}


class Service:
    """What the app holds: settings, model, live index, encoder, metrics."""

    def __init__(self, settings: Settings, embedder: Embedder | None) -> None:
        self.settings = settings
        self.embedder = embedder
        self.live: LiveIndex | None = None
        self.encoder: BatchingEncoder | None = None
        self.load_error: str | None = None
        self.metrics = Metrics(self)
        self.rate_limit = parse_limit(settings.rate_limit) if settings.rate_limit else None
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def load(self) -> None:
        """Load the model and the index (runs in a thread at start-up)."""
        try:
            if self.embedder is None:
                from bot.embedding import get_embedder

                self.embedder = get_embedder(self.settings.model)
            live = LiveIndex(self.settings.index_dir, self.embedder.name, milvus_target(self.settings))
            live.refresh()
            live.watch()
            self.live = live
        except BotError as exc:
            self.load_error = str(exc)
            log.error("cannot load: %s", exc)

    @property
    def error(self) -> str:
        if self.load_error:
            return self.load_error
        if self.live is None:
            return "The model and index are loading; retry in a few seconds."
        return self.live.error or ""


def create_app(settings: Settings | None = None, *, embedder: Embedder | None = None) -> FastAPI:
    """Build the app; `embedder` lets tests inject a model (the real one is loaded otherwise)."""
    settings = settings or get_settings()
    service = Service(settings, embedder)
    max_chars = settings.max_question_chars
    # The request model carries this deployment's question limit into the OpenAPI schema.
    ask_request: Any = create_model(
        "AskRequest",
        __base__=AskRequest,
        question=(
            str,
            Field(description="The question, in plain words.", min_length=1, max_length=max_chars, pattern=NOT_BLANK),
        ),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = threading.Thread(target=service.load, name="load", daemon=True)
        loader.start()
        yield
        if service.live is not None:
            service.live.close()
        if service.encoder is not None:
            await service.encoder.close()

    app = FastAPI(
        title="Stargate Q&A bot",
        version=__version__,
        description="Answers questions about news articles with verbatim, cited quotes.",
        lifespan=lifespan,
    )
    app.state.service = service
    # Added last = outermost: even a 413 from the body limit gets a request id, a log line, a metric.
    app.add_middleware(BodyLimitMiddleware, max_bytes=64 * 1024)
    app.add_middleware(ObservabilityMiddleware, metrics=service.metrics, json_logs=settings.log_format == "json")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors(), exclude={"input", "ctx", "url"})
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            message = "The body is not valid JSON."
        elif first.get("loc", [])[-1:] in (["question"], ["q"]) and first.get("type") in (
            "string_too_short",
            "string_pattern_mismatch",
        ):
            message = EMPTY_QUESTION
        elif first.get("loc", [])[-1:] in (["question"], ["q"]) and first.get("type") == "string_too_long":
            message = f"The question is over {max_chars} characters long; the limit is {max_chars}."
        else:
            where = ".".join(str(p) for p in first.get("loc", []) if p not in ("body", "query"))
            message = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "Invalid request."))
        return JSONResponse({"error": message, "detail": errors}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(QuestionError)
    async def bad_question(request: Request, exc: QuestionError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=422)

    @app.exception_handler(BotError)
    async def unavailable(request: Request, exc: BotError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    def guard(request: Request) -> None:
        """API key (constant-time comparison), then the per-client rate limit."""
        key = settings.api_key.get_secret_value() if settings.api_key else ""
        if key and not bearer_matches(request.headers.get("authorization", ""), key):
            raise HTTPException(
                401, "Send 'Authorization: Bearer <BOT_API_KEY>'.", headers={"WWW-Authenticate": "Bearer"}
            )
        if service.rate_limit is not None:
            # Keyed by address: a header the client chooses would give it a fresh bucket per request.
            client = request.client.host if request.client else "unknown"
            if not service.limiter.hit(service.rate_limit, client):
                reset = service.limiter.get_window_stats(service.rate_limit, client).reset_time
                retry = max(1, int(reset - time.time()) + 1)
                raise HTTPException(
                    429,
                    f"Rate limit of {settings.rate_limit} exceeded; retry in {retry} s.",
                    headers={"Retry-After": str(retry)},
                )

    async def respond(
        question: str, k: int, since: dt.date | None, until: dt.date | None, recent: float | None = None
    ) -> Answer:
        started = time.perf_counter()
        question = validate_question(question, k, settings.max_question_chars)
        live = service.live
        index = live.current() if live is not None else None
        if index is None or service.embedder is None:
            raise HTTPException(503, service.error, headers={"Retry-After": "5"})
        if service.encoder is None:
            service.encoder = BatchingEncoder(service.embedder)
        vector: np.ndarray = await service.encoder.encode(question)
        result = await run_in_threadpool(
            answer_with_vector,
            index,
            question,
            vector,
            k,
            since=since.isoformat() if since else None,
            until=until.isoformat() if until else None,
            recency_half_life_days=recent,
            threshold=settings.threshold,
            started=started,
        )
        service.metrics.answers.labels(answered=str(result.answered).lower()).inc()
        return result

    @app.post("/ask", response_model=Answer, responses=ERRORS, dependencies=[Depends(guard)], tags=["ask"])
    async def ask(body: ask_request) -> Answer:
        """Answer a question with up to k verbatim quotes, best first."""
        return await respond(body.question, body.k, body.since, body.until, body.recent)

    @app.get("/ask", response_model=Answer, responses=ERRORS, dependencies=[Depends(guard)], tags=["ask"])
    async def ask_get(
        q: Annotated[str, Query(description="The question.", min_length=1, max_length=max_chars, pattern=NOT_BLANK)],
        k: Annotated[int, Query(ge=1, le=MAX_K, description="How many quotes (1-20).")] = 3,
        since: Annotated[dt.date | None, Query(description="Only articles on or after this day.")] = None,
        until: Annotated[dt.date | None, Query(description="Only articles on or before this day.")] = None,
        recent: Annotated[
            float | None, Query(gt=0, le=36500, description="Prefer recent articles (half-life in days).")
        ] = None,
    ) -> Answer:
        """The same as POST /ask, for links and curl."""
        return await respond(q, k, since, until, recent)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={503: {"model": ErrorBody, "description": "Not ready."}})
    async def readyz() -> JSONResponse:
        """Readiness: 200 with the index's counts once the model and index are loaded."""
        index = service.live.current() if service.live is not None else None
        if index is None or service.embedder is None:
            return JSONResponse({"error": service.error}, status_code=503)
        return JSONResponse(
            {
                "status": "ready",
                "articles": len(index.articles),
                "passages": len(index),
                "index_version": index.version,
                "built_at": index.manifest["built_at"],
                "model": index.model,
            }
        )

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics: requests, latency, answers, index size and age, encode batches."""
        body, content_type = service.metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/articles", response_model=ArticleList, tags=["articles"], responses={503: ERRORS[503]})
    async def list_articles() -> ArticleList:
        """The articles in the index, with their passage counts."""
        index = service.live.current() if service.live is not None else None
        if index is None:
            raise HTTPException(503, service.error, headers={"Retry-After": "5"})
        counts = np.bincount(index.passage_article, minlength=len(index.articles))
        return ArticleList(
            count=len(index.articles),
            articles=[
                ArticleSummary(id=a.id, title=a.title, date=a.date, url=a.url, source=a.source, passages=int(counts[n]))
                for n, a in enumerate(index.articles)
            ],
        )

    from bot.web import mount_web

    mount_web(app)  # GET / (the question page) and /static
    if settings.slack_bot_token or settings.slack_signing_secret:
        from bot.slack_app import mount

        mount(app, service)  # POST /slack/events
    from bot.ingest_http import add_article_routes

    add_article_routes(app, service)  # POST /articles, DELETE /articles/{id}
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
    )
    asyncio.run(uvicorn.Server(config).serve())
