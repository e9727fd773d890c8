"""Where new articles come from: files, folders, .jsonl collections, web pages and feeds.

Every reader yields `Draft`s (an article not yet in the corpus) or `Rejection`s (a source, or
one entry of it, that cannot be read, with the reason), so one bad input never stops a batch.
HTML is reduced to the article's main text by trafilatura, keeping title, date, author, site
name and canonical URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.articles.corpus import (
    clean_text,
    decode,
    is_ignored,
    json_lines,
    make_article,
    read_front_matter,
    slugify,
)
from bot.articles.duplicates import canonical_url
from bot.articles.fetching import FEED_TYPES, HTML_TYPES, TEXT_TYPES, decode_body, fetch, parse_url
from bot.errors import CorpusError, IngestError

FILE_SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm", ".jsonl"}


@dataclass(frozen=True)
class Draft:
    """An article read from a source, before duplicate checks; `origin` says where from."""

    title: str
    text: str
    origin: str
    date: str | None = None
    url: str | None = None
    source: str | None = None
    author: str | None = None
    id: str | None = None  # only when the source named one
    # True when `id` is only the file's name (index.md, story.txt): a suggestion, which another
    # article of that id keeps (see CorpusWriter); an explicit `id:` or the same URL replaces.
    id_from_name: bool = False


@dataclass(frozen=True)
class Rejection:
    origin: str
    reason: str

    @classmethod
    def of(cls, origin: str, error: Exception) -> Rejection:
        """The rejection for `error`, without repeating the origin the message may start with."""
        reason = str(getattr(error, "reason", None) or error)
        return cls(origin, reason.removeprefix(f"{origin}: "))


def draft_from_fields(
    data: dict[str, Any], origin: str, article_id: str | None = None, *, id_from_name: bool = False
) -> Draft:
    """Validate title/text/date/url/source/author as the corpus would; CorpusError if invalid."""
    article = make_article(data, origin, default_id=article_id or "new", path=None)
    if article.url and not re.match(r"https?://", article.url):
        raise CorpusError(origin, f"'url' must be an http(s) URL, got {article.url!r}")
    if article.url:
        try:
            parse_url(article.url)
        except IngestError as exc:
            raise CorpusError(origin, str(exc)) from None
    return Draft(
        title=article.title,
        text=article.text,
        origin=origin,
        date=article.date,
        url=article.url,
        source=article.source,
        author=article.author,
        id=article_id,
        id_from_name=id_from_name,
    )


def draft_from_html(html: str, origin: str, url: str | None = None) -> Draft:
    """The main text and metadata of an article page."""
    import trafilatura

    try:
        document = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False)
    # A parser fed a stranger's page: whatever lxml or trafilatura raise on it (a declared codec
    # that cannot decode, nesting past a limit) is that page's problem, not the batch's.
    except (ValueError, UnicodeError, LookupError, RecursionError, TypeError) as exc:
        raise CorpusError(origin, f"the page cannot be parsed as HTML ({type(exc).__name__}: {exc})") from None
    meta: dict[str, Any] = {} if document is None else dict(document.as_dict())  # type: ignore[union-attr]
    text = str(meta.get("text") or "")
    title = " ".join(str(meta.get("title") or "").split())
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and title and lines[0] == title:
        lines = lines[1:]  # the headline is the title, not the first sentence
    if not lines:
        raise CorpusError(origin, "no article text found in the page")
    if not title:
        raise CorpusError(origin, "the page has no title")
    data = {
        "title": title,
        "text": "\n\n".join(lines),
        "date": meta.get("date"),
        "url": meta.get("url") or url,
        "source": meta.get("sitename") or meta.get("hostname"),
        "author": meta.get("author"),
    }
    return draft_from_fields(data, origin)


def draft_from_plain(text: str, origin: str, url: str | None = None) -> Draft:
    """Plain text without a header: the first line is the title, the rest the article."""
    lines = clean_text(text).split("\n", 1)
    if len(lines) < 2 or not lines[1].strip():
        raise CorpusError(origin, "plain text needs a title line followed by the article")
    return draft_from_fields({"title": lines[0], "text": lines[1], "url": url}, origin)


def read_file(path: Path) -> Iterator[Draft | Rejection]:
    """One article file (.md/.txt with or without front matter, .html) or a .jsonl collection."""
    where = str(path)
    try:
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            yield from read_collection(path)
        elif suffix in (".html", ".htm"):
            yield draft_from_html(decode_body(path.read_bytes(), None, where), where)
        elif suffix in (".md", ".markdown", ".txt"):
            raw = decode(path.read_bytes(), where)
            if raw.lstrip("\ufeff").startswith("---"):
                fields = read_front_matter(path)
                article = make_article(fields, where, default_id=slugify(path.stem), path=where)
                data = {k: getattr(article, k) for k in ("title", "text", "date", "url", "source", "author")}
                yield draft_from_fields(data, where, article.id, id_from_name="id" not in fields)
            else:
                yield draft_from_plain(raw, where)
        else:
            yield Rejection(
                where, f"cannot ingest {suffix or 'files without a suffix'}: use .md, .txt, .html or .jsonl"
            )
    except (CorpusError, IngestError) as exc:
        yield Rejection.of(where, exc)
    except OSError as exc:
        yield Rejection(where, exc.strerror or str(exc))


def read_collection(path: Path) -> Iterator[Draft | Rejection]:
    """A .jsonl of {"title", "text", "id"?, "date"?, "url"?, "source"?, "author"?} lines."""
    for where, data in json_lines(path):
        try:
            if isinstance(data, CorpusError):
                raise data
            article_id = str(data["id"]) if data.get("id") not in (None, "") else None
            yield draft_from_fields(data, where, article_id)
        except CorpusError as exc:
            yield Rejection(where, exc.reason)


def read_path(path: Path) -> Iterator[Draft | Rejection]:
    """A file, or every ingestible file under a folder (hidden ones and READMEs skipped)."""
    if not path.exists():
        yield Rejection(str(path), "no such file or folder")
    elif path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file() and child.suffix.lower() in FILE_SUFFIXES and not is_ignored(child, path):
                yield from read_file(child)
    else:
        yield from read_file(path)


def read_url(url: str, allow_private: bool) -> Draft:
    """Fetch an article page (HTML or plain text); IngestError/CorpusError say why not."""
    page = fetch(url, allow_private=allow_private)
    if page.content_type in TEXT_TYPES:
        return draft_from_plain(page.text, url, url=page.url)
    return draft_from_html(page.text, url, url=page.url)


@dataclass(frozen=True)
class FeedEntry:
    """One entry of a feed as listed: its link, what identifies it, its date, its own content."""

    number: int  # its place in the feed, from 1
    key: str  # the canonical URL of its link, else its id, else its title: what was taken
    link: str
    title: str
    date: str | None  # ISO day
    published: float | None  # seconds since the epoch, for ordering
    body: str  # its content or summary (HTML), used when its page cannot be had


@dataclass(frozen=True)
class Feed:
    title: str | None
    entries: list[FeedEntry]


def parse_feed(text: str, url: str) -> Feed:
    """The entries of an RSS/Atom document; IngestError when it is not one."""
    import calendar

    import feedparser

    try:
        feed: Any = feedparser.parse(text)
    except (ValueError, UnicodeError, LookupError, RecursionError, TypeError) as exc:  # e.g. an XML
        # declaration naming a codec that cannot decode the document
        raise IngestError(f"{url}: not an RSS or Atom feed ({type(exc).__name__}: {exc})") from None
    if not feed.entries and (feed.bozo or not feed.version):
        reason = feed.get("bozo_exception") or "no RSS or Atom elements"
        raise IngestError(f"{url}: not an RSS or Atom feed ({reason})")
    entries = []
    for number, entry in enumerate(feed.entries, start=1):
        link = str(entry.get("link") or "")
        parsed = entry.get("published_parsed") or entry.get("updated_parsed")
        content = entry.get("content") or []
        body = str(content[0].get("value", "")) if content else str(entry.get("summary") or "")
        title = str(entry.get("title") or "")
        key = canonical_url(link) if link else f"id:{entry.get('id') or title}"
        entries.append(
            FeedEntry(
                number=number,
                key=key,
                link=link,
                title=title,
                date=f"{parsed.tm_year:04d}-{parsed.tm_mon:02d}-{parsed.tm_mday:02d}" if parsed else None,
                published=float(calendar.timegm(parsed)) if parsed else None,
                body=body,
            )
        )
    return Feed(title=feed.feed.get("title"), entries=entries)


def read_entry(entry: FeedEntry, feed: Feed, url: str, allow_private: bool) -> Draft | Rejection:
    """The page at the entry's link, else the entry's own content when the page cannot be had."""
    where = f"{url} entry {entry.number}" + (f" ({entry.link})" if entry.link else "")
    problem = "it has no link and no content"
    if entry.link:
        try:
            draft = read_url(entry.link, allow_private)
            return Draft(**{**draft.__dict__, "date": draft.date or entry.date, "origin": where})
        except (IngestError, CorpusError) as exc:
            problem = str(exc)
    try:
        if not entry.body.strip() or not entry.title:
            raise CorpusError(where, problem)
        fields = {"title": entry.title, "text": html_to_text(entry.body), "date": entry.date, "url": entry.link or None}
        return draft_from_fields({**fields, "source": feed.title}, where)
    except CorpusError as exc:
        return Rejection(where, exc.reason)


def read_feed(url: str, allow_private: bool, seen: set[str]) -> Iterator[Draft | Rejection]:
    """Every entry of an RSS/Atom feed whose link is not in `seen` (canonical URLs), by `read_entry`."""
    try:
        page = fetch(url, allow_private=allow_private, accept=FEED_TYPES | HTML_TYPES | TEXT_TYPES)
        feed = parse_feed(page.text, url)
    except IngestError as exc:
        yield Rejection.of(url, exc)
        return
    for entry in feed.entries:
        if entry.link and entry.key in seen:
            continue
        yield read_entry(entry, feed, url, allow_private)


def html_to_text(fragment: str) -> str:
    """The text of a feed entry's HTML content: one paragraph per block element."""
    import html

    blocks = re.split(r"(?i)<\s*(?:/p|br\s*/?|/div|/li|/h[1-6]|/blockquote)\s*>", fragment)
    paragraphs = [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", b)).split()) for b in blocks]
    return "\n\n".join(p for p in paragraphs if p)
