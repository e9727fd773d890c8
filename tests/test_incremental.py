"""Incremental indexing: only texts not embedded before are embedded; --full embeds everything."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.update_cost import measure_update_cost
from bot.cli import main
from bot.indexing.embedding_cache import EmbeddingCache
from bot.indexing.faiss_build import build_index
from bot.indexing.versions import open_index
from tests.conftest import FakeEmbedder, write_article

NEW_BODY = (
    "The new campus in Ohio will open in 2027, the companies said.\n\n"
    "It will employ 800 people once running. Construction starts in the spring."
)


class CountingEmbedder(FakeEmbedder):
    """The fake embedder, counting the texts it is asked to embed."""

    def __init__(self, name: str = FakeEmbedder.name) -> None:
        self.name = name
        self.texts: list[str] = []

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        self.texts.extend(texts)
        return super().encode(texts, batch_size=batch_size, progress=progress)


def distinct_texts(index_dir: Path) -> tuple[set[str], set[str]]:
    index = open_index(index_dir)
    passages = {index.span_text(int(a), int(s), int(e)) for a, s, e, _, _ in np.asarray(index.passages)}
    units = {index.span_text(int(a), int(s), int(e)) for a, s, e in np.asarray(index.units)}
    return passages, units


def test_adding_an_article_embeds_only_its_texts(seed_corpus: Path, tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    index_dir = tmp_path / "index"
    first = build_index(seed_corpus, index_dir, embedder)
    passages, units = distinct_texts(index_dir)
    assert first.embedded == len(embedder.texts) == len(passages) + len(units)
    embedder.texts.clear()
    write_article(seed_corpus, "ohio.md", "Ohio campus", NEW_BODY)
    second = build_index(seed_corpus, index_dir, embedder)
    new_passages, new_units = distinct_texts(index_dir)
    expected = (new_passages - passages) | (new_units - units)
    assert set(embedder.texts) == expected and second.embedded == len(embedder.texts)
    assert 0 < second.embedded <= 6
    # The vectors are those a rebuild from scratch computes.
    fresh = tmp_path / "fresh"
    build_index(seed_corpus, fresh, FakeEmbedder())
    a, b = open_index(index_dir), open_index(fresh)
    assert np.array_equal(np.asarray(a.passage_vectors), np.asarray(b.passage_vectors))
    assert np.array_equal(np.asarray(a.unit_vectors), np.asarray(b.unit_vectors))
    # The chunks reused from the previous version are those chunking again gives.
    assert np.array_equal(np.asarray(a.passages), np.asarray(b.passages))
    assert np.array_equal(np.asarray(a.units), np.asarray(b.units))


def test_chunks_are_reused_only_from_a_version_chunked_by_the_same_rules(
    seed_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.indexing.faiss_build import previous_chunks

    build_index(seed_corpus, tmp_path / "index", FakeEmbedder())
    known = previous_chunks(tmp_path / "index")
    assert len(known) == 1
    units, passages = next(iter(known.values()))
    assert passages[0, 2] == 0 and passages[-1, 3] == len(units)
    monkeypatch.setattr("bot.indexing.faiss_build.chunker_key", lambda: "other rules")
    assert previous_chunks(tmp_path / "index") == {}
    assert previous_chunks(tmp_path / "none") == {}


def test_removed_articles_leave_the_index_without_embedding(seed_corpus: Path, tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    path = write_article(seed_corpus, "ohio.md", "Ohio campus", NEW_BODY)
    build_index(seed_corpus, tmp_path / "index", embedder)
    assert "ohio" in open_index(tmp_path / "index").article_number
    path.unlink()
    report = build_index(seed_corpus, tmp_path / "index", embedder)
    assert report.embedded == 0 and report.articles == 1
    assert "ohio" not in open_index(tmp_path / "index").article_number


def test_full_rebuild_and_another_model_embed_everything(seed_corpus: Path, tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    first = build_index(seed_corpus, tmp_path / "index", embedder)
    assert build_index(seed_corpus, tmp_path / "index", embedder).embedded == 0
    assert build_index(seed_corpus, tmp_path / "index", embedder, full=True).embedded == first.embedded
    other = CountingEmbedder(name="another-model")
    assert build_index(seed_corpus, tmp_path / "index", other).embedded == first.embedded


def test_a_build_that_fails_mid_way_keeps_what_it_embedded(
    seed_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.indexing.embedding_cache.FLUSH_EVERY", 4)

    class Failing(CountingEmbedder):
        def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
            if len(self.texts) >= 8:
                raise RuntimeError("out of memory")
            return super().encode(texts, batch_size=batch_size, progress=progress)

    failing = Failing()
    with pytest.raises(RuntimeError):
        build_index(seed_corpus, tmp_path / "index", failing)
    embedder = CountingEmbedder()
    report = build_index(seed_corpus, tmp_path / "index", embedder)
    passages, units = distinct_texts(tmp_path / "index")
    # Every batch embedded before the failure was kept: only the rest is embedded now.
    assert len(failing.texts) >= 8 and report.embedded == len(passages) + len(units) - len(failing.texts)


def test_a_damaged_cache_is_ignored_and_a_grown_one_pruned(
    seed_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = CountingEmbedder()
    index_dir = tmp_path / "index"
    first = build_index(seed_corpus, index_dir, embedder)
    for shard in (index_dir / "embeddings").glob("*/shard-*"):
        (shard / "vectors.npy").write_bytes(b"not numpy")
    assert build_index(seed_corpus, index_dir, embedder).embedded == first.embedded
    monkeypatch.setattr("bot.indexing.embedding_cache.PRUNE_SLACK", 0)
    path = write_article(seed_corpus, "ohio.md", "Ohio campus", NEW_BODY)
    build_index(seed_corpus, index_dir, embedder)
    path.unlink()
    build_index(seed_corpus, index_dir, embedder)
    passages, _ = distinct_texts(index_dir)
    cache = EmbeddingCache(index_dir / "embeddings", "passages", embedder.name, embedder.dimension)
    assert len(cache) == len(passages)
    assert len(list(cache.folder.glob("shard-*"))) == 1


def test_update_cost_is_measured(tmp_path: Path) -> None:
    cost = measure_update_cost(FakeEmbedder(), articles=60, workdir=tmp_path)
    assert cost.articles == 60 and cost.passages >= 60
    assert cost.embedded_full == cost.passages + cost.units or cost.embedded_full < cost.passages + cost.units
    assert 0 < cost.embedded_add_one < cost.embedded_full / 20
    # Seconds are measured and reported, not judged: the fraction is `make bench`'s figure (~0.16 here),
    # and one slow wall-clock moment on a busy machine made it 1.7.
    assert (
        cost.full_seconds > 0
        and cost.add_one_seconds > 0
        and cost.fraction == pytest.approx(cost.add_one_seconds / cost.full_seconds)
    )
    assert set(cost.as_dict()) >= {"fraction", "full_seconds", "add_one_seconds"}


@pytest.mark.slow
def test_cli_index_ingest_and_full_with_the_real_model(
    seed_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    index_dir = tmp_path / "index"
    monkeypatch.setenv("BOT_CORPUS_DIR", str(seed_corpus))
    monkeypatch.setenv("BOT_INDEX_DIR", str(index_dir))
    assert main(["index"]) == 0
    capsys.readouterr()
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    write_article(incoming, "ohio.md", "Ohio campus", NEW_BODY)
    assert main(["ingest", str(incoming / "ohio.md")]) == 0
    out = capsys.readouterr().out
    assert "added     " in out and "1 added, 0 updated" in out
    assert " 3 texts embedded" in out or " 4 texts embedded" in out or " 5 texts embedded" in out, out
    assert "ohio" in open_index(index_dir).article_number
    assert main(["ingest", str(incoming / "ohio.md")]) == 0
    assert "0 added, 0 updated, 0 linked, 1 duplicate" in capsys.readouterr().out
    assert main(["index", "--full"]) == 0
    full_out = capsys.readouterr().out
    assert "Indexed 2 articles" in full_out
    shutil.rmtree(incoming)
