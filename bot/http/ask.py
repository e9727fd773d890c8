"""`POST /ask` and `GET /ask`: a question in, verbatim quotes with citations out."""

# No `from __future__ import annotations`: FastAPI reads the route signatures, and the request
# model carries this deployment's question limit from inside ask_router().
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from bot.answer.answering import MAX_K
from bot.answer.conversation import MAX_HISTORY, Turn, validate_history
from bot.http.deps import ApiKey, Limited, ServiceDep
from bot.http.errors import responses
from bot.records import Answer
from bot.service import Filters

# The schema says what the handler enforces (so fuzzers and clients see the same rules):
# a question with at least one non-space character, at most BOT_MAX_QUESTION_CHARS long.
NOT_BLANK = r"\S"
ERRORS = responses(
    {
        401: "Missing or wrong API key.",
        413: "Request body over 64 KiB.",
        422: "The question or a parameter is invalid.",
        429: "Rate limit exceeded; see Retry-After.",
        503: "The index is not loaded (yet); see the error.",
    }
)


def _whole(value: object) -> object:
    """JSON Schema's "integer" includes 6.0, so a client (or a fuzzer) may send it for k; `true`
    and "3" stay errors."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class AskRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"question": "Who will chair Stargate?", "k": 3}]}
    )

    # Strict: `"k": true` or `"k": "3"` is a 422, as documented, not silently 1 or 3.
    question: str = Field(description="The question, in plain words.", min_length=1, pattern=NOT_BLANK, strict=True)
    k: Annotated[int, BeforeValidator(_whole)] = Field(
        default=3, ge=1, le=MAX_K, description="How many quotes to return (1-20).", strict=True
    )
    since: dt.date | None = Field(default=None, description="Only articles dated on or after this day.")
    until: dt.date | None = Field(default=None, description="Only articles dated on or before this day.")
    recent: float | None = Field(
        default=None,
        gt=0,
        le=36500,
        strict=True,
        description="Prefer recent articles: a score boost that halves every this many days.",
    )
    asked_on: dt.date | None = Field(
        default=None,
        description="The day the question was asked ('this week' is relative to it): articles dated near it "
        "are preferred. Default: no date preference.",
    )
    history: list[str] | None = Field(
        default=None,
        max_length=MAX_HISTORY,
        description="Earlier questions of the conversation, most recent last (at most 10). A question that "
        "leans on them ('When did it begin?') is read with their topic; the answer's `context` says how.",
    )


def _day(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


def ask_router(max_chars: int) -> APIRouter:
    """The /ask routes for a deployment whose questions may be `max_chars` long."""
    # The limit first: a wrong API key spends the client's bucket too, so keys cannot be guessed freely.
    router = APIRouter(tags=["ask"], dependencies=[Limited, ApiKey])
    ask_request: Any = create_model(
        "AskRequest",
        __base__=AskRequest,
        question=(
            str,
            Field(
                description="The question, in plain words.",
                min_length=1,
                max_length=max_chars,
                pattern=NOT_BLANK,
                strict=True,
            ),
        ),
        history=(
            list[Annotated[str, Field(min_length=1, max_length=max_chars, pattern=NOT_BLANK, strict=True)]] | None,
            Field(
                default=None,
                max_length=MAX_HISTORY,
                description=f"Earlier questions of the conversation, most recent last (at most {MAX_HISTORY}). "
                "A question that leans on them ('When did it begin?') is read with their topic; the answer's "
                "`context` says how it was understood.",
            ),
        ),
    )

    @router.post("/ask", response_model=Answer, responses=ERRORS)
    async def ask(body: ask_request, service: ServiceDep) -> Answer:
        """Answer a question with up to k verbatim quotes, best first."""
        history = [Turn(q) for q in validate_history(body.history, max_chars)]
        filters = Filters(_day(body.since), _day(body.until), body.recent, _day(body.asked_on))
        return await service.ask(body.question, body.k, filters, history)

    @router.get("/ask", response_model=Answer, responses=ERRORS)
    async def ask_get(
        service: ServiceDep,
        q: Annotated[str, Query(description="The question.", min_length=1, max_length=max_chars, pattern=NOT_BLANK)],
        k: Annotated[int, Query(ge=1, le=MAX_K, description="How many quotes (1-20).")] = 3,
        since: Annotated[dt.date | None, Query(description="Only articles on or after this day.")] = None,
        until: Annotated[dt.date | None, Query(description="Only articles on or before this day.")] = None,
        recent: Annotated[
            float | None, Query(gt=0, le=36500, description="Prefer recent articles (half-life in days).")
        ] = None,
        asked_on: Annotated[
            dt.date | None, Query(description="The day the question was asked: articles near it are preferred.")
        ] = None,
    ) -> Answer:
        """The same as POST /ask, for links and curl."""
        return await service.ask(q, k, Filters(_day(since), _day(until), recent, _day(asked_on)))

    return router
