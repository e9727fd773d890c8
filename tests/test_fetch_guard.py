"""Fetching URLs someone else chose: the checked address is the one connected to, the timeout is a
deadline for the whole fetch, and malformed URLs or charsets are refused with a reason."""

from __future__ import annotations

import gzip
import re
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.articles.corpus import load_corpus
from bot.articles.fetching import decode_body, fetch
from bot.errors import IngestError
from tests.conftest import write_article
from tests.test_ingest import Site, article_html

PUBLIC = "93.184.216.34"  # a global address; with the fix the connection goes here (and fails offline)


@pytest.fixture
def site() -> Iterator[Site]:
    with Site() as running:
        yield running


def test_a_name_rebinding_to_loopback_after_the_check_is_never_connected_to(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = site.page(
        "/secret", article_html("Internal memo of Quillfield Ltd", ["Only for the intranet of Quillfield."])
    )
    port = int(url.split(":")[2].split("/")[0])
    hits: list[str] = []
    real_handler = site.server.RequestHandlerClass

    class Counting(real_handler):  # type: ignore[misc, valid-type]
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            hits.append(self.path)
            super().do_GET()

    site.server.RequestHandlerClass = Counting
    lookups: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def rebinding(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        if host != "rebind.example":  # an address literal resolves to itself, as in real life
            return real_getaddrinfo(host, *args, **kwargs)
        # First answer public (passes the check), every later answer loopback (where the page is).
        lookups.append(host)
        address = PUBLIC if len(lookups) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with pytest.raises(IngestError):
        fetch(f"http://rebind.example:{port}/secret", timeout=2)
    assert hits == [], "the fetch reached the loopback server after the check passed a public address"
    assert lookups == ["rebind.example"], "the host was resolved more than once"


class DripServer:
    """Sends its headers, then one byte of body every `interval` seconds for `count` bytes."""

    def __init__(self, count: int, interval: float) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/drip"
        self.count, self.interval = count, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                body = b"Drip of Brackwater Mills. " * 4
                try:
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        + f"Content-Length: {self.count}\r\n\r\n".encode()
                    )
                    for n in range(self.count):
                        if self.stop.wait(self.interval):
                            return
                        conn.sendall(body[n % len(body) : n % len(body) + 1])
                except OSError:
                    continue  # the client gave up: that is the point

    def __enter__(self) -> DripServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.listener.close()


def test_the_fetch_timeout_is_a_deadline_for_the_whole_body() -> None:
    # 20 bytes, one every 0.2 s: each read is quick, the whole body takes 4 s.
    with DripServer(count=20, interval=0.2) as drip:
        started = time.monotonic()
        with pytest.raises(IngestError, match=r"timed out after 1 s"):
            fetch(drip.url, allow_private=True, timeout=1.0)
        assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:99999/", "http://[::1", "http://[not-an-address]/", "http://host:port/", "https://"],
)
def test_a_malformed_url_is_refused_with_a_reason(url: str) -> None:
    with pytest.raises(IngestError, match=r"not a valid URL|has no host"):
        fetch(url, allow_private=True)


def test_a_redirect_to_a_malformed_url_is_refused_with_a_reason(site: Site) -> None:
    site.redirect("/bad", "http://[::1")
    with pytest.raises(IngestError, match=r"(?i)invalid URL|not a valid URL"):
        fetch(site.url + "/bad", allow_private=True)


@pytest.mark.parametrize("charset", ["punycode", "base64", "no-such-charset"])
def test_a_page_declaring_an_unusable_charset_is_decoded_or_refused_never_crashes(charset: str, site: Site) -> None:
    html = (
        "<html><head><title>Harbour news of Quillfield</title></head><body><article>"
        "<p>The ferry to Quillfield runs twice a day now, said the harbour master of Quillfield.</p>"
        "<p>Tickets cost two crowns each.</p></article></body></html>"
    )
    assert "Quillfield" in decode_body(html.encode(), charset, "page")
    url = site.page("/page", html.encode(), content_type=f"text/html; charset={charset}")
    assert "Quillfield" in fetch(url, allow_private=True).text


def test_bot_ingest_rejects_a_malformed_url_and_still_ingests_the_good_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    good = write_article(incoming, "good.md", "Quillfield opens a library", "The library of Quillfield opened today.")
    corpus = tmp_path / "corpus"
    code = main(["ingest", "http://[::1", str(good), "--corpus", str(corpus), "--index", str(tmp_path / "index")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.err
    assert "rejected  http://[::1" in captured.err and "not a valid URL" in captured.err
    assert [a.title for a in load_corpus(corpus).articles] == ["Quillfield opens a library"]


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/", "http://[::1", "https://[::1]:0x50/"])
def test_post_articles_with_a_malformed_url_is_a_422_with_the_reason(
    url: str, allow_private: bool, seed_corpus: Path, fake_index: Path
) -> None:
    from fastapi.testclient import TestClient

    from bot.http.app import create_app
    from bot.settings import Settings
    from tests.conftest import FakeEmbedder, wait_until

    settings = Settings(
        corpus_dir=seed_corpus, index_dir=fake_index, api_key="s3cret", allow_private_urls=allow_private
    )
    with TestClient(create_app(settings, embedder=FakeEmbedder()), raise_server_exceptions=False) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        headers = {"Authorization": "Bearer s3cret"}
        alone = client.post("/articles", json={"url": url}, headers=headers)
        assert alone.status_code == 422 and "not a valid URL" in alone.json()["error"]
        # With a title and text the URL is only metadata, and still must parse.
        fields = {"title": "Quillfield fair", "text": "The fair of Quillfield opened.", "url": url}
        assert client.post("/articles", json=fields, headers=headers).status_code == 422


def test_a_feed_declaring_an_unusable_codec_is_rejected_and_the_batch_goes_on(site: Site, tmp_path: Path) -> None:
    from bot.articles.ingest import CorpusWriter, read_sources

    feed = site.page(
        "/feed.xml",
        '<?xml version="1.0" encoding="punycode"?><rss><channel><title>Quillfield</title></channel></rss>',
        content_type="application/rss+xml",
    )
    page = site.page("/ok", article_html("Brackwater mill reopens", ["The mill of Brackwater reopened on Monday."]))
    items = read_sources([page], [feed], allow_private=True, seen=set())
    report = CorpusWriter(tmp_path / "corpus", tmp_path / ".lock").accept(items)
    outcomes = {o.origin: o for o in report.outcomes}
    assert outcomes[page].status == "added"
    assert outcomes[feed].status == "rejected" and "not an RSS or Atom feed" in (outcomes[feed].detail or "")


BOMB_BYTES = 64 * 1024 * 1024


@pytest.mark.parametrize(
    ("encoding", "layers", "refusal"),
    [
        ("gzip", 1, "the body is over the 5242880-byte limit"),
        ("gzip, gzip", 2, "content encoding 'gzip, gzip' is not supported"),
        ("gzip", 2, "the text is not UTF-8"),  # one layer declared: the inner one is binary data
        ("br", 1, "content encoding 'br' is not supported"),
    ],
    ids=["gzip", "stacked", "nested-undeclared", "unknown"],
)
def test_a_compressed_bomb_is_refused_within_bounded_memory(
    site: Site, encoding: str, layers: int, refusal: str
) -> None:
    body = bytes(BOMB_BYTES)
    for _ in range(layers):
        body = gzip.compress(body, compresslevel=9)
    assert len(body) < 100_000  # 64 MB of zeros, a few kilobytes on the wire
    url = site.page("/bomb", body, **{"Content-Encoding": encoding})
    tracemalloc.start()
    try:
        with pytest.raises(IngestError, match=re.escape(refusal)):
            fetch(url, allow_private=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The 5 MiB limit, and the chunks joined: never the 64 MiB inflated.
    assert peak < 16 * 1024 * 1024, f"{peak / 2**20:.0f} MiB at the peak"


def test_a_gzipped_page_is_fetched_as_its_text(site: Site) -> None:
    html = article_html("Tessary quay reopens", ["The quay of Tessary reopened after a refit."])
    url = site.page("/gz", gzip.compress(html.encode()), **{"Content-Encoding": "gzip"})
    assert "The quay of Tessary reopened" in fetch(url, allow_private=True).text
