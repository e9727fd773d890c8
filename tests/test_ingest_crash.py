"""kill -9 at any moment of an ingest leaves the previous index serving and the corpus whole."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot.articles.corpus import load_corpus
from bot.indexing.stores import FaissStore
from bot.indexing.versions import open_index
from bot.service import ingest
from tests.conftest import ROOT, FakeEmbedder, write_article

# Where the ingest process is killed: patched into it before it starts.
KILL_POINTS = {
    "mid-file": """
        import bot.durable as target
        def dying_replace(src, dst):
            os.kill(os.getpid(), signal.SIGKILL)  # the temporary file is written, not yet renamed
        target.os.replace = dying_replace
    """,
    "between-files": """
        import bot.articles.ingest as target
        real = target.write_atomically
        written = []
        def dying_write(path, content):
            real(path, content)
            written.append(path)
            if len(written) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        target.write_atomically = dying_write
    """,
    "mid-build": """
        import bot.indexing.embedding_cache as target
        real = target.EmbeddingCache._append
        def dying_append(self, keys, vectors):
            real(self, keys, vectors)
            os.kill(os.getpid(), signal.SIGKILL)
        target.EmbeddingCache._append = dying_append
    """,
    "publishing": """
        import bot.indexing.versions as target
        def dying_publish(index_dir, version):
            os.kill(os.getpid(), signal.SIGKILL)  # the version is complete, CURRENT not yet switched
        target.publish = dying_publish
    """,
}


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_sigkill_during_ingest_loses_nothing_and_the_rerun_finishes(
    point: str, seed_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    index_dir = tmp_path / "index"
    ingest([str(seed_corpus)], [], seed_corpus, FaissStore(index_dir), fake_embedder)  # index the seed
    before = open_index(index_dir).version
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for n, place in enumerate(["Ohio", "Texas", "Arizona"]):
        write_article(incoming, f"{n}.md", f"A campus in {place}", f"Work on the {place} campus began in week {n}.")
    script = (
        textwrap.dedent(
            f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from tests.conftest import FakeEmbedder
        """
        )
        + textwrap.dedent(KILL_POINTS[point])
        + textwrap.dedent(
            f"""
        from bot.indexing.stores import FaissStore
        from bot.service import ingest
        ingest([{str(incoming)!r}], [], Path({str(seed_corpus)!r}), FaissStore(Path({str(index_dir)!r})), FakeEmbedder())
        """
        )
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]
    # The previous version still serves, and the corpus is whole files only.
    assert open_index(index_dir).version == before
    corpus = load_corpus(seed_corpus)
    assert not corpus.errors
    written = {a.title for a in corpus.articles} - {"OpenAI, Softbank launch Stargate Project"}
    expected_written = {"mid-file": 0, "between-files": 2, "mid-build": 3, "publishing": 3}[point]
    assert len(written) == expected_written
    # The next run completes the work: what was accepted is indexed, nothing twice.
    report, build = ingest([str(incoming)], [], seed_corpus, FaissStore(index_dir), fake_embedder)
    assert report.count("duplicate") == expected_written and report.count("added") == 3 - expected_written
    assert build is not None
    titles = sorted(a.title for a in open_index(index_dir).articles)
    assert titles == sorted(["A campus in Ohio", "A campus in Texas", "A campus in Arizona", *load_titles(seed_corpus)])
    assert len(titles) == 4 and not list(seed_corpus.glob(".tmp-*"))


def load_titles(corpus: Path) -> list[str]:
    return [a.title for a in load_corpus(corpus).articles if not a.title.startswith("A campus in")]


def test_an_accepted_article_is_indexed_by_the_next_ingest_even_with_nothing_new(
    seed_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    index_dir = tmp_path / "index"
    ingest([str(seed_corpus)], [], seed_corpus, FaissStore(index_dir), fake_embedder)
    # As if an ingest died right after writing the file: the corpus has it, the index not yet.
    write_article(seed_corpus, "late.md", "Late article", "It was written before the crash.")
    report, build = ingest([], [], seed_corpus, FaissStore(index_dir), fake_embedder)
    assert not report.outcomes and build is not None
    assert "late" in open_index(index_dir).article_number
