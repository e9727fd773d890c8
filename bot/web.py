"""The web page: `GET /` serves one HTML page, `/static/*` its script and style, all from the package.

No build step and no CDN: the page is plain HTML, CSS and JavaScript that talk to `/ask` and
`/articles` like any other client. A strict Content-Security-Policy (no inline script, nothing
from elsewhere) backs up the page's own rule of putting article text in with `textContent` only.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).resolve().parent / "static"

# 'self' only: the page loads its own script and style and talks to its own API.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate every time (cheap: ETag / Last-Modified), so a new release never mixes old and new files.
    "Cache-Control": "no-cache",
}


class _PageHeaders:
    """Adds PAGE_HEADERS to every response of the wrapped static-files app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in PAGE_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def mount_web(app: FastAPI) -> None:
    """Serve the page at `/` and its assets under `/static`."""
    page = STATIC / "index.html"
    if not page.is_file():
        raise RuntimeError(f"{page} is missing: the package was installed without its static files.")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        """The question page (it also runs `/?q=...` links)."""
        return FileResponse(page, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    app.mount("/static", _PageHeaders(StaticFiles(directory=STATIC)), name="static")
