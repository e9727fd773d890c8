"""`bot watch`: re-index when article files in the corpus folder are added, changed or deleted.

watchfiles (Rust `notify`: inotify on Linux, FSEvents on macOS) reports changes in batches and
debounces bursts, so copying a hundred files in starts one build, not a hundred. Hidden files
(the temporary files of atomic writes) and other suffixes are ignored. A build that fails is
reported and the watch goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from bot.articles.corpus import is_article_file
from bot.errors import BotError, CorpusError
from bot.indexing.building import BuildReport
from bot.indexing.stores import Store
from bot.models.encoder import Embedder

log = logging.getLogger(__name__)
DEBOUNCE_MS = 800


def watch(
    corpus_dir: Path,
    store: Store,
    embedder: Embedder,
    *,
    stop: threading.Event | None = None,
    on_build: Callable[[BuildReport], None] | None = None,
    on_error: Callable[[BotError], None] | None = None,
    debounce_ms: int = DEBOUNCE_MS,
    force_polling: bool | None = None,
    building: AbstractContextManager[object] | None = None,
) -> None:
    """Index now if stale, then after every batch of corpus changes, until `stop` is set.
    `building`: held around each check and build, shared with another writer of the process (the
    feed poller), so that files it wrote and indexed start no second build."""
    from watchfiles import watch as watch_changes

    corpus_dir = Path(corpus_dir).resolve()
    if not corpus_dir.is_dir():
        raise CorpusError(str(corpus_dir), "not a folder: `bot watch` watches a corpus folder")

    def rebuild() -> None:
        try:
            with building or nullcontext():
                if store.is_current(corpus_dir, embedder.name):
                    return  # e.g. a file saved with the same content, or indexed by the feed poller
                report = store.build(corpus_dir, embedder)
        except BotError as exc:
            log.error("index not rebuilt: %s", exc)
            if on_error:
                on_error(exc)
            return
        except Exception as exc:  # a watch that dies on one bad batch stops following the corpus for good
            log.exception("index not rebuilt")
            if on_error:
                on_error(BotError(f"index not rebuilt: {type(exc).__name__}: {exc}"))
            return
        if on_build:
            on_build(report)

    rebuild()
    changes = watch_changes(
        corpus_dir,
        watch_filter=lambda _change, path: is_article_file(path, corpus_dir),
        debounce=debounce_ms,
        stop_event=stop,
        force_polling=force_polling,
        yield_on_timeout=False,
        raise_interrupt=False,
    )
    for batch in changes:
        log.info("%d change(s) in %s: re-indexing", len(batch), corpus_dir)
        rebuild()
