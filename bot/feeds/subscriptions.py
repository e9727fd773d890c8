"""The feeds subscribed, and what their polls left, in one SQLite file of the data folder.

- `feeds`: one row per feed: its URL, how often it is polled, where it came from (`bot feeds add`,
  or BOT_FEEDS), the validators of its last fetch (ETag, Last-Modified), the last poll (when, its
  outcome), consecutive failures, when it is polled next, and its counters (polls, 304s, new
  articles, failures) for /metrics, which any process reads from here, whichever one polls.
- `entries`: the entries already taken from each feed, by canonical URL (or id), with what became of
  them: a restart fetches none of them again.

Each call opens and closes its own connection: SQLite serialises writers (a poller, `bot feeds add`
in another shell, a server's /metrics reading), nothing lingers.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bot.articles.duplicates import canonical_url
from bot.articles.fetching import Validators, parse_url
from bot.errors import BotError, ConflictError, IngestError, NotFoundError

FILE_NAME = "feeds.sqlite3"
EVERY = 15 * 60.0  # the default interval: news sites update every few minutes, most feeds hourly
MIN_EVERY, MAX_EVERY = 1.0, 7 * 86400.0
FIRST_POLL = 20  # newest entries taken from a feed's first poll (BOT_FEED_FIRST_POLL)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")

SCHEMA = """
CREATE TABLE IF NOT EXISTS feeds (
    url TEXT PRIMARY KEY, every REAL NOT NULL, origin TEXT NOT NULL, first INTEGER,
    added_at REAL NOT NULL, next_poll REAL NOT NULL,
    etag TEXT, last_modified TEXT, last_poll REAL, outcome TEXT, ok INTEGER,
    failures INTEGER NOT NULL DEFAULT 0, first_done INTEGER NOT NULL DEFAULT 0,
    polls INTEGER NOT NULL DEFAULT 0, not_modified INTEGER NOT NULL DEFAULT 0,
    new_articles INTEGER NOT NULL DEFAULT 0, failed_polls INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS entries (
    feed TEXT NOT NULL, key TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
    article TEXT, taken_at REAL NOT NULL, PRIMARY KEY (feed, key));
"""
COLUMNS = (
    "url, every, origin, first, added_at, next_poll, etag, last_modified, last_poll, outcome, ok, failures, "
    "first_done, polls, not_modified, new_articles, failed_polls"
)


def parse_every(text: str) -> float:
    """Seconds from a duration such as 30s, 15m, 2h, 1d or 1h30m; BotError saying what is wanted."""
    cleaned = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(cleaned)
    if not cleaned or "".join(n + u for n, u in parts) != cleaned:
        raise BotError(f"{text!r} is not a duration: write it like 30s, 15m, 2h or 1d")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not MIN_EVERY <= seconds <= MAX_EVERY:
        raise BotError(f"{text!r}: a feed is polled at most every second and at least once a week")
    return seconds


def format_every(seconds: float, units: int = 4) -> str:
    """`seconds` as 1d, 2h, 15m, 30s or a mix (1h30m); with fewer `units`, rounded down to that
    many adjacent ones (1h25m, not 1h25m6s; 1h, not 1h5s)."""
    left = round(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if len(parts) == units:
            break
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
        elif parts and units < 4:
            break
    return "".join(parts) or "0s"


def feed_label(url: str) -> str:
    """The URL as shown in lists and metric labels: without a user or password."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def checked_feed_url(url: str) -> str:
    """The URL, stripped, if it is an http(s) URL with a host; BotError otherwise."""
    url = url.strip()
    try:
        parse_url(url)
    except IngestError as exc:
        raise BotError(f"{exc}: a feed is an http(s) URL, e.g. https://example.com/feed.xml") from None
    return url


@dataclass(frozen=True)
class Subscription:
    """A feed and what its polls left (times are seconds since the epoch)."""

    url: str
    every: float
    origin: str  # "cli" (bot feeds add) or "env" (BOT_FEEDS)
    first: int | None  # its own first-poll bound, or None for the setting's
    added_at: float
    next_poll: float
    etag: str | None = None
    last_modified: str | None = None
    last_poll: float | None = None
    outcome: str | None = None
    ok: bool | None = None
    failures: int = 0  # consecutive
    first_done: bool = False
    polls: int = 0
    not_modified: int = 0
    new_articles: int = 0
    failed_polls: int = 0

    @property
    def label(self) -> str:
        return feed_label(self.url)

    @property
    def validators(self) -> Validators | None:
        if not (self.etag or self.last_modified):
            return None
        return Validators(self.etag, self.last_modified)


@dataclass
class PollRecord:
    """What one poll of a feed left, written at once (`FeedStore.record`)."""

    at: float
    next_poll: float
    outcome: str
    ok: bool
    not_modified: bool = False
    validators: Validators | None = None  # None: keep none (the next poll fetches the whole feed)
    taken: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # key → (status, article id)
    new_articles: int = 0


class FeedStore:
    """Subscriptions and their polls in `data_dir/feeds.sqlite3` (created on first write)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / FILE_NAME
        self._ready = False  # the file has its tables (made once per store, not per call)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            if not self._ready:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with closing(sqlite3.connect(self.path, timeout=30)) as db, db:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.executescript(SCHEMA)
                self._ready = True
            with closing(sqlite3.connect(self.path, timeout=30)) as db, db:
                db.row_factory = sqlite3.Row
                yield db
        except (OSError, sqlite3.Error) as exc:
            raise BotError(f"Cannot keep feeds in {self.path}: {exc}. Set BOT_DATA_DIR to a writable folder.") from None

    def feeds(self) -> list[Subscription]:
        """Every subscription, in the order they were added (none, and no file made, before the first)."""
        if not self.path.exists():
            return []
        with self._db() as db:
            rows = db.execute(f"SELECT {COLUMNS} FROM feeds ORDER BY added_at, url").fetchall()
        return [_subscription(row) for row in rows]

    def find(self, url: str) -> Subscription | None:
        """The subscription of `url`, or of the same canonical URL."""
        wanted = canonical_url(url.strip())
        return next((f for f in self.feeds() if f.url == url.strip() or canonical_url(f.url) == wanted), None)

    def add(
        self, url: str, every: float, now: float, *, first: int | None = None, origin: str = "cli"
    ) -> tuple[Subscription, bool]:
        """Subscribe (due at once), or change the interval and bound of a feed already subscribed;
        the subscription, and whether it is new."""
        url = checked_feed_url(url)
        known = self.find(url)
        with self._db() as db:
            if known is None:
                db.execute(
                    "INSERT INTO feeds (url, every, origin, first, added_at, next_poll) VALUES (?, ?, ?, ?, ?, ?)",
                    (url, every, origin, first, now, now),
                )
            else:
                # The new interval counts from the last poll; a feed backing off keeps its wait.
                due = known.next_poll
                if known.failures == 0 and known.last_poll is not None:
                    due = known.last_poll + every
                db.execute(
                    "UPDATE feeds SET every = ?, first = COALESCE(?, first), next_poll = ? WHERE url = ?",
                    (every, first, due, known.url),
                )
        found = self.find(url)
        assert found is not None
        return found, known is None

    def remove(self, url: str) -> Subscription:
        """Unsubscribe, forgetting the entries taken; NotFoundError or ConflictError say why not."""
        known = self.find(url)
        if known is None:
            raise NotFoundError(f"No feed {url.strip()!r} is subscribed: `bot feeds list` shows those that are.")
        if known.origin == "env":
            raise ConflictError(f"{known.label} comes from BOT_FEEDS: remove it there.")
        with self._db() as db:
            db.execute("DELETE FROM entries WHERE feed = ?", (known.url,))
            db.execute("DELETE FROM feeds WHERE url = ?", (known.url,))
        return known

    def sync(self, urls: Iterable[str], every: float, now: float) -> None:
        """Make the BOT_FEEDS subscriptions these: new ones added, dropped ones removed."""
        wanted = {canonical_url(url): url for url in urls}
        for feed in self.feeds():
            key = canonical_url(feed.url)
            if feed.origin == "env" and key not in wanted:
                with self._db() as db:
                    db.execute("DELETE FROM entries WHERE feed = ?", (feed.url,))
                    db.execute("DELETE FROM feeds WHERE url = ?", (feed.url,))
            elif key in wanted:
                del wanted[key]  # subscribed already (by either way): its own interval stands
        for url in wanted.values():
            self.add(url, every, now, origin="env")

    def due(self, now: float) -> list[Subscription]:
        return [feed for feed in self.feeds() if feed.next_poll <= now]

    def taken(self, url: str) -> dict[str, tuple[str, int]]:
        """The entries already taken from a feed: key → (status, attempts)."""
        with self._db() as db:
            rows = db.execute("SELECT key, status, attempts FROM entries WHERE feed = ?", (url,)).fetchall()
        return {key: (status, attempts) for key, status, attempts in rows}

    def record(self, url: str, poll: PollRecord) -> None:
        """What a poll of `url` left, in one transaction (a feed removed meanwhile stays removed)."""
        validators = poll.validators or Validators()
        with self._db() as db:
            changed = db.execute(
                "UPDATE feeds SET last_poll = ?, next_poll = ?, outcome = ?, ok = ?, etag = ?, last_modified = ?, "
                "failures = CASE WHEN ? THEN 0 ELSE failures + 1 END, first_done = first_done OR ?, "
                "polls = polls + 1, not_modified = not_modified + ?, new_articles = new_articles + ?, "
                "failed_polls = failed_polls + ? WHERE url = ?",
                (
                    poll.at,
                    poll.next_poll,
                    poll.outcome,
                    poll.ok,
                    validators.etag,
                    validators.last_modified,
                    poll.ok,
                    poll.ok,
                    int(poll.not_modified),
                    poll.new_articles,
                    int(not poll.ok),
                    url,
                ),
            ).rowcount
            if not changed:
                return
            db.executemany(
                "INSERT INTO entries (feed, key, status, attempts, article, taken_at) VALUES (?, ?, ?, 1, ?, ?) "
                "ON CONFLICT (feed, key) DO UPDATE SET status = excluded.status, attempts = attempts + 1, "
                "article = excluded.article, taken_at = excluded.taken_at",
                [(url, key, status, article, poll.at) for key, (status, article) in poll.taken.items()],
            )


def _subscription(row: sqlite3.Row) -> Subscription:
    values = dict(row)
    ok, first_done = values.pop("ok"), values.pop("first_done")
    return Subscription(**values, ok=None if ok is None else bool(ok), first_done=bool(first_done))
