"""HTTP routes that change the corpus: `POST /articles` and `DELETE /articles/{id}`.

Both need `Authorization: Bearer $BOT_API_KEY` and are refused outright (403) when the server
has no key: an open endpoint that writes to disk is not a default anyone wants. A request
answers once its change is searchable: the article is written to the corpus (atomically), the
index rebuilt incrementally and published, and this process's live index switched to it; other
processes sharing the index folder follow within a second.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures.
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bot.errors import CorpusError, IngestError
from bot.http_ops import bearer_matches
from bot.ingest import CorpusWriter, Outcome
from bot.settings import milvus_target
from bot.sources import Draft, draft_from_fields, read_url


class ArticleIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"title": "Stargate breaks ground", "text": "Construction began…", "date": "2025-01-23"},
                {"url": "https://example.com/news/stargate"},
            ]
        },
    )

    title: str | None = Field(default=None, description="Headline; required unless only `url` is sent.")
    text: str | None = Field(default=None, description="The article's text; required unless only `url` is sent.")
    date: str | None = Field(default=None, description="ISO-8601 date, e.g. 2025-01-23.")
    url: str | None = Field(default=None, description="Canonical URL; sent alone, the page is fetched.")
    source: str | None = Field(default=None, description="Publisher.")
    author: str | None = None


class ArticleChange(BaseModel):
    id: str = Field(description="The article's id (for a duplicate: the article it repeats).")
    status: str = Field(description="added, updated, linked (a near-duplicate), duplicate or deleted.")
    passages: int = Field(description="Passages of the article now searchable (0 for links and deletions).")
    index_version: str | None = Field(description="The index version that has the change.")
    detail: str | None = None


def add_article_routes(app: FastAPI, service: Any) -> None:
    """Mount POST/DELETE /articles on the app of `bot.api.create_app`."""
    settings = service.settings
    writers: list[CorpusWriter] = []

    def corpus_writer() -> CorpusWriter:
        """Made on first use, so a read-only deployment (e.g. BOT_CORPUS_DIR=x.jsonl) still starts."""
        if not writers:
            try:
                writers.append(CorpusWriter(settings.corpus_dir, settings.index_dir / ".ingest.lock"))
            except IngestError as exc:
                raise HTTPException(409, str(exc)) from None
        return writers[0]

    errors: dict[int | str, dict[str, Any]] = {
        code: {"description": text}
        for code, text in {
            401: "Missing or wrong API key.",
            403: "The server has no BOT_API_KEY: changing articles is disabled.",
            404: "No such article.",
            409: "The change would leave the corpus empty, or BOT_CORPUS_DIR is not a folder.",
            422: "The article or its URL cannot be ingested.",
            503: "The index is not loaded (yet).",
        }.items()
    }

    def authorised(request: Request) -> None:
        key = settings.api_key.get_secret_value() if settings.api_key else ""
        if not key:
            raise HTTPException(403, "Changing articles is disabled: set BOT_API_KEY on the server to enable it.")
        if not bearer_matches(request.headers.get("authorization", ""), key):
            raise HTTPException(
                401, "Send 'Authorization: Bearer <BOT_API_KEY>'.", headers={"WWW-Authenticate": "Bearer"}
            )

    def ready() -> None:
        if service.live is None or service.live.current() is None or service.embedder is None:
            raise HTTPException(503, service.error, headers={"Retry-After": "5"})

    def publish() -> str:
        """Rebuild the index from the corpus and switch this process to it; the new version."""
        from bot.indexer import build_index

        report = build_index(
            settings.corpus_dir,
            settings.index_dir,
            service.embedder,
            approximate_above=settings.approximate_above,
            milvus=milvus_target(settings),
        )
        service.live.refresh()
        index = service.live.current()
        if index is None or index.version < report.version:
            raise HTTPException(503, f"Written, but the new index is not loaded yet: {service.live.error or 'retry'}")
        return str(index.version)

    def passages_of(article_id: str) -> int:
        index = service.live.current()
        number = index.article_number.get(article_id)
        return 0 if number is None else int((index.passage_article == number).sum())

    def add(body: ArticleIn) -> tuple[Outcome, str | None]:
        draft: Draft
        try:
            if body.text is None and body.title is None and body.url:
                draft = read_url(body.url, settings.allow_private_urls)
            else:
                draft = draft_from_fields(body.model_dump(), "POST /articles")
        except (CorpusError, IngestError) as exc:
            raise HTTPException(422, getattr(exc, "reason", str(exc))) from None
        outcome = corpus_writer().accept([draft]).outcomes[0]
        if outcome.status == "rejected":
            raise HTTPException(422, outcome.detail or "The article was rejected.")
        from bot.indexer import is_current

        # A duplicate needs no build, unless a crash left the corpus ahead of the index.
        stale = outcome.status != "duplicate" or not is_current(
            settings.corpus_dir, settings.index_dir, service.embedder.name, milvus_target(settings)
        )
        return outcome, publish() if stale else None

    @app.post(
        "/articles",
        response_model=ArticleChange,
        status_code=201,
        responses=errors,
        dependencies=[Depends(authorised), Depends(ready)],
        tags=["articles"],
    )
    async def post_article(body: ArticleIn) -> JSONResponse:
        """Add an article (title and text, or just a URL to fetch); answers once it is searchable."""
        outcome, version = await run_in_threadpool(add, body)
        assert outcome.id is not None
        current = service.live.current()
        change = ArticleChange(
            id=outcome.id,
            status=outcome.status,
            passages=passages_of(outcome.id),
            index_version=version or (current.version if current is not None else None),
            detail=outcome.detail,
        )
        return JSONResponse(change.model_dump(), status_code=201 if outcome.status in ("added", "linked") else 200)

    def remove(article_id: str) -> str:
        articles = corpus_writer().articles()
        if not any(a.id == article_id for a in articles):
            raise HTTPException(404, f"No article with id {article_id!r}.")
        if len(articles) == 1:
            raise HTTPException(409, f"{article_id!r} is the only article; the index cannot be empty.")
        corpus_writer().delete(article_id)
        return publish()

    @app.delete(
        "/articles/{article_id}",
        response_model=ArticleChange,
        responses=errors,
        dependencies=[Depends(authorised), Depends(ready)],
        tags=["articles"],
    )
    async def delete_article(article_id: str) -> ArticleChange:
        """Remove an article; answers once the index no longer has it."""
        try:
            version = await run_in_threadpool(remove, article_id)
        except IngestError as exc:
            raise HTTPException(404, str(exc)) from None
        return ArticleChange(id=article_id, status="deleted", passages=0, index_version=version)
