"""Errors as HTTP responses: one status per error type, every body `{"error": ...}`."""

# No `from __future__ import annotations`: FastAPI reads the handler signatures.
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from bot.answer.asking import EMPTY_QUESTION
from bot.answer.conversation import MAX_HISTORY
from bot.errors import (
    BotError,
    ConflictError,
    CorpusError,
    IngestError,
    NotFoundError,
    NotWriterError,
    QuestionError,
    ReadOnlyCorpusError,
    UnavailableError,
)

# Most specific first: the first type an error is an instance of gives its status. A BotError
# not listed (a broken index, a model that failed its checksum) is the server's state, so 503.
STATUS: list[tuple[type[BotError], int]] = [
    (QuestionError, 422),
    (CorpusError, 422),  # with the path and the reason
    (NotFoundError, 404),
    (NotWriterError, 403),
    (ReadOnlyCorpusError, 409),
    (ConflictError, 409),
    (IngestError, 422),
    (UnavailableError, 503),
    (BotError, 503),
]
RETRY_AFTER = {503: {"Retry-After": "5"}}


class ErrorBody(BaseModel):
    error: str = Field(description="What is wrong, in one sentence.")
    detail: list[dict[str, Any]] | None = Field(default=None, description="Field-level problems, if any.")


def responses(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these statuses, each with the error body."""
    return {code: {"model": ErrorBody, "description": text} for code, text in described.items()}


def status_of(error: BotError) -> int:
    return next(status for kind, status in STATUS if isinstance(error, kind))


def _history_error(loc: list[Any], kind: str, max_chars: int) -> str:
    """A clear sentence for a bad `history` (too many questions, or one empty or too long)."""
    if len(loc) == 1:
        if kind == "too_long":
            return f"history holds too many questions; the limit is {MAX_HISTORY} (send the latest)."
        return "history must be a list of earlier questions, most recent last."
    where = f"history[{loc[1]}]"
    if kind == "string_too_long":
        return f"{where} is over {max_chars} characters long; the limit is {max_chars}."
    if kind in ("string_too_short", "string_pattern_mismatch"):
        return f"{where} is empty: each earlier question must have some words."
    return f"{where} must be a question (a string)."


def add_error_handlers(app: FastAPI, max_chars: int) -> None:
    """Every error the app can raise, as `{"error": ...}` with its status."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors(), exclude={"input", "ctx", "url"})
        first = errors[0] if errors else {}
        loc = [p for p in first.get("loc", []) if p != "body"]
        if first.get("type") == "json_invalid":
            message = "The body is not valid JSON."
        elif loc[:1] == ["history"]:
            message = _history_error(loc, str(first.get("type")), max_chars)
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

    # Starlette's class, FastAPI's parent: routing's 404/405 and the body parser's 400 are raised
    # as Starlette's own and would otherwise answer {"detail": ...}.
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(BotError)
    async def bot_error(request: Request, exc: BotError) -> JSONResponse:
        status = status_of(exc)
        return JSONResponse({"error": str(exc)}, status_code=status, headers=RETRY_AFTER.get(status))
