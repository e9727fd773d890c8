"""A loopback news site with an RSS feed, for the feed poller's tests and `make bench`.

It serves `/feed.xml` (its entries, newest first, with an ETag and Last-Modified, answering 304 to
a matching If-None-Match or If-Modified-Since) and one article page per entry under `/news/`. Every
request is counted, with its headers. `fail` makes the feed answer an error status (with a
Retry-After), hang past the client's deadline, or send bytes that are no feed.

Every article is made up: places, companies and figures that do not exist.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOWNS = ["Quillfield", "Brackwater", "Ostmere", "Harrowgate Sound", "Vellin", "Carrowby", "Tessary Point", "Lunmarsh"]
FIRMS = ["Ostmere Tidal Works", "Pellow & Vane", "Corrin Lightrail", "Marrow Bay Salt", "Ashgrove Kilns"]


@dataclass(frozen=True)
class Story:
    slug: str
    title: str
    published: float  # seconds since the epoch
    paragraphs: tuple[str, ...]


def made_up_story(number: int, published: float) -> Story:
    """A short, plainly invented local-news article, different for each number."""
    town, firm = TOWNS[number % len(TOWNS)], FIRMS[number % len(FIRMS)]
    pier = 40 + number % 900
    paragraphs = (
        f"The council of {town} approved plan number {number} on Tuesday: a pier of {pier} metres "
        f"to be built by {firm}.",
        f"{firm} said the work in {town} would start in the spring and employ {12 + number % 70} people.",
        f"The harbour master of {town} said ferries would keep running while the pier of plan {number} is built.",
    )
    return Story(f"plan-{number}", f"{town} approves pier plan {number}", published, paragraphs)


def page_html(story: Story) -> str:
    body = "".join(f"<p>{p}</p>" for p in story.paragraphs)
    return (
        f"<!doctype html><html><head><title>{story.title} | The Harbour Gazette</title>"
        '<meta property="og:site_name" content="The Harbour Gazette"></head>'
        f"<body><nav><a href='/'>Home</a></nav><article><h1>{story.title}</h1>{body}</article>"
        "<footer>The Harbour Gazette, a made-up paper.</footer></body></html>"
    )


class FeedSite:
    """The site on a free loopback port; use as a context manager."""

    def __init__(self) -> None:
        self.stories: list[Story] = []  # newest first, as feeds list them
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.failure: tuple[str, dict[str, str]] | None = None
        self.hang_seconds = 3.0
        self.gone: set[str] = set()  # slugs whose pages answer 404
        self._lock = threading.Lock()
        self._xml: tuple[bytes, str, str] | None = None
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                with site._lock:
                    site.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                if self.path == "/feed.xml":
                    self.feed()
                elif self.path.startswith("/news/"):
                    story = next((s for s in site.stories if f"/news/{s.slug}" == self.path), None)
                    story = None if story is None or story.slug in site.gone else story
                    if story is None:
                        self.send("404 Not Found", {"Content-Type": "text/plain"}, b"no such story")
                    else:
                        self.send("200 OK", {"Content-Type": "text/html; charset=utf-8"}, page_html(story).encode())
                else:
                    self.send("404 Not Found", {"Content-Type": "text/plain"}, b"no such page")

            def feed(self) -> None:
                if site.failure is not None:
                    kind, headers = site.failure
                    if kind == "hang":
                        time.sleep(site.hang_seconds)  # past the client's deadline, on purpose
                        self.send("200 OK", {"Content-Type": "application/rss+xml"}, b"<rss/>")
                    elif kind == "garbage":
                        self.send("200 OK", {"Content-Type": "application/xml"}, b"\x00\x01 not <a feed at all")
                    else:
                        self.send(kind, {"Content-Type": "text/plain", **headers}, b"try later")
                    return
                body, etag, modified = site.xml()
                validators = {"ETag": etag, "Last-Modified": modified}
                if self.headers.get("If-None-Match") == etag or (
                    not self.headers.get("If-None-Match") and self.headers.get("If-Modified-Since") == modified
                ):
                    self.send("304 Not Modified", validators, b"")
                    return
                self.send("200 OK", {"Content-Type": "application/rss+xml", **validators}, body)

            def send(self, status: str, headers: dict[str, str], body: bytes) -> None:
                code, _, reason = status.partition(" ")
                self.send_response(int(code), reason)
                for name, value in headers.items():
                    self.send_header(name, value)
                if code != "304":
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.feed_url = self.url + "/feed.xml"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def publish(self, *stories: Story) -> None:
        """Put stories at the top of the feed (newest first)."""
        with self._lock:
            self.stories[:0] = sorted(stories, key=lambda s: -s.published)
            self._xml = None

    def fail(self, kind: str | None, **headers: str) -> None:
        """`"500 Internal Server Error"`, `"429 Too Many Requests"` (headers: Retry-After), "hang",
        "garbage", or None to serve the feed again."""
        self.failure = None if kind is None else (kind, headers)

    def xml(self) -> tuple[bytes, str, str]:
        with self._lock:
            if self._xml is None:
                items = "".join(
                    f"<item><title>{s.title}</title><link>{self.url}/news/{s.slug}</link>"
                    f"<guid>{self.url}/news/{s.slug}</guid><pubDate>{formatdate(s.published, usegmt=True)}</pubDate>"
                    f"<description>{s.paragraphs[0]}</description></item>"
                    for s in self.stories
                )
                body = (
                    '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>The Harbour Gazette'
                    f"</title><link>{self.url}/</link><description>Made-up harbour news</description>{items}"
                    "</channel></rss>"
                ).encode()
                newest = max((s.published for s in self.stories), default=0.0)
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                self._xml = (body, etag, formatdate(newest, usegmt=True))
            return self._xml

    def hits(self, prefix: str) -> list[dict[str, str]]:
        """The headers of every request whose path starts with `prefix`."""
        with self._lock:
            return [headers for path, headers in self.requests if path.startswith(prefix)]

    def __enter__(self) -> FeedSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
