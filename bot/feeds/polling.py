"""Polling the subscribed feeds: what is new comes into the corpus, one rebuild for all of it.

One poll (`Poller.poll_due`) takes every feed that is due and, for each,

- GETs it through the fetch guard (`bot.articles.fetching`: SSRF, size, types, deadline), sending
  the validators of its last fetch: a 304 reads no body and fetches no page;
- keeps the entries not taken before (by canonical URL; `FeedStore.taken`), and on a feed's first
  poll only the newest `first` of them (the rest are recorded as skipped, never fetched);
- fetches those entries' pages only (PAGE_WORKERS at a time), entries whose URL the corpus already
  has not at all;

then hands every new article of every feed to `take` at once (the corpus writer, then one
incremental rebuild), and records each feed's poll. A feed that fails (an error status, a timeout,
a body that is not a feed) is polled again after an exponential backoff with jitter, or after its
Retry-After when that is longer; the others go on.

One poller per index folder: it holds `<index>/.feeds.lock` (next to the indexer's `.lock`) while
it runs. Another process that would poll either yields, and takes over when the holder stops
(`Poller.run`: `bot watch`, `bot serve` with BOT_POLL_FEEDS), or refuses (`Poller.holding`:
`bot feeds poll`).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from bot.articles.fetching import FEED_TYPES, HTML_TYPES, TEXT_TYPES, TIMEOUT_SECONDS, fetch
from bot.articles.ingest import IngestReport, Outcome
from bot.articles.sources import Draft, FeedEntry, Rejection, parse_feed, read_entry
from bot.errors import BotError, ConflictError, FetchStatusError, IngestError
from bot.feeds.subscriptions import FIRST_POLL, FeedStore, PollRecord, Subscription, format_every

log = logging.getLogger(__name__)

# Held for as long as a poller runs. Not the indexer's `.lock` itself: that one is taken around each
# build, by every writer, blocking; held for a poller's life it would stall `bot index` elsewhere,
# and deadlock this process's own builds (a second open of one file is a second flock).
LOCK_NAME = ".feeds.lock"
PAGE_WORKERS = 4  # pages fetched at once: a first poll of 20 pages from a slow site in ~5 deadlines, not 20
BACKOFF_CAP = 6 * 3600.0  # the longest backoff (a feed's own interval when that is longer)
RETRY_AFTER_CAP = 86400.0  # a Retry-After past a day is read as a day: a typo must not silence a feed for good
ENTRY_ATTEMPTS = 3  # polls that try an entry whose page and content both failed, before it is given up
FAILING_AFTER = 5  # consecutive failures after which a feed is reported as failing
TICK_SECONDS = 1.0  # how often a running poller looks for feeds that are due (and for new ones)
ACCEPT = FEED_TYPES | HTML_TYPES | TEXT_TYPES  # some servers send RSS as text/html or text/plain

Take = Callable[[list[Draft | Rejection]], IngestReport]


def backoff(every: float, failures: int, rng: random.Random) -> float:
    """Seconds to wait after the `failures`-th failure in a row: the interval doubled each time,
    times a jitter of 1-1.5 (so feeds failing together do not come back together), capped."""
    cap = max(every, BACKOFF_CAP)
    return min(cap, every * 2.0 ** min(failures - 1, 30) * rng.uniform(1.0, 1.5))


@dataclass
class Check:
    """One feed's fetch: the record of its poll so far, and the items to take from it, by entry key."""

    feed: Subscription
    record: PollRecord
    items: list[tuple[str, Draft | Rejection]] = field(default_factory=list)
    skipped: int = 0  # older entries left on a first poll
    attempts: dict[str, int] = field(default_factory=dict)  # earlier attempts of entries tried again


class Poller:
    """Polls the feeds of `feeds` that are due and hands what is new to `take`."""

    def __init__(
        self,
        feeds: FeedStore,
        take: Take,
        known_urls: Callable[[], set[str]],
        index_dir: Path,
        *,
        allow_private: bool = False,
        first_poll: int = FIRST_POLL,
        timeout: float = TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        """`take`: write the items into the corpus and rebuild once (the report has one outcome per
        item, in order); `known_urls`: canonical URLs the corpus has; `clock`: wall-clock seconds;
        `say`: where each poll's line goes (default: the log, failures as warnings)."""
        self.feeds, self.take, self.known_urls = feeds, take, known_urls
        self.allow_private, self.first_poll, self.timeout = allow_private, first_poll, timeout
        self.clock, self.rng = clock, rng or random.Random()
        self.say, self.warn = (say, say) if say is not None else (log.info, log.warning)
        self.lock_path = Path(index_dir) / LOCK_NAME
        self.lock = FileLock(str(self.lock_path))

    # -- one poll ---------------------------------------------------------------------------

    def poll_due(self) -> list[tuple[Subscription, PollRecord]]:
        """Poll every feed that is due now, take what is new with one rebuild, record each poll."""
        now = self.clock()
        checks = []
        for feed in self.feeds.due(now):
            try:
                checks.append(self.check(feed, now))
            # Whatever else goes wrong with one feed is that feed's failure, recorded and backed off
            # like the others: left unrecorded, the feed would be due again at the next tick.
            except Exception as exc:
                if not isinstance(exc, BotError):
                    log.exception("feed %s not polled", feed.label)
                failed = Check(feed, PollRecord(at=now, next_poll=now, outcome="", ok=False))
                checks.append(self._failed(failed, f"{type(exc).__name__}: {exc}", None, now))
        items = [item for check in checks for _, item in check.items]
        report = IngestReport()
        if items:
            failure = None
            try:
                report = self.take(items)
            except Exception as exc:  # nothing recorded as taken: the next poll tries again
                if not isinstance(exc, BotError):
                    log.exception("feed entries not taken")
                failure = str(exc)
            else:
                if len(report.outcomes) != len(items):  # each item's outcome is what gets recorded
                    log.error("the ingest reported %d outcomes for %d entries", len(report.outcomes), len(items))
                    failure = "the ingest did not report every entry"
            if failure is not None:
                report = IngestReport()
                for check in checks:
                    if check.items:
                        self._failed(check, f"not taken: {failure}", None, now)
                        check.items = []
        outcomes = iter(report.outcomes)
        done = []
        for check in checks:
            if check.record.ok and not check.record.not_modified:
                self._taken(check, [next(outcomes) for _ in check.items])
            self.feeds.record(check.feed.url, check.record)
            done.append((check.feed, check.record))
            self._tell(check)
        return done

    def check(self, feed: Subscription, now: float) -> Check:
        """Fetch one feed and the pages of its new entries; nothing is written yet."""
        check = Check(feed, PollRecord(at=now, next_poll=now + feed.every, outcome="", ok=True))
        try:
            page = fetch(
                feed.url,
                allow_private=self.allow_private,
                accept=ACCEPT,
                timeout=self.timeout,
                validators=feed.validators,
            )
            if page.not_modified:
                check.record.not_modified, check.record.validators = True, page.validators
                check.record.outcome = "not modified (304)"
                return check
            parsed = parse_feed(page.text, feed.url)
        except FetchStatusError as exc:
            return self._failed(check, str(exc), exc.retry_after, now)
        except IngestError as exc:
            return self._failed(check, str(exc), None, now)
        check.record.validators = page.validators
        taken = self.feeds.taken(feed.url)
        fresh: list[FeedEntry] = []
        for entry in parsed.entries:
            status, attempts = taken.get(entry.key, ("", 0))
            if (not status or (status == "rejected" and attempts < ENTRY_ATTEMPTS)) and entry.key not in check.attempts:
                check.attempts[entry.key] = attempts  # an entry listed twice is taken once
                fresh.append(entry)
        if not feed.first_done:
            fresh, older = self._newest(fresh, feed.first if feed.first is not None else self.first_poll)
            check.record.taken.update({e.key: ("skipped", None) for e in older})
            check.skipped = len(older)
        known = self.known_urls() if any(e.link for e in fresh) else set()
        in_corpus = [e for e in fresh if e.link and e.key in known]
        check.record.taken.update({e.key: ("duplicate", None) for e in in_corpus})
        wanted = [e for e in fresh if not (e.link and e.key in known)]
        with ThreadPoolExecutor(PAGE_WORKERS, thread_name_prefix="feed-page") as pool:
            read = pool.map(lambda e: read_entry(e, parsed, feed.url, self.allow_private), wanted)
            check.items = [(e.key, item) for e, item in zip(wanted, read, strict=True)]
        return check

    @staticmethod
    def _newest(entries: list[FeedEntry], bound: int) -> tuple[list[FeedEntry], list[FeedEntry]]:
        """The newest `bound` entries and the rest: by date when every entry has one, else in the
        feed's own order (newest first, as feeds list them)."""
        if all(e.published is not None for e in entries):
            entries = sorted(entries, key=lambda e: -(e.published or 0.0))
        return entries[:bound], entries[bound:]

    def _failed(self, check: Check, reason: str, retry_after: float | None, now: float) -> Check:
        feed = check.feed
        wait = backoff(feed.every, feed.failures + 1, self.rng)
        if retry_after is not None:
            wait = max(wait, min(retry_after, RETRY_AFTER_CAP))
        # The validators stay: the feed is unchanged by its server's failure.
        reason = reason.removeprefix(f"{feed.url}: ")  # the list and the log name the feed already
        check.record = PollRecord(now, now + wait, f"failed: {reason}", ok=False, validators=feed.validators)
        return check

    def _taken(self, check: Check, outcomes: list[Outcome]) -> None:
        record, counts = check.record, {"added": 0}
        for (key, _), outcome in zip(check.items, outcomes, strict=True):
            record.taken[key] = (outcome.status, outcome.id)
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
            if outcome.status == "rejected" and check.attempts[key] + 1 < ENTRY_ATTEMPTS:
                record.validators = None  # tried again next poll: that poll must get the whole feed
        record.new_articles = counts["added"]
        parts = [f"{counts.pop('added')} new", *(f"{n} {status}" for status, n in counts.items())]
        if check.skipped:
            parts.append(f"{check.skipped} older entries left (first poll)")
        record.outcome = ", ".join(parts)

    def _tell(self, check: Check) -> None:
        record, feed = check.record, check.feed
        wait = format_every(max(0.0, record.next_poll - record.at), units=2)
        if record.ok:
            self.say(f"feed {feed.label}: {record.outcome}; next poll in {wait}")
            return
        failures = feed.failures + 1
        line = f"feed {feed.label}: {record.outcome} ({failures} in a row; next poll in {wait})"
        if failures >= FAILING_AFTER:
            line += ": it keeps failing; `bot feeds remove` it, or see why with `bot feeds list`"
        self.warn(line)

    # -- one poller per index folder --------------------------------------------------------

    def _try_lock(self) -> bool:
        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            self.lock.acquire(blocking=False)
        except Timeout:
            return False
        return True

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Hold the poller's lock, or ConflictError when another process polls these feeds."""
        if not self._try_lock():
            raise ConflictError(
                f"Another process polls the feeds (it holds {self.lock_path}): one poller per index "
                "folder. Let it poll, or stop it (`bot watch`, or `bot serve` with BOT_POLL_FEEDS) first."
            )
        try:
            yield
        finally:
            self.lock.release()

    def run(self, stop: threading.Event, tick: float = TICK_SECONDS) -> None:
        """Poll what is due every `tick` until `stop`; while another process holds the lock, yield
        to it (said once) and take over when it stops."""
        yielded = False
        try:
            while not stop.is_set():
                if self.lock.is_locked or self._try_lock():
                    if yielded:
                        self.say("Feeds: the other poller stopped; this process polls them now.")
                        yielded = False
                    try:
                        self.poll_due()
                    except BotError as exc:
                        log.error("feeds not polled: %s", exc)
                    except Exception:  # a poller that dies on one bad poll stops following the feeds for good
                        log.exception("feeds not polled")
                elif not yielded:
                    self.say(
                        f"Feeds: another process polls them (it holds {self.lock_path}); "
                        "this one takes over if it stops."
                    )
                    yielded = True
                stop.wait(tick)
        finally:
            if self.lock.is_locked:
                self.lock.release(force=True)
