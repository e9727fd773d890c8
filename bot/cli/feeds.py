"""`bot feeds add|list|remove|poll`: feed subscriptions, and the poller `bot watch` runs."""

from __future__ import annotations

import argparse
import json
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path

from bot.articles.fetching import fetch
from bot.articles.ingest import CorpusWriter, IngestReport
from bot.articles.sources import Draft, Rejection, parse_feed
from bot.errors import BotError, IngestError
from bot.feeds.polling import ACCEPT, Poller
from bot.feeds.subscriptions import Subscription, checked_feed_url, format_every, parse_every
from bot.models.encoder import Embedder, get_embedder
from bot.service import accept_then_build
from bot.settings import Settings, feed_store, get_settings, store_of

POLLED_BY = "`bot watch` polls it (or `bot feeds poll`, or a `bot serve` with BOT_POLL_FEEDS=1)"


def poller_for(
    settings: Settings,
    corpus: Path,
    index_dir: Path | None,
    *,
    embedder: Embedder | None = None,
    building: AbstractContextManager[object] | None = None,
) -> Poller:
    """The poller of the settings' feeds, writing into `corpus` and rebuilding the index once per
    poll (under `building`, when the process has another writer: `bot watch`'s folder watch), with
    `embedder` (default: the settings' model, loaded at the first build)."""
    store = store_of(settings, index_dir)
    writer = CorpusWriter(corpus, store.index_dir / ".ingest.lock")

    def take(items: list[Draft | Rejection]) -> IngestReport:
        with building or nullcontext():
            report, build = accept_then_build(writer, items, store, embedder or get_embedder(settings.model))
        if build is not None:
            print(
                f"Indexed {build.articles} articles ({build.embedded} texts embedded) in {build.seconds:.1f}s: "
                f"{build.version}",
                flush=True,
            )
        return report

    return Poller(
        feed_store(settings),
        take,
        writer.known_urls,
        store.index_dir,
        allow_private=settings.allow_private_urls,
        first_poll=settings.feed_first_poll,
        say=lambda line: print(line, flush=True),
    )


def cmd_feeds(args: argparse.Namespace) -> int:
    run = {"add": _add, "list": _list, "remove": _remove, "poll": _poll}[args.action]
    return run(args, get_settings())


def _add(args: argparse.Namespace, settings: Settings) -> int:
    url = checked_feed_url(args.url)
    every = parse_every(args.every) if args.every is not None else settings.feed_every
    if args.first is not None and args.first < 0:
        raise BotError(f"--first {args.first}: the first poll takes 0 or more entries")
    # Fetched once now, through the same guard as every poll: a URL that is refused, unreachable
    # or not a feed is not subscribed. Its validators are not kept: the first poll reads it whole.
    try:
        feed = parse_feed(fetch(url, allow_private=settings.allow_private_urls, accept=ACCEPT).text, url)
    except IngestError as exc:
        raise IngestError(f"{exc}; not subscribed (check the URL, or add it again once the site answers)") from None
    subscription, new = feed_store(settings).add(url, every, time.time(), first=args.first)
    name = f"{feed.title} ({subscription.label})" if feed.title else subscription.label
    if not new:
        print(f"Already subscribed to {name}: now polled every {format_every(subscription.every)}.")
        return 0
    first = subscription.first if subscription.first is not None else settings.feed_first_poll
    print(
        f"Subscribed to {name}: {len(feed.entries)} entr{'y' if len(feed.entries) == 1 else 'ies'} now; "
        "its first poll takes the newest "
        f"{min(first, len(feed.entries))}, then every {format_every(every)}. {POLLED_BY}."
    )
    return 0


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    removed = feed_store(settings).remove(args.url)
    print(f"Unsubscribed from {removed.label}; its {removed.new_articles} articles stay in the corpus.")
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    feeds, now = feed_store(settings).feeds(), time.time()
    if args.json:
        print(json.dumps([_as_json(feed) for feed in feeds], indent=2, ensure_ascii=False))
        return 0
    if not feeds:
        print("No feeds subscribed: `bot feeds add URL` subscribes to one.")
        return 0
    rows = [["feed", "every", "last poll", "outcome", "next poll"]]
    for feed in feeds:
        outcome = feed.outcome or "not polled yet"
        if feed.failures:
            outcome += f" ({feed.failures} failure{'s' if feed.failures > 1 else ''} in a row)"
        last = f"{format_every(now - feed.last_poll, units=2)} ago" if feed.last_poll else "never"
        due = "due now" if feed.next_poll <= now else f"in {format_every(feed.next_poll - now, units=2)}"
        origin = " (BOT_FEEDS)" if feed.origin == "env" else ""
        rows.append([feed.label + origin, format_every(feed.every), last, outcome, due])
    widths = [max(len(row[n]) for row in rows) for n in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


def _when(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _as_json(feed: Subscription) -> dict[str, object]:
    return {
        "url": feed.label,
        "every": format_every(feed.every),
        "every_seconds": feed.every,
        "from": "BOT_FEEDS" if feed.origin == "env" else "bot feeds add",
        "first_poll": feed.first,
        "last_poll": _when(feed.last_poll),
        "outcome": feed.outcome,
        "ok": feed.ok,
        "consecutive_failures": feed.failures,
        "next_poll": _when(feed.next_poll),
        "etag": feed.etag,
        "last_modified": feed.last_modified,
        "polls": feed.polls,
        "not_modified": feed.not_modified,
        "new_articles": feed.new_articles,
        "failed_polls": feed.failed_polls,
    }


def _poll(args: argparse.Namespace, settings: Settings) -> int:
    poller = poller_for(settings, args.corpus or settings.corpus_dir, args.index)
    with poller.holding():
        polled = poller.poll_due()
    if not polled:
        upcoming = min((f.next_poll for f in poller.feeds.feeds()), default=None)
        when = f"; the next is due in {format_every(upcoming - time.time())}" if upcoming else ""
        print(f"No feed is due{when}." if upcoming else "No feeds subscribed: `bot feeds add URL` subscribes to one.")
    return 0


def follow_feeds(
    settings: Settings, corpus: Path, index_dir: Path | None, embedder: Embedder, building: threading.Lock
) -> threading.Event:
    """Poll the feeds in a thread of `bot watch` until the returned event is set."""
    stop = threading.Event()
    poller = poller_for(settings, corpus, index_dir, embedder=embedder, building=building)
    threading.Thread(target=poller.run, args=(stop,), name="feeds", daemon=True).start()
    return stop
