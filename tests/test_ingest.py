"""Ingesting files, folders, .jsonl, pages and feeds (served from a loopback HTTP server)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.answer.answering import answer
from bot.answer.asking import Ask
from bot.articles.corpus import load_corpus
from bot.articles.fetching import MAX_BYTES, fetch
from bot.errors import IngestError
from bot.indexing.stores import FaissStore
from bot.indexing.versions import open_index
from bot.service import ingest
from tests.conftest import FakeEmbedder, write_article

Route = tuple[int, dict[str, str], bytes]


class Site:
    """A loopback web server answering from a table of path → (status, headers, body)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # close after each response: a body may have no length

            def do_GET(self) -> None:
                if self.path == "/slow":
                    time.sleep(3)  # the server is slow on purpose; the client must give up first
                status, headers, body = site.routes.get(
                    self.path.split("?")[0], (404, {"Content-Type": "text/plain"}, b"gone")
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers and not headers.get("X-No-Length"):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # The client may stop reading (the size cap): that is the point.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def page(self, path: str, body: str | bytes, content_type: str = "text/html; charset=utf-8", **headers: str) -> str:
        data = body.encode() if isinstance(body, str) else body
        self.routes[path] = (200, {"Content-Type": content_type, **headers}, data)
        return self.url + path

    def redirect(self, path: str, target: str) -> str:
        self.routes[path] = (302, {"Location": target}, b"")
        return self.url + path

    def __enter__(self) -> Site:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def article_html(title: str, paragraphs: list[str], *, canonical: str = "", date: str = "", author: str = "") -> str:
    head = f"<title>{title} | The Example Times</title>"
    head += f'<link rel="canonical" href="{canonical}">' if canonical else ""
    head += f'<meta property="article:published_time" content="{date}">' if date else ""
    head += f'<meta name="author" content="{author}">' if author else ""
    head += '<meta property="og:site_name" content="The Example Times">'
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<!doctype html><html><head>{head}</head><body><nav><a href='/'>Home</a> | <a href='/world'>World</a></nav>"
        f"<article><h1>{title}</h1>{body}</article><footer>© The Example Times. All rights reserved.</footer></body></html>"
    )


ABILENE = [
    "The first Stargate campus is being built in Abilene, Texas, where construction began last year.",
    "Officials said the site will draw on a mix of grid power and on-site gas generation to run its chips.",
    "Around 1,500 workers are on the site at the peak of construction, according to the developer.",
]
CHIPS = [
    "Nvidia will supply the accelerators for the data centres, the companies said in a joint statement.",
    "The first deliveries of the new systems are planned for the second half of the year.",
]


LONGER = [
    f"Paragraph {n} adds detail number {n} about the {topic} of the project, as reported by the companies."
    for n, topic in enumerate(["budget", "timeline", "staffing", "cooling", "water use", "grid links", "permits"] * 3)
]


@pytest.fixture
def site() -> Iterator[Site]:
    with Site() as running:
        yield running


def rss(site: Site, items: list[str]) -> str:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Example Wire</title>'
        f"<link>{site.url}/</link><description>News</description>{''.join(items)}</channel></rss>"
    )


def test_pages_and_a_feed_from_a_loopback_server_are_ingested(
    site: Site, seed_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    page = (
        site.page(
            "/news/abilene",
            article_html(
                "Stargate breaks ground in Abilene",
                ABILENE,
                canonical=f"{site.url}/news/abilene",
                date="2025-02-03T10:00:00Z",
                author="Jane Doe",
            ),
        )
        + "?utm_source=feed"
    )
    site.page("/news/chips", article_html("Nvidia to supply Stargate chips", CHIPS, date="2025-02-04"))
    feed = site.page(
        "/feed.xml",
        rss(
            site,
            [
                f"<item><title>Chips</title><link>{site.url}/news/chips</link>"
                "<pubDate>Tue, 04 Feb 2025 08:00:00 GMT</pubDate></item>",
                "<item><title>Power deal signed for the campus</title><pubDate>Wed, 05 Feb 2025 08:00:00 GMT</pubDate>"
                "<description>&lt;p&gt;A utility agreed to supply 1.2 gigawatts to the campus.&lt;/p&gt;"
                "&lt;p&gt;The deal runs for fifteen years.&lt;/p&gt;</description></item>",
                f"<item><title>Same page again</title><link>{site.url}/news/abilene</link></item>",
            ],
        ),
        content_type="application/rss+xml",
    )
    index_dir = tmp_path / "index"
    report, build = ingest([page], [feed], seed_corpus, FaissStore(index_dir), fake_embedder, allow_private=True)
    statuses = [o.status for o in report.outcomes]
    # The last entry links to the page ingested just before: same canonical URL, same text.
    assert statuses == ["added", "added", "added", "duplicate"], [o.line() for o in report.outcomes]
    assert build is not None and build.articles == 4
    articles = {a.title: a for a in open_index(index_dir).articles}
    abilene = articles["Stargate breaks ground in Abilene"]
    assert abilene.url == f"{site.url}/news/abilene"  # the canonical link, not the tracking one
    assert (abilene.date, abilene.author, abilene.source) == ("2025-02-03", "Jane Doe", "The Example Times")
    assert abilene.text.split("\n\n") == ABILENE  # main text only: no menu, no headline, no footer
    assert articles["Nvidia to supply Stargate chips"].date == "2025-02-04"
    power = articles["Power deal signed for the campus"]
    assert power.text == "A utility agreed to supply 1.2 gigawatts to the campus.\n\nThe deal runs for fifteen years."
    assert power.date == "2025-02-05" and power.source == "Example Wire"
    assert all(Path(a.path or "").parent == seed_corpus for a in articles.values())
    # Every entry is seen now: a second pass adds nothing and builds nothing.
    again, rebuilt = ingest([], [feed], seed_corpus, FaissStore(index_dir), fake_embedder, allow_private=True)
    assert [o.status for o in again.outcomes] == ["duplicate"] and rebuilt is None


def test_loopback_urls_are_refused_unless_allowed(site: Site, seed_corpus: Path, tmp_path: Path) -> None:
    url = site.page("/news/abilene", article_html("Stargate breaks ground in Abilene", ABILENE))
    report, _ = ingest([url], [site.url + "/feed.xml"], seed_corpus, FaissStore(tmp_path / "index"), FakeEmbedder())
    assert [o.status for o in report.outcomes] == ["rejected", "rejected"]
    for outcome in report.outcomes:
        assert "non-public address 127.0.0.1" in (outcome.detail or "")
        assert "BOT_ALLOW_PRIVATE_URLS=1" in (outcome.detail or "")
    assert len(load_corpus(seed_corpus).articles) == 1
    with pytest.raises(IngestError, match="non-public address"):
        fetch("http://169.254.169.254/latest/meta-data/")  # the cloud metadata service
    with pytest.raises(IngestError, match="only http and https"):
        fetch("file:///etc/passwd", allow_private=True)


def test_bad_inputs_are_reported_and_skipped_without_stopping_the_batch(
    site: Site, seed_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    files = tmp_path / "incoming"
    files.mkdir()
    write_article(files, "good.md", "Power for Abilene", "A utility will supply the campus with power.")
    (files / "broken.md").write_text("---\ntitle: [unclosed\n---\nText.\n", encoding="utf-8")
    (files / "latin1.txt").write_bytes("Caf\xe9 opens\nThe caf\xe9 opened near the site.".encode("latin-1"))
    (files / "empty.html").write_text("<html><head><title>Nothing</title></head><body></body></html>")
    good_page = site.page("/ok", article_html("Chips for Stargate", CHIPS))
    latin = site.page(
        "/latin",
        article_html("Café near the campus", ["The café by the Abilene site serves crème brûlée to builders."]).encode(
            "latin-1"
        ),
        content_type="text/html; charset=iso-8859-1",
    )
    big = site.page("/big", b"<html>" + b"x" * (MAX_BYTES + 10) + b"</html>")
    unlabelled_big = site.page("/stream", b"x" * (MAX_BYTES + 10), content_type="text/plain", **{"X-No-Length": "1"})
    pdf = site.page("/paper.pdf", b"%PDF-1.7", content_type="application/pdf")
    site.redirect("/loop", "/loop")
    hops = [site.redirect(f"/hop{n}", f"/hop{n + 1}") for n in range(5)]
    site.page("/hop5", article_html("Five hops away", ["An article five redirects away is still fetched fine."]))
    feed = site.page(
        "/feed.xml",
        rss(site, [f"<item><title>Missing</title><link>{site.url}/missing</link></item>"]),
        content_type="application/rss+xml",
    )
    not_a_feed = site.page("/notfeed", "just words, not xml", content_type="text/plain")
    sources = [str(files), good_page, latin, big, unlabelled_big, pdf, site.url + "/loop", hops[0]]
    report, build = ingest(
        sources, [feed, not_a_feed], seed_corpus, FaissStore(tmp_path / "index"), fake_embedder, allow_private=True
    )
    outcome = {o.origin: o for o in report.outcomes}
    assert outcome[str(files / "good.md")].status == "added"
    assert "front matter is not valid YAML" in (outcome[str(files / "broken.md")].detail or "")
    assert "not UTF-8" in (outcome[str(files / "latin1.txt")].detail or "")
    assert "no article text" in (outcome[str(files / "empty.html")].detail or "")
    assert outcome[good_page].status == outcome[latin].status == outcome[hops[0]].status == "added"
    assert "over the 5242880-byte limit" in (outcome[big].detail or "")
    assert "over the 5242880-byte limit" in (outcome[unlabelled_big].detail or "")
    assert "content type 'application/pdf' is not one of" in (outcome[pdf].detail or "")
    assert "more than 5 redirects" in (outcome[site.url + "/loop"].detail or "")
    entry = next(o for o in report.outcomes if o.origin.startswith(f"{feed} entry 1"))
    assert entry.status == "rejected" and "HTTP 404" in (entry.detail or "")
    assert "not an RSS or Atom feed" in (outcome[not_a_feed].detail or "")
    assert report.count("added") == 4 and report.count("rejected") == 9
    assert build is not None and build.articles == 5
    titles = {a.title: a for a in open_index(tmp_path / "index").articles}
    assert "crème brûlée" in titles["Café near the campus"].text  # decoded by the declared charset
    assert "Five hops away" in titles


def test_a_slow_server_times_out(site: Site) -> None:
    site.page("/slow", "late")
    with pytest.raises(IngestError, match=r"timed out after 0\.5 s"):
        fetch(site.url + "/slow", allow_private=True, timeout=0.5)


def test_duplicates_are_skipped_updates_replace_and_copies_are_linked(
    seed_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    text = " ".join(ABILENE + CHIPS + LONGER)
    write_article(incoming, "a.md", "Stargate breaks ground", text, url="https://example.com/a")
    index_dir = tmp_path / "index"
    first, _ = ingest([str(incoming / "a.md")], [], seed_corpus, FaissStore(index_dir), fake_embedder)
    assert [o.status for o in first.outcomes] == ["added"]
    original = first.outcomes[0].id
    assert original is not None
    # The same page again (tracking parameters, trailing slash), and the same text elsewhere.
    write_article(incoming, "b.md", "Stargate breaks ground", text, url="https://EXAMPLE.com/a/?utm_source=x")
    write_article(incoming, "c.md", "A headline of our own", text.upper().replace(".", " ."), url="https://b.example/c")
    # A syndicated copy: a dateline and a credit line added, one sentence reworded.
    copy = "ABILENE, Texas (Wire) — " + text.replace("last year", "in 2024") + " Reporting by Wire staff."
    write_article(incoming, "d.md", "Stargate site rises in Texas", copy, url="https://wire.example/d", source="Wire")
    second, build = ingest(
        [str(incoming / n) for n in ("b.md", "c.md", "d.md")], [], seed_corpus, FaissStore(index_dir), fake_embedder
    )
    assert [o.status for o in second.outcomes] == ["duplicate", "duplicate", "linked"]
    assert all(o.id == original for o in second.outcomes[:2])
    assert build is not None and build.articles == 2 and build.linked == 1  # the copy is not indexed
    index = open_index(index_dir)
    result = answer(index, fake_embedder, Ask("How many workers are on the Abilene site?", 1))
    ref = result.model_dump()["quotes"][0]["article"]
    assert ref["id"] == original
    assert ref["also_reported_by"] == [
        {
            "title": "Stargate site rises in Texas",
            "url": "https://wire.example/d",
            "source": "Wire",
            "date": "2025-01-23",
        }
    ]
    from bot.cli.asking import format_answer

    assert "\n  also reported by Wire https://wire.example/d\n" in format_answer(result)
    # A changed text at the same URL replaces the article, keeping its id and file.
    write_article(
        incoming, "e.md", "Stargate breaks ground", "A corrected story: 2,000 workers.", url="https://example.com/a"
    )
    third, _ = ingest([str(incoming / "e.md")], [], seed_corpus, FaissStore(index_dir), fake_embedder)
    assert [(o.status, o.id) for o in third.outcomes] == [("updated", original)]
    updated = open_index(index_dir)
    assert updated.articles[updated.article_number[original]].text == "A corrected story: 2,000 workers."
    # The copy no longer matches the corrected original closely... but stays linked to it by id.
    assert len(list(seed_corpus.glob("*.md"))) == 3


def test_front_matter_files_keep_their_metadata_and_the_corpus_reads_them_back(
    seed_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    import json

    incoming = tmp_path / "in"
    incoming.mkdir()
    write_article(incoming, "x.md", "Listed", "Body with: colons\n\n- and a list", date="2025-03-01", source="S")
    (incoming / "plain.txt").write_text("A plain title\n\nThe body of a plain text article.", encoding="utf-8")
    lines = [
        {
            "title": 'Quotes: "yes" & no #1',
            "text": "JSON text here.",
            "url": "https://j.example/1",
            "date": "2025-03-02",
        },
        {"title": "Bad url", "text": "x", "url": "ftp://x"},
    ]
    (incoming / "many.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    report, _ = ingest([str(incoming)], [], seed_corpus, FaissStore(tmp_path / "index"), fake_embedder)
    assert sorted(o.status for o in report.outcomes) == ["added", "added", "added", "rejected"], [
        o.line() for o in report.outcomes
    ]
    corpus = load_corpus(seed_corpus)
    assert not corpus.errors
    by_title = {a.title: a for a in corpus.articles}
    assert by_title["Listed"].text == "Body with: colons\n\n- and a list"
    assert (by_title["Listed"].source, by_title["Listed"].date) == ("S", "2025-03-01")
    assert by_title["A plain title"].text == "The body of a plain text article."
    tricky = by_title['Quotes: "yes" & no #1']
    assert (tricky.url, tricky.id) == ("https://j.example/1", "2025-03-02-quotes-yes-no-1")
    assert not list(seed_corpus.glob(".*")), "no temporary file is left behind"


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("192.168.0.10", False),
        ("169.254.169.254", False),
        ("::1", False),
        ("fe80::1", False),
        ("::ffff:127.0.0.1", False),
        ("0.0.0.0", False),
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
    ],
)
def test_hosts_resolving_to_non_public_addresses_are_refused(
    address: str, allowed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.articles.fetching import check_address

    # DNS answers with `address` for any name (a name that rebinds to the intranet, say).
    monkeypatch.setattr("socket.getaddrinfo", lambda *a, **k: [(0, 0, 0, "", (address, 80))])
    if allowed:
        check_address("http://news.example/story", allow_private=False)
    else:
        with pytest.raises(IngestError, match="non-public address"):
            check_address("http://news.example/story", allow_private=False)
    check_address("http://news.example/story", allow_private=True)


def test_a_long_lived_writer_fingerprints_each_article_once(
    seed_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.articles.duplicates
    from bot.articles.ingest import CorpusWriter
    from bot.articles.sources import Draft

    calls: list[str] = []
    real = bot.articles.duplicates.fingerprint

    def counted(text: str) -> object:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(bot.articles.duplicates, "fingerprint", counted)
    writer = CorpusWriter(seed_corpus, tmp_path / ".ingest.lock")
    first = writer.accept([Draft(title="One", text="The first new article.", origin="test")])
    second = writer.accept([Draft(title="Two", text="The second new article.", origin="test")])
    assert [o.status for o in first.outcomes + second.outcomes] == ["added", "added"]
    assert len(calls) == 2  # the seed once, then the first article once: never again


def test_articles_with_the_same_long_headline_get_distinct_ids(tmp_path: Path) -> None:
    from bot.articles.ingest import CorpusWriter
    from bot.articles.sources import draft_from_fields

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    writer = CorpusWriter(corpus, tmp_path / ".lock")
    title = "Stargate live updates: what we know about the OpenAI and SoftBank project so far today"
    ids: list[str] = []
    for n in range(3):
        draft = draft_from_fields(
            {
                "title": title,
                "text": f"Update number {n} with different words each time {n * 7}.",
                "date": "2025-01-23",
            },
            f"t{n}",
        )
        outcome = writer.accept([draft]).outcomes[0]
        assert outcome.status == "added", outcome
        assert outcome.id is not None
        ids.append(outcome.id)
    assert len(set(ids)) == 3 and all(len(i) <= 80 for i in ids)
    assert len(load_corpus(corpus).articles) == 3


def test_shared_and_special_purpose_addresses_are_refused() -> None:
    from bot.articles.fetching import check_address

    for url in ("http://100.100.100.200/latest/meta-data", "http://192.0.2.1/", "http://[::1]/", "http://0.0.0.0/"):
        with pytest.raises(IngestError, match="non-public address"):
            check_address(url, allow_private=False)


def test_a_file_named_like_another_article_is_added_beside_it_not_over_it(
    seed_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    store = FaissStore(tmp_path / "index")
    first, second = tmp_path / "in1", tmp_path / "in2"
    first.mkdir()
    second.mkdir()
    bakery = "The Quillfield bakery won the regional bread prize for its rye loaf."
    factory = "A widget factory opened in Tessary Point, with 300 jobs promised by spring."
    write_article(first, "a1.md", "Quillfield bakery wins prize", bakery, date="2025-03-01")
    write_article(second, "a1.md", "Widget factory opens in Tessary Point", factory, date="2025-03-02")
    report, _ = ingest([str(first)], [], seed_corpus, store, fake_embedder)
    assert [(o.status, o.id) for o in report.outcomes] == [("added", "a1")]
    report, _ = ingest([str(second)], [], seed_corpus, store, fake_embedder)
    # Only the file's name said "a1": the factory gets an id of its own, and says so.
    (outcome,) = report.outcomes
    assert (outcome.status, outcome.id) == ("added", "2025-03-02-widget-factory-opens-in-tessary-point")
    assert "'a1' (its file's name) is already 'Quillfield bakery wins prize'" in (outcome.detail or "")
    texts = {a.id: a.text for a in load_corpus(seed_corpus).articles}
    assert texts["a1"] == bakery and texts[str(outcome.id)] == factory
    # Sent again, it is the article it became; the bakery's own file, edited, still updates it.
    again, _ = ingest([str(second)], [], seed_corpus, store, fake_embedder)
    assert [(o.status, o.id) for o in again.outcomes] == [("duplicate", outcome.id)]
    write_article(first, "a1.md", "Quillfield bakery wins prize", bakery + " It also won for its scones.")
    edited, _ = ingest([str(first)], [], seed_corpus, store, fake_embedder)
    assert [(o.status, o.id) for o in edited.outcomes] == [("updated", "a1")]
    # An explicit id replaces, whatever the title.
    write_article(second, "other.md", "Quillfield bakery closes", "The bakery closed for good.", id="a1")
    replaced, _ = ingest([str(second / "other.md")], [], seed_corpus, store, fake_embedder)
    assert [(o.status, o.id) for o in replaced.outcomes] == [("updated", "a1")]
    assert {a.id: a.title for a in load_corpus(seed_corpus).articles}["a1"] == "Quillfield bakery closes"
