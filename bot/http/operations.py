"""Operations routes: `/healthz` (liveness), `/readyz` (readiness) and `/metrics` (Prometheus)."""

# No `from __future__ import annotations`: FastAPI reads the route signatures.
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from bot.http.deps import ServiceDep
from bot.http.errors import responses

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses=responses({503: "Not ready."}))
async def readyz(service: ServiceDep) -> JSONResponse:
    """Readiness: 200 with the index's counts once the model and index are loaded."""
    index = service.current()
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


@router.get("/metrics", response_class=Response)
async def metrics(service: ServiceDep) -> Response:
    """Prometheus metrics: requests, latency, answers, index size and age, encode batches."""
    body, content_type = service.metrics.render()
    return Response(body, media_type=content_type)
