"""The articles resource: `GET /articles`, `POST /articles` and `DELETE /articles/{id}`.

The two that change the corpus need `Authorization: Bearer $BOT_API_KEY` and are refused outright (403) when the server
has no key: an open endpoint that writes to disk is not a default anyone wants. A request
answers once its change is searchable: the article is written to the corpus (atomically), the
index rebuilt incrementally and published, and this process's live index switched to it; other
processes sharing the index folder follow within a second. The work is `Service.add`, which the
Slack app calls too: one writer rule, one duplicate check.
`GET /articles?newest=5` is what the web page shows of how fresh the articles are.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures.
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bot.http.deps import IndexDep, Limited, ServiceDep, WriteKey, served_index
from bot.http.errors import responses


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


router = APIRouter(tags=["articles"])
MAX_NEWEST = 100
CHANGE_ERRORS = responses(
    {
        401: "Missing or wrong API key.",
        403: "The server has no BOT_API_KEY: changing articles is disabled.",
        404: "No such article.",
        409: "The change would leave the corpus empty, or BOT_CORPUS_DIR is not a folder.",
        422: "The article or its URL cannot be ingested.",
        503: "The index is not loaded (yet).",
    }
)


@router.get(
    "/articles", response_model=ArticleList, responses=responses({503: "The index is not loaded (yet); see the error."})
)
async def list_articles(
    index: IndexDep,
    newest: Annotated[
        int | None,
        Query(ge=1, le=MAX_NEWEST, description="Only the N most recently dated articles, newest first (undated last)."),
    ] = None,
) -> ArticleList:
    """The articles in the index, with their passage counts; `count` is always all of them."""
    counts = np.bincount(index.passage_article, minlength=len(index.articles))
    numbers = index.newest(newest) if newest is not None else range(len(index.articles))
    return ArticleList(
        count=len(index.articles),
        articles=[
            ArticleSummary(id=a.id, title=a.title, date=a.date, url=a.url, source=a.source, passages=int(counts[n]))
            for n, a in ((n, index.articles[n]) for n in numbers)
        ],
    )


@router.post(
    "/articles",
    response_model=ArticleChange,
    status_code=201,
    responses=CHANGE_ERRORS,
    dependencies=[Limited, WriteKey, Depends(served_index)],
)
async def post_article(body: ArticleIn, service: ServiceDep) -> JSONResponse:
    """Add an article (title and text, or just a URL to fetch); answers once it is searchable."""
    done = await run_in_threadpool(service.add, body.model_dump(), "POST /articles")
    change = ArticleChange(
        id=done.id, status=done.status, passages=done.passages, index_version=done.index_version, detail=done.detail
    )
    return JSONResponse(change.model_dump(), status_code=201 if done.status in ("added", "linked") else 200)


@router.delete(
    "/articles/{article_id}",
    response_model=ArticleChange,
    responses=CHANGE_ERRORS,
    dependencies=[Limited, WriteKey, Depends(served_index)],
)
async def delete_article(article_id: str, service: ServiceDep) -> ArticleChange:
    """Remove an article; answers once the index no longer has it."""
    version = await run_in_threadpool(service.remove_article, article_id)
    return ArticleChange(id=article_id, status="deleted", passages=0, index_version=version)
