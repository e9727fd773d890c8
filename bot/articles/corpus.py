"""Read articles from the corpus: front-matter files and .jsonl collections.

A corpus is a folder of `.md`/`.txt` files (one article each, a YAML front-matter header then the
body) and/or `.jsonl` files (one article per line), or a single such file. Article ids are stable:
the `id` given (front matter or JSON), else the file name's slug; never a position.
A malformed file or line becomes a `CorpusError` in the result and does not stop the others.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.errors import CorpusError
from bot.records import Article

ARTICLE_SUFFIXES = {".md", ".markdown", ".txt"}
COLLECTION_SUFFIXES = {".jsonl"}
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_KNOWN_FIELDS = {"id", "title", "date", "url", "source", "author", "duplicate_of"}
TEXT_FIELDS = ("id", "title", "text", "date", "url", "source", "author", "duplicate_of")


@dataclass
class Corpus:
    """The articles that could be read, and the errors of those that could not."""

    articles: list[Article] = field(default_factory=list)
    errors: list[CorpusError] = field(default_factory=list)

    def fingerprint(self) -> str:
        """A hash of every article's id, metadata and text: equal corpora, equal fingerprints."""
        digest = hashlib.sha256()
        for article in sorted(self.articles, key=lambda a: a.id):
            for value in (article.id, article.title, article.date, article.url, article.source):
                digest.update((value or "").encode())
                digest.update(b"\0")
            if article.duplicate_of:  # only when set, so corpora without copies keep their fingerprint
                digest.update(b"duplicate_of\0" + article.duplicate_of.encode())
            digest.update(article.text.encode())
            digest.update(b"\1")
        return digest.hexdigest()


def slugify(value: str, max_length: int = 80) -> str:
    """A lowercase ASCII slug: 'OpenAI, Softbank launch…' -> 'openai-softbank-launch'."""
    ascii_value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_value.lower()).strip("-")
    # surrogatepass: a file name that is not UTF-8 reaches Python with lone surrogates in it.
    return slug[:max_length].rstrip("-") or hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def check_unicode(fields: dict[str, Any], where: str) -> None:
    """CorpusError naming the first text field that cannot be written as UTF-8: JSON's "\\ud800"
    is valid JSON, but decodes to a lone surrogate, which no file, hash or tokenizer takes."""
    for key, value in fields.items():
        if not isinstance(value, str):
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise CorpusError(
                where,
                f"'{key}' is not valid Unicode: a lone surrogate (U+{ord(value[exc.start]):04X}) at character "
                f"{exc.start}; send UTF-8 text",
            ) from None


def clean_text(text: str) -> str:
    """Normalise line endings and trim; the result is what offsets index into."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def normalize_date(value: Any, where: str) -> str | None:
    """Accept an ISO-8601 date or timestamp (YAML may already have parsed it); keep it as text."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if not isinstance(value, str):
        raise CorpusError(where, f"date must be ISO-8601 text, got {value!r}")
    text = value.strip()
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CorpusError(where, f"date {text!r} is not ISO-8601 (e.g. 2025-01-23)") from None
    # Stored in the extended form ("20250123" and "2025-W04-4" become "2025-01-23"), so dates
    # compare correctly as text in date filters.
    return parsed.isoformat() if re.search(r"[T ]\d", text) else parsed.date().isoformat()


def make_article(data: dict[str, Any], where: str, default_id: str, path: str | None) -> Article:
    """Validate one article's fields and build it."""
    check_unicode({key: data.get(key) for key in TEXT_FIELDS}, where)
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise CorpusError(where, "missing 'title'")
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise CorpusError(where, "the article has no text")
    raw_id = data.get("id", default_id)
    if not isinstance(raw_id, str | int) or not str(raw_id).strip():
        raise CorpusError(where, f"'id' must be a non-empty string, got {raw_id!r}")
    for key in ("url", "source", "author", "duplicate_of"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise CorpusError(where, f"'{key}' must be text, got {data[key]!r}")
    return Article(
        id=str(raw_id).strip(),
        title=" ".join(title.split()),
        text=clean_text(text),
        date=normalize_date(data.get("date"), where),
        url=(data.get("url") or None),
        source=(data.get("source") or None),
        author=(data.get("author") or None),
        path=path,
        duplicate_of=(data.get("duplicate_of") or None),
    )


def decode(raw: bytes, where: str) -> str:
    """Decode UTF-8 (a BOM is dropped); anything else is refused with the reason."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorpusError(where, f"not UTF-8 text (byte {exc.start}): save it as UTF-8") from None


def parse_article_file(path: Path) -> Article:
    """Read one front-matter article file (its id: the front matter's, else the file name's slug)."""
    return make_article(read_front_matter(path), str(path), default_id=slugify(path.stem), path=str(path))


def read_front_matter(path: Path) -> dict[str, Any]:
    """The fields of a front-matter article file, its text under "text", not yet validated."""
    where = str(path)
    text = decode(path.read_bytes(), where).replace("\r\n", "\n")
    match = _FRONT_MATTER.match(text)
    if not match:
        raise CorpusError(where, "no front-matter header: start the file with '---', 'title: …', '---'")
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        reason = str(exc).splitlines()[0]
        raise CorpusError(where, f"front matter is not valid YAML ({reason})") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. `date: 2025-02-30`: PyYAML builds the date itself
        raise CorpusError(where, f"front matter has a value that cannot be read ({exc})") from None
    except RecursionError:  # PyYAML composes nested collections recursively: thousands of levels
        raise CorpusError(where, f"front matter is nested too deeply (over {sys.getrecursionlimit()} levels)") from None
    if not isinstance(meta, dict):
        raise CorpusError(where, "front matter must be 'key: value' lines")
    unknown = set(meta) - _KNOWN_FIELDS
    if unknown:
        raise CorpusError(where, f"unknown front-matter field(s): {', '.join(sorted(map(str, unknown)))}")
    return {**meta, "text": text[match.end() :]}


def json_lines(path: Path) -> Iterator[tuple[str, dict[str, Any] | CorpusError]]:
    """Each non-blank line of a .jsonl as ("path:line", object), or the CorpusError that says why not."""
    try:
        content = decode(path.read_bytes(), str(path))
    except CorpusError as exc:
        yield str(path), exc
        return
    # Only "\n" ends a JSON line; str.splitlines() would also cut at U+2028/U+2029/U+0085 inside strings.
    for number, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            yield where, CorpusError(where, f"invalid JSON ({exc.msg})")
            continue
        except RecursionError:  # json decodes nested arrays and objects recursively
            yield where, CorpusError(where, "invalid JSON (nested too deeply)")
            continue
        except ValueError as exc:  # not a JSONDecodeError: an integer past Python's 4300-digit limit
            yield where, CorpusError(where, f"invalid JSON ({exc})")
            continue
        yield where, data if isinstance(data, dict) else CorpusError(where, "each line must be a JSON object")


def parse_collection(path: Path) -> tuple[list[Article], list[CorpusError]]:
    """Read a .jsonl file of articles; a bad line is reported with its number and skipped."""
    articles: list[Article] = []
    errors: list[CorpusError] = []
    for where, data in json_lines(path):
        try:
            if isinstance(data, CorpusError):
                raise data
            if "id" not in data:
                raise CorpusError(where, "missing 'id'")
            articles.append(make_article(data, where, default_id="", path=str(path)))
        except CorpusError as exc:
            errors.append(exc)
    return articles, errors


def is_ignored(path: Path, root: Path) -> bool:
    """Hidden files and folders (atomic writes' temporaries, `_drafts/`) and READMEs are not articles."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = (path.name,)
    return any(part.startswith((".", "_")) for part in parts) or path.name.lower().startswith("readme")


def is_article_file(path: str | Path, root: Path) -> bool:
    """True for a file the indexer reads: a known suffix, not hidden, not a README."""
    path = Path(path)
    return path.suffix.lower() in ARTICLE_SUFFIXES | COLLECTION_SUFFIXES and not is_ignored(path, root)


def corpus_files(root: Path) -> Iterator[Path]:
    """The article and collection files under `root` (or `root` itself), in a stable order."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and is_article_file(path, root):
            yield path


def load_corpus(root: Path | str) -> Corpus:
    """Read every article under `root`; errors are collected, not raised."""
    root = Path(root)
    if not root.exists():
        raise CorpusError(str(root), "no such file or folder")
    corpus = Corpus()
    seen: dict[str, str] = {}
    for path in corpus_files(root):
        if path.suffix.lower() in COLLECTION_SUFFIXES:
            found, errors = parse_collection(path)
            corpus.errors.extend(errors)
        else:
            try:
                found = [parse_article_file(path)]
            except CorpusError as exc:
                corpus.errors.append(exc)
                continue
            except OSError as exc:
                corpus.errors.append(CorpusError(str(path), exc.strerror or str(exc)))
                continue
        for article in found:
            if article.id in seen:
                corpus.errors.append(
                    CorpusError(article.path or str(path), f"duplicate id {article.id!r} (first in {seen[article.id]})")
                )
                continue
            seen[article.id] = article.path or str(path)
            corpus.articles.append(article)
    return corpus
