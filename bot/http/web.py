"""The web page: `GET /` serves one HTML page, `/static/*` its script and style, all from the package.

No build step and no CDN: the page is plain HTML, CSS and JavaScript that talk to `/ask` and
`/articles` like any other client. A strict Content-Security-Policy (no inline script, nothing
from elsewhere) backs up the page's own rule of putting article text in with `textContent` only.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.routing import Mount
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


class _StaticFiles:
    """The package's static files, with PAGE_HEADERS on every response."""

    def __init__(self) -> None:
        self.app: ASGIApp = StaticFiles(directory=STATIC)
        self.mount: Mount | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A Mount does not name itself in the scope the way routes do; without this the request
        # metrics would count every asset under "unmatched".
        scope["route"] = self.mount

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

    files = _StaticFiles()
    files.mount = Mount("/static", app=files, name="static")
    app.router.routes.append(files.mount)
