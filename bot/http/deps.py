"""FastAPI dependencies, as `Annotated` aliases the routes declare: the service, the served index,
the API key and the rate limit.

All are `async def`: none of them waits on anything, and FastAPI runs a plain `def` dependency
in its thread pool, a thread hop each per request (under 32 clients, dependency solving and
those hops were ~30% of the event loop's samples in py-spy)."""

# No `from __future__ import annotations`: FastAPI reads these signatures.
import hmac
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from limits import RateLimitItem
from limits import parse as parse_limit
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from bot.indexing.index import Index
from bot.service import Service


async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


async def served_index(service: ServiceDep) -> Index:
    """The index the service answers from; UnavailableError (503) while there is none."""
    return service.index()


IndexDep = Annotated[Index, Depends(served_index)]


def bearer_matches(authorization: str, key: str) -> bool:
    """True when an Authorization header carries `Bearer <key>` (compared in constant time)."""
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


def _check_key(request: Request, service: Service, *, required: bool) -> None:
    """The one bearer check: 401 on a missing or wrong key; 403 when `required` and the server has none."""
    if required:
        service.check_writer()  # NotWriterError: 403
    settings = service.settings
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    if not key:
        return
    if not bearer_matches(request.headers.get("authorization", ""), key):
        raise HTTPException(401, "Send 'Authorization: Bearer <BOT_API_KEY>'.", headers={"WWW-Authenticate": "Bearer"})


async def api_key(request: Request, service: ServiceDep) -> None:
    """BOT_API_KEY, when the server has one."""
    _check_key(request, service, required=False)


async def write_key(request: Request, service: ServiceDep) -> None:
    """BOT_API_KEY, always: an open endpoint that writes to disk is not a default anyone wants."""
    _check_key(request, service, required=True)


class RateLimit:
    """BOT_RATE_LIMIT per client address, counted before the API key is checked (wrong keys spend
    the bucket too). The address is the peer's: uvicorn rewrites it from X-Forwarded-For only for
    the proxies named in BOT_FORWARDED_ALLOW_IPS, so a header the client chooses cannot buy it a
    fresh bucket."""

    def __init__(self, limit: str | None) -> None:
        self.text = limit
        self.limit: RateLimitItem | None = parse_limit(limit) if limit else None
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def __call__(self, request: Request) -> None:
        if self.limit is None:
            return
        client = request.client.host if request.client else "unknown"
        if not self.limiter.hit(self.limit, client):
            reset = self.limiter.get_window_stats(self.limit, client).reset_time
            retry = max(1, int(reset - time.time()) + 1)
            raise HTTPException(
                429, f"Rate limit of {self.text} exceeded; retry in {retry} s.", headers={"Retry-After": str(retry)}
            )


async def rate_limit(request: Request) -> None:
    limiter: RateLimit = request.app.state.rate_limit
    limiter(request)


ApiKey = Depends(api_key)
WriteKey = Depends(write_key)
Limited = Depends(rate_limit)
