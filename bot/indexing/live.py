"""The index a running server answers from, swapped in place when a new version is published.

Readers take a reference with `current()` and keep using it for the whole request, so a swap
never changes the index under a request that is in flight; the old version is released when the
last such reference goes. Several processes can share one index folder: each watches CURRENT.
"""

from __future__ import annotations

import logging
import threading

from bot.errors import BotError, IndexMissingError
from bot.indexing.index import Index
from bot.indexing.stores import Store

log = logging.getLogger(__name__)


class LiveIndex:
    """The current index version of a store, reloaded when a new one is published."""

    def __init__(self, store: Store, model: str) -> None:
        self.store = store
        self.model = model
        self._index: Index | None = None
        self._error: str | None = "The index is loading."
        self._lock = threading.Lock()  # one reload at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_refusal: str | None = None

    def current(self) -> Index | None:
        """The loaded index, or None while loading or when it cannot be loaded (see `error`)."""
        return self._index

    @property
    def error(self) -> str | None:
        """Why there is no index to answer from, if there is none."""
        return None if self._index is not None else self._error

    def refresh(self) -> bool:
        """Load the published version if it differs from the one in memory; True if swapped."""
        with self._lock:
            try:
                version = self.store.current_version()
                if self._index is not None and self._index.version == version:
                    return False
                index = self.store.open()
                index.check_model(self.model)
            except BotError as exc:
                # A version that cannot be used (corrupt, half-copied, another model) is refused
                # with its reason; the one in memory keeps serving and the next poll tries again,
                # so a later good version (or this one, once its copy completes) is picked up.
                if self._index is None or not isinstance(exc, IndexMissingError):
                    self._error = str(exc)
                self._refused(str(exc))
                return False
            except Exception as exc:  # anything else a damaged version can raise: same treatment
                self._refused(f"{type(exc).__name__}: {exc}", unexpected=True)
                return False
            previous = self._index
            self._index, self._error, self._last_refusal = index, None, None
        log.info("serving index %s (%d passages)", index.version, len(index))
        return previous is not None

    def _refused(self, reason: str, unexpected: bool = False) -> None:
        """Log why the published version is not served: once per distinct reason, not every poll."""
        if reason == self._last_refusal:
            return
        self._last_refusal = reason
        keeping = f"keeping index {self._index.version}" if self._index is not None else "no index loaded"
        if unexpected:
            log.error("index not loaded (%s): %s", keeping, reason, exc_info=True)
        else:
            log.warning("index not loaded (%s): %s", keeping, reason)

    def watch(self, interval: float = 1.0) -> None:
        """Poll CURRENT (or Milvus's pointer row) every `interval` seconds in a daemon thread."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.refresh()
                except Exception:  # the watch must outlive any one bad poll, or CURRENT is never followed again
                    log.exception("index watch: poll failed; polling on")

        self._thread = threading.Thread(target=loop, name="index-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
