"""`POST /ask` and `GET /ask`: a question in, verbatim quotes with citations out.

The request's fields are written once (`_fields`), for a deployment's question limit: POST's
body is all of them, GET's query the same less `history`, with the question as `q` and the
coercion a query string needs. Either becomes one `Ask` (`bot.answer.asking`) for the service.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures, and the request
# models carry this deployment's question limit from inside ask_router().
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from bot.answer.asking import MAX_K, Ask
from bot.answer.conversation import MAX_HISTORY, Turn, validate_history
from bot.http.deps import ApiKey, Limited, ServiceDep
from bot.http.errors import responses
from bot.records import Answer

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


def _fields(max_chars: int, *, body: bool) -> dict[str, Any]:
    """Every field of an ask, as `create_model` takes them. A JSON body is strict (`"k": true` or
    `"k": "3"` is a 422, as documented, not silently 1 or 3); a query string is text, coerced."""
    name, text = ("question", "The question, in plain words.") if body else ("q", "The question.")
    k_type: Any = Annotated[int, BeforeValidator(_whole)] if body else int
    fields: dict[str, Any] = {
        name: (str, Field(description=text, min_length=1, max_length=max_chars, pattern=NOT_BLANK, strict=True)),
        "k": (k_type, Field(default=3, ge=1, le=MAX_K, description="How many quotes to return (1-20).", strict=body)),
        "since": (dt.date | None, Field(default=None, description="Only articles dated on or after this day.")),
        "until": (dt.date | None, Field(default=None, description="Only articles dated on or before this day.")),
        "recent": (
            float | None,
            Field(
                default=None,
                gt=0,
                le=36500,
                strict=body,
                description="Prefer recent articles: a score boost that halves every this many days.",
            ),
        ),
        "asked_on": (
            dt.date | None,
            Field(
                default=None,
                description="The day the question was asked ('this week' is relative to it): articles dated near "
                "it are preferred. Default: no date preference.",
            ),
        ),
    }
    if body:
        earlier = Annotated[str, Field(min_length=1, max_length=max_chars, pattern=NOT_BLANK, strict=True)]
        fields["history"] = (
            list[earlier] | None,
            Field(
                default=None,
                max_length=MAX_HISTORY,
                description=f"Earlier questions of the conversation, most recent last (at most {MAX_HISTORY}). "
                "A question that leans on them ('When did it begin?') is read with their topic; the answer's "
                "`context` says how it was understood.",
            ),
        )
    return fields


class AskFields(BaseModel):
    """What both ways of asking share: how they become an `Ask`."""

    def to_ask(self) -> Ask:
        values = self.model_dump()
        return Ask(
            question=values["question"] if "question" in values else values["q"],
            k=values["k"],
            since=values["since"],
            until=values["until"],
            asked_on=values["asked_on"],
            recent=values["recent"],
        )


class AskBody(AskFields):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"question": "Who will chair Stargate?", "k": 3}]}
    )


def ask_models(max_chars: int) -> tuple[type[AskFields], type[AskFields]]:
    """The POST body and GET query models for a deployment whose questions may be `max_chars` long."""
    post: type[AskFields] = create_model("AskRequest", __base__=AskBody, **_fields(max_chars, body=True))
    query: type[AskFields] = create_model("AskQuery", __base__=AskFields, **_fields(max_chars, body=False))
    return post, query


def ask_router(max_chars: int) -> APIRouter:
    """The /ask routes for a deployment whose questions may be `max_chars` long."""
    # The limit first: a wrong API key spends the client's bucket too, so keys cannot be guessed freely.
    router = APIRouter(tags=["ask"], dependencies=[Limited, ApiKey])
    ask_request, ask_query = ask_models(max_chars)

    @router.post("/ask", response_model=Answer, responses=ERRORS)
    async def ask(body: ask_request, service: ServiceDep) -> Answer:  # type: ignore[valid-type]
        """Answer a question with up to k verbatim quotes, best first."""
        history = [Turn(q) for q in validate_history(body.history, max_chars)]  # type: ignore[attr-defined]
        return await service.ask(body.to_ask(), history)  # type: ignore[attr-defined]

    @router.get("/ask", response_model=Answer, responses=ERRORS)
    async def ask_get(service: ServiceDep, params: Annotated[ask_query, Query()]) -> Answer:  # type: ignore[valid-type]
        """The same as POST /ask, for links and curl."""
        return await service.ask(params.to_ask())  # type: ignore[attr-defined]

    return router
