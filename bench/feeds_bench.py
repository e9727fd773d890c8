"""The feed poller's cost: a poll answered 304, a poll with 10 new entries, a first poll of 5,000.

Each is measured next to a baseline of the same run: a bare conditional GET of the same feed
(httpx, no guard), `bot ingest` of 10 other new pages of the same site (fetch, corpus write, one
incremental build: what the poll does by hand), and feedparser alone on the 5,000-entry feed. The
feed and its pages are served on loopback by `tests/feed_site.py` (made-up articles); builds
run with the real model over the seed corpus plus what the feed brought.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests/feed_site.py: the site the tests poll

from bot.articles.ingest import CorpusWriter, IngestReport  # noqa: E402
from bot.articles.sources import Draft, Rejection, parse_feed  # noqa: E402
from bot.feeds.polling import Poller  # noqa: E402
from bot.feeds.subscriptions import FeedStore  # noqa: E402
from bot.indexing.faiss_build import build_index  # noqa: E402
from bot.indexing.stores import FaissStore  # noqa: E402
from bot.models.encoder import Embedder  # noqa: E402
from bot.service import accept_then_build, ingest  # noqa: E402
from tests.feed_site import FeedSite, made_up_story  # noqa: E402


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _poller(work: Path, embedder: Embedder, clock: Clock, first: int) -> Poller:
    store = FaissStore(work / "index")
    writer = CorpusWriter(work / "corpus", store.index_dir / ".ingest.lock")

    def take(items: list[Draft | Rejection]) -> IngestReport:
        return accept_then_build(writer, items, store, embedder)[0]

    return Poller(
        FeedStore(work / "data"),
        take,
        writer.known_urls,
        store.index_dir,
        allow_private=True,
        first_poll=first,
        clock=clock,
    )


def measure(embedder: Embedder, work: Path, first: int = 20, entries: int = 5000, usual: int = 50) -> dict[str, Any]:
    """Seconds of each poll and of its baseline (medians of 20 for the 304s). The 304 and the 10
    new entries are polled on a feed of `usual` entries (news feeds list 10-100), the first poll
    on one of `entries`."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "corpus", work / "corpus")
    build_index(work / "corpus", work / "index", embedder)
    base = time.time() - 86400
    figures: dict[str, Any] = {"entries": entries, "first": first, "usual_entries": usual}
    clock = Clock()
    poller = _poller(work, embedder, clock, first)
    with FeedSite() as big:
        big.publish(*(made_up_story(n, base + n) for n in range(entries)))
        poller.feeds.add(big.feed_url, 86400, clock())
        started = time.perf_counter()
        [(_, record)] = poller.poll_due()
        figures["first_poll_s"] = time.perf_counter() - started
        figures["first_poll_outcome"] = record.outcome
        body, _, _ = big.xml()
        figures["feed_bytes"] = len(body)
        started = time.perf_counter()
        parse_feed(body.decode(), big.feed_url)
        figures["parse_only_s"] = time.perf_counter() - started

    with FeedSite() as site:
        number = entries  # stories of their own: none is in the corpus yet
        site.publish(*(made_up_story(number + n, base + n) for n in range(usual)))
        number += usual
        poller.feeds.add(site.feed_url, 60, clock(), first=usual)
        clock.now += 60
        poller.poll_due()  # takes them all
        polls, bare = [], []
        for _ in range(20):
            clock.now += 60
            started = time.perf_counter()
            [(_, record)] = poller.poll_due()
            polls.append(time.perf_counter() - started)
            assert record.not_modified, record.outcome
            found = poller.feeds.find(site.feed_url)
            etag = (found.etag if found else None) or ""
            started = time.perf_counter()
            status = httpx.get(site.feed_url, headers={"If-None-Match": etag}).status_code
            bare.append(time.perf_counter() - started)
            assert status == 304
        figures["poll_304_ms"] = statistics.median(polls) * 1000
        figures["bare_304_ms"] = statistics.median(bare) * 1000

        site.publish(*(made_up_story(number + n, time.time() + n) for n in range(10)))
        number += 10
        clock.now += 60
        started = time.perf_counter()
        [(_, record)] = poller.poll_due()
        figures["poll_10_new_s"] = time.perf_counter() - started
        figures["poll_10_new_outcome"] = record.outcome

        site.publish(*(made_up_story(number + n, time.time() + 10 + n) for n in range(10)))
        urls = [f"{site.url}/news/{story.slug}" for story in site.stories[:10]]
        started = time.perf_counter()
        report, _ = ingest(urls, [], work / "corpus", FaissStore(work / "index"), embedder, allow_private=True)
        figures["ingest_10_s"] = time.perf_counter() - started
        figures["ingest_10_outcome"] = report.summary()
    return figures
