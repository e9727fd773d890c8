from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bot.errors import CorpusError, IndexMismatchError, IndexMissingError
from bot.indexing.faiss_build import build_index, is_current
from bot.indexing.versions import current_version, open_index
from tests.conftest import ROOT, FakeEmbedder, write_article


def test_build_writes_a_complete_version(seed_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    report = build_index(seed_corpus, tmp_path / "index", fake_embedder)
    index = open_index(tmp_path / "index")
    manifest = json.loads((tmp_path / "index" / "versions" / report.version / "manifest.json").read_text())
    assert manifest["model"] == {"name": "fake-hashing-64", "dimension": 64}
    assert manifest["counts"]["passages"] == len(index) == report.passages
    assert manifest["counts"]["articles"] == 1
    for key in ("format_version", "built_at", "corpus", "version"):
        assert key in manifest
    for a, s, e, lo, hi in np.asarray(index.passages):
        article = index.articles[a]
        assert index.units[lo, 1] == s and index.units[hi - 1, 2] == e
        assert article.text[s:e].strip() == article.text[s:e]


def test_is_current_tracks_corpus_and_model(seed_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    index_dir = tmp_path / "index"
    assert not is_current(seed_corpus, index_dir, fake_embedder.name)
    build_index(seed_corpus, index_dir, fake_embedder)
    assert is_current(seed_corpus, index_dir, fake_embedder.name)
    assert not is_current(seed_corpus, index_dir, "another-model")
    write_article(seed_corpus, "new.md", "New", "Fresh text.")
    assert not is_current(seed_corpus, index_dir, fake_embedder.name)


def test_missing_index_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(IndexMissingError, match="run `bot index` first"):
        open_index(tmp_path / "none")


def test_model_mismatch_is_a_clear_error(seed_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    build_index(seed_corpus, tmp_path / "index", fake_embedder)
    with pytest.raises(IndexMismatchError, match=r"built with model 'fake-hashing-64'.*bot index --full"):
        open_index(tmp_path / "index").check_model("sentence-transformers/all-MiniLM-L6-v2")


def test_format_mismatch_is_a_clear_error(seed_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    report = build_index(seed_corpus, tmp_path / "index", fake_embedder)
    manifest_path = tmp_path / "index" / "versions" / report.version / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 0
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatchError, match="format 0"):
        open_index(tmp_path / "index")


def test_empty_corpus_is_refused(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    (tmp_path / "corpus").mkdir()
    with pytest.raises(CorpusError, match="no readable articles"):
        build_index(tmp_path / "corpus", tmp_path / "index", fake_embedder)


def test_old_versions_are_collected(
    seed_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.indexing.versions.KEEP_REPLACED_SECONDS", 0.0)  # no server is loading any of them
    for n in range(5):
        write_article(seed_corpus, f"extra{n}.md", f"Extra {n}", f"Text number {n}.")
        build_index(seed_corpus, tmp_path / "index", fake_embedder)
    versions = sorted(p.name for p in (tmp_path / "index" / "versions").iterdir())
    assert len(versions) == 3
    assert current_version(tmp_path / "index") == versions[-1]


def test_killed_build_leaves_the_previous_index_loadable(
    seed_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    index_dir = tmp_path / "index"
    first = build_index(seed_corpus, index_dir, fake_embedder).version
    write_article(seed_corpus, "more.md", "More", "Another article about data centres.")
    # A real process, killed with SIGKILL while it writes the new version's files.
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        import numpy as np
        from tests.conftest import FakeEmbedder
        import bot.indexing.versions as store
        real_save = np.save
        def dying_save(path, array, *a, **k):
            real_save(path, array, *a, **k)
            if str(path).endswith("units.npy"):
                os.kill(os.getpid(), signal.SIGKILL)
        store.np.save = dying_save
        from bot.indexing.faiss_build import build_index
        build_index({str(seed_corpus)!r}, {str(index_dir)!r}, FakeEmbedder())
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    assert any(index_dir.glob(".building-*")), "the build died mid-way, leaving its staging folder"
    index = open_index(index_dir)
    assert index.version == first and len(index.articles) == 1
    # The next run completes the work and clears the leftovers.
    second = build_index(seed_corpus, index_dir, fake_embedder)
    assert open_index(index_dir).version == second.version != first
    assert not any(index_dir.glob(".building-*"))
    assert len(open_index(index_dir).articles) == 2
    assert os.listdir(index_dir / "versions")
