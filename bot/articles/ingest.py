"""Taking new articles into the corpus: duplicate checks, atomic writes (the index follows: `bot.service`).

Each accepted article becomes one front-matter file in the corpus folder, written to a hidden
temporary file, read back and checked, fsynced and renamed into place; the corpus file *is* the
write-ahead record. Only then is the index rebuilt (incrementally), so a crash at any moment
leaves the previous index serving and a corpus of whole files, and the next `bot ingest` or
`bot index` indexes whatever was accepted. Writers of one corpus are serialised by a file lock.

An article repeating one the corpus has (same canonical URL or id with the same text, or the
same normalised text) is skipped; a changed text at the same URL replaces the old one; a
near-duplicate (see `bot.articles.duplicates`) is kept on disk with `duplicate_of:` naming its original,
which the indexer lists under "also reported by" instead of indexing it twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml
from filelock import FileLock

from bot.articles.corpus import TEXT_FIELDS, check_unicode, load_corpus, parse_article_file, slugify
from bot.articles.duplicates import Catalog, Fingerprint, canonical_url, text_key
from bot.articles.sources import Draft, Rejection, read_feed, read_path, read_url
from bot.durable import fsync_path, write_atomically
from bot.errors import ConflictError, CorpusError, IngestError, NotFoundError, ReadOnlyCorpusError
from bot.records import Article

STATUSES = ("added", "updated", "linked", "duplicate", "rejected")


@dataclass(frozen=True)
class Outcome:
    """What happened to one source or entry: `status` is one of STATUSES."""

    status: str
    origin: str
    id: str | None = None
    detail: str | None = None  # why rejected, or which article it repeats or copies

    def line(self) -> str:
        what = f" {self.id}" if self.id else ""
        return f"{self.status:9} {self.origin}{what}" + (f": {self.detail}" if self.detail else "")


@dataclass
class IngestReport:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def changed(self) -> bool:
        return any(o.status in ("added", "updated", "linked") for o in self.outcomes)

    def summary(self) -> str:
        return ", ".join(f"{self.count(s)} {s}" for s in STATUSES)


def render(article: Article) -> str:
    """The front-matter file of an article."""
    fields = {k: getattr(article, k) for k in ("id", "title", "date", "url", "source", "author", "duplicate_of")}
    header = yaml.safe_dump({k: v for k, v in fields.items() if v}, sort_keys=False, allow_unicode=True, width=10_000)
    return f"---\n{header}---\n{article.text}\n"


class CorpusWriter:
    """Adds, replaces and removes article files of one corpus folder."""

    def __init__(self, corpus_dir: Path, lock_path: Path) -> None:
        self.corpus_dir = Path(corpus_dir)
        if self.corpus_dir.exists() and not self.corpus_dir.is_dir():
            raise ReadOnlyCorpusError(f"{corpus_dir} is a file: ingesting needs BOT_CORPUS_DIR to be a folder")
        self.lock = FileLock(str(lock_path))
        self._fingerprints: dict[str, Fingerprint] = {}  # unchanged articles are not re-shingled

    def articles(self) -> list[Article]:
        return load_corpus(self.corpus_dir).articles if self.corpus_dir.is_dir() else []

    def known_urls(self) -> set[str]:
        return {canonical_url(a.url) for a in self.articles() if a.url}

    def accept(self, items: Iterable[Draft | Rejection]) -> IngestReport:
        """Write every new or changed draft; rejections pass through into the report."""
        items = list(items)  # fetch everything before taking the lock
        report = IngestReport()
        Path(self.lock.lock_file).parent.mkdir(parents=True, exist_ok=True)
        with self.lock:
            self.corpus_dir.mkdir(parents=True, exist_ok=True)
            for leftover in [*self.corpus_dir.glob(".tmp-*"), *self.corpus_dir.glob(".probe-*")]:
                leftover.unlink(missing_ok=True)  # from a writer killed mid-write; never part of the corpus
            catalog = Catalog(self.articles(), self._fingerprints)
            for item in items:
                if isinstance(item, Rejection):
                    report.outcomes.append(Outcome("rejected", item.origin, detail=item.reason))
                    continue
                try:
                    report.outcomes.append(self._accept_one(item, catalog))
                except (CorpusError, IngestError, OSError) as exc:
                    report.outcomes.append(Outcome("rejected", item.origin, detail=str(exc)))
        return report

    def _accept_one(self, draft: Draft, catalog: Catalog) -> Outcome:
        # Drafts are read through make_article, which checks this too; one made any other way
        # would fail in slugify or the file write instead.
        check_unicode({key: getattr(draft, key, None) for key in TEXT_FIELDS}, draft.origin)
        match = catalog.match(draft.text, draft.url, draft.id)
        taken = None
        if match is not None and match.kind == "id" and draft.id_from_name and not _same_story(match.article, draft):
            # Only the file's name (index.md, a1.md) says it is that article, and its title or
            # URL says it is not: it is a new one, under an id of its own; the other stays.
            taken = match.article
            draft = replace(draft, id=None, id_from_name=False)
            match = catalog.match(draft.text, draft.url)
        if match is not None and match.kind in ("url", "id"):
            old = match.article
            if text_key(old.text) == text_key(draft.text) and old.title == draft.title:
                return Outcome("duplicate", draft.origin, old.id, f"same {match.kind} as {old.id}")
            if not old.path or Path(old.path).suffix.lower() == ".jsonl":
                raise IngestError(f"it would replace {old.id}, which lives in {old.path}: edit that file instead")
            article = self._article(draft, old.id, path=Path(old.path))
            self._write(article)
            catalog.remove(old.id)
            catalog.add(article)
            return Outcome("updated", draft.origin, old.id, f"new text for {match.kind} {draft.url or old.id}")
        if match is not None and match.kind == "text":
            return Outcome("duplicate", draft.origin, match.article.id, f"same text as {match.article.id}")
        article_id = self._new_id(draft, catalog)
        path = self.corpus_dir / f"{slugify(article_id)}.md"
        if match is not None:  # a near-duplicate: kept, linked to its original, not indexed
            article = self._article(draft, article_id, path, duplicate_of=match.article.id)
            self._write(article)
            catalog.add(article)
            detail = f"{match.similarity:.0%} the same as {match.article.id}: listed under also_reported_by"
            return Outcome("linked", draft.origin, article_id, detail)
        article = self._article(draft, article_id, path)
        self._write(article)
        catalog.add(article)
        if taken is not None:
            detail = f"{taken.id!r} (its file's name) is already {taken.title!r}: added as {article_id}"
            return Outcome("added", draft.origin, article_id, detail)
        return Outcome("added", draft.origin, article_id)

    def _new_id(self, draft: Draft, catalog: Catalog) -> str:
        base = draft.id or slugify(f"{draft.date[:10]}-{draft.title}" if draft.date else draft.title)
        candidate, n = base, 1
        while candidate in catalog.by_id or (self.corpus_dir / f"{slugify(candidate)}.md").exists():
            n += 1
            # Room for the suffix inside slugify's 80 characters, or every candidate is `base` again.
            suffix = f"-{n}"
            candidate = f"{base[: 80 - len(suffix)].rstrip('-')}{suffix}"
        return candidate

    @staticmethod
    def _article(draft: Draft, article_id: str, path: Path, duplicate_of: str | None = None) -> Article:
        return Article(
            id=article_id,
            title=draft.title,
            text=draft.text,
            date=draft.date,
            url=draft.url,
            source=draft.source,
            author=draft.author,
            path=str(path),
            duplicate_of=duplicate_of,
        )

    def _write(self, article: Article) -> None:
        assert article.path is not None
        path = Path(article.path)
        content = render(article)
        # Check the file reads back as this very article before it goes into the corpus.
        probe = path.parent / f".probe-{uuid.uuid4().hex}.md"
        try:
            probe.write_text(content, encoding="utf-8")
            back = parse_article_file(probe)
        finally:
            probe.unlink(missing_ok=True)
        if (back.id, back.title, back.text, back.url) != (article.id, article.title, article.text, article.url):
            raise IngestError(f"{article.id} would not read back unchanged from {path.name}")
        write_atomically(path, content)

    def delete(self, article_id: str, *, keep_one: bool = False) -> Article:
        """Remove one article from the corpus (its file, or its line of a .jsonl); with `keep_one`,
        refuse (ConflictError) to remove the only one. The check and the removal happen under
        the writer's lock: checked outside it, concurrent deletes could each see another article
        left and together remove them all."""
        with self.lock:
            articles = self.articles()
            found = next((a for a in articles if a.id == article_id), None)
            if found is None or found.path is None:
                raise NotFoundError(f"No article with id {article_id!r}.")
            if keep_one and len(articles) == 1:
                raise ConflictError(f"{article_id!r} is the only article; the index cannot be empty.")
            path = Path(found.path)
            if path.suffix.lower() == ".jsonl":
                lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines: see corpus.py
                kept = [line for line in lines if line.strip() and _line_id(line) != article_id]
                write_atomically(path, "\n".join(kept) + "\n")
            else:
                path.unlink()
                fsync_path(path.parent)
            return found


def _same_story(old: Article, draft: Draft) -> bool:
    """Whether a draft can be a new version of `old`: the same title, and no other URL."""
    other_url = bool(old.url and draft.url and canonical_url(old.url) != canonical_url(draft.url))
    return old.title == draft.title and not other_url


def _line_id(line: str) -> str | None:
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return str(data.get("id")) if isinstance(data, dict) else None


def read_sources(sources: list[str], feeds: list[str], allow_private: bool, seen: set[str]) -> list[Draft | Rejection]:
    """Drafts from paths, URLs and feeds (`seen`: canonical URLs the corpus already has)."""
    items: list[Draft | Rejection] = []
    for source in sources:
        if source.startswith(("http://", "https://")):
            try:
                items.append(read_url(source, allow_private))
            except (IngestError, CorpusError) as exc:
                items.append(Rejection.of(source, exc))
        else:
            items.extend(read_path(Path(source)))
    for feed in feeds:
        items.extend(read_feed(feed, allow_private, seen))
    return items
