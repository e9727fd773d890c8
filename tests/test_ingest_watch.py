"""`bot watch`: new, changed and deleted corpus files reach the index without a command."""

from __future__ import annotations

import threading
from pathlib import Path

from bot.articles.corpus import is_article_file
from bot.errors import BotError
from bot.indexing.building import BuildReport
from bot.indexing.stores import FaissStore
from bot.indexing.versions import open_index
from bot.indexing.watcher import watch
from tests.conftest import FakeEmbedder, wait_until, write_article


def test_watch_follows_new_changed_and_deleted_files(
    seed_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    index_dir = tmp_path / "index"
    stop = threading.Event()
    builds: list[BuildReport] = []
    errors: list[BotError] = []
    watcher = threading.Thread(
        target=watch,
        args=(seed_corpus, FaissStore(index_dir), fake_embedder),
        kwargs={"stop": stop, "on_build": builds.append, "on_error": errors.append, "debounce_ms": 200},
    )
    watcher.start()
    try:
        wait_until(lambda: len(builds) == 1, timeout=30)  # the stale (missing) index is built first

        def text_of(article_id: str) -> str | None:
            index = open_index(index_dir)
            number = index.article_number.get(article_id)
            return None if number is None else index.articles[number].text

        # A burst of files is debounced into batches: fewer builds than files.
        for n in range(8):
            write_article(seed_corpus, f"burst{n}.md", f"Burst {n}", f"Article {n} of a burst.")
        wait_until(lambda: all(text_of(f"burst{n}") for n in range(8)), timeout=30)
        assert len(builds) - 1 < 8
        write_article(seed_corpus, "burst0.md", "Burst 0", "Article 0, corrected.")
        wait_until(lambda: text_of("burst0") == "Article 0, corrected.", timeout=30)
        (seed_corpus / "burst1.md").unlink()
        wait_until(lambda: text_of("burst1") is None, timeout=30)
        # The version is published before the watcher hears back from its build: wait for both.
        wait_until(lambda: builds and builds[-1].version == open_index(index_dir).version, timeout=30)
        count = len(builds)
        (seed_corpus / ".tmp-123.md").write_text("ignored", encoding="utf-8")
        (seed_corpus / "notes.pdf").write_bytes(b"%PDF")
        write_article(seed_corpus, "last.md", "Last", "The last article.")
        wait_until(lambda: text_of("last") is not None, timeout=30)
        wait_until(lambda: builds[-1].version == open_index(index_dir).version, timeout=30)
        assert len(builds) == count + 1 and not errors  # the hidden and the .pdf file started no build
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert not watcher.is_alive()


def test_a_broken_corpus_is_reported_and_the_watch_goes_on(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    stop = threading.Event()
    builds: list[BuildReport] = []
    errors: list[BotError] = []
    watcher = threading.Thread(
        target=watch,
        args=(corpus, FaissStore(tmp_path / "index"), fake_embedder),
        kwargs={"stop": stop, "on_build": builds.append, "on_error": errors.append, "debounce_ms": 200},
    )
    watcher.start()
    try:
        wait_until(lambda: errors, timeout=30)
        assert "no readable articles" in str(errors[0])
        write_article(corpus, "first.md", "First", "The first article arrives.")
        wait_until(lambda: builds, timeout=30)
        assert builds[0].articles == 1
    finally:
        stop.set()
        watcher.join(timeout=30)


def test_only_article_files_count(tmp_path: Path) -> None:
    assert is_article_file(str(tmp_path / "a.md"), tmp_path)
    assert is_article_file(str(tmp_path / "sub" / "b.jsonl"), tmp_path)
    assert not is_article_file(str(tmp_path / ".tmp-1.md"), tmp_path)
    assert not is_article_file(str(tmp_path / "README.md"), tmp_path)
    assert not is_article_file(str(tmp_path / "x.pdf"), tmp_path)
