"""The approximate (IVF) index used above BOT_APPROXIMATE_ABOVE: chosen, tuned, loaded, filtered."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from bot.indexing.dense import IVF_NPROBE, build_faiss, ivf_lists
from bot.indexing.faiss_build import build_index
from bot.indexing.versions import open_index
from tests.conftest import FakeEmbedder, write_article


def clustered(n: int, dimension: int, seed: int = 0, per_cluster: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n // per_cluster, dimension)).astype(np.float32)
    points = centres[rng.integers(0, len(centres), n)] + rng.standard_normal((n, dimension)).astype(np.float32) * 0.3
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return np.ascontiguousarray(points)


def recall_at_10(approximate: object, exact: object, queries: np.ndarray) -> float:
    _, truth = exact.search(queries, 10)  # type: ignore[attr-defined]
    _, found = approximate.search(queries, 10)  # type: ignore[attr-defined]
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)]))


def test_list_count_grows_with_the_square_root_and_stays_trainable() -> None:
    assert ivf_lists(1_000_000) == 4096
    assert ivf_lists(250_000) == 2048
    assert ivf_lists(4_000) == 100  # 4·sqrt(4000) ≈ 253 lists would have too few vectors each to train
    assert ivf_lists(1) == 1


def test_exact_below_the_threshold_and_ivf_above_it() -> None:
    vectors = clustered(4_000, 32)
    assert isinstance(build_faiss(vectors, approximate_above=4_000), faiss.IndexFlatIP)
    approximate = build_faiss(vectors, approximate_above=3_999)
    assert isinstance(approximate, faiss.IndexIVF)
    assert approximate.nlist == 100 and approximate.nprobe == IVF_NPROBE and approximate.ntotal == 4_000


def test_ivf_recall_at_10_against_exact_search() -> None:
    vectors = clustered(8_000, 48)
    rng = np.random.default_rng(3)
    queries = vectors[rng.integers(0, len(vectors), 100)] + rng.standard_normal((100, 48)).astype(np.float32) * 0.05
    queries = np.ascontiguousarray(queries / np.linalg.norm(queries, axis=1, keepdims=True), dtype=np.float32)
    exact = build_faiss(vectors, approximate_above=10**9)
    approximate = build_faiss(vectors, approximate_above=0)
    assert recall_at_10(approximate, exact, queries) >= 0.95
    approximate.nprobe = 1  # one list of many: the tuned nprobe is what buys the recall
    assert recall_at_10(approximate, exact, queries) < recall_at_10(exact, exact, queries)


def test_a_large_index_is_written_loaded_and_filtered_as_ivf(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(1)
    words = "energy grid chip cloud fund board plant site power data model policy trade market".split()
    for n in range(60):
        body = " ".join(" ".join(rng.choice(words, 12)).capitalize() + "." for _ in range(3))
        write_article(corpus, f"a{n:02d}.md", f"Article {n}", body, date=f"2025-01-{n % 28 + 1:02d}")
    report = build_index(corpus, tmp_path / "index", fake_embedder, approximate_above=10)
    index = open_index(tmp_path / "index")
    assert index.manifest["faiss"] == "IndexIVFFlat" and report.passages >= 60
    assert isinstance(index.faiss, faiss.IndexIVF) and index.faiss.nprobe == IVF_NPROBE
    vectors = np.asarray(index.passage_vectors)
    ids, scores = index.dense_search(vectors[7], 5)
    assert ids[0] == 7 and abs(scores[0] - 1.0) < 1e-5
    allowed = [int(index.passages[p, 0]) for p in (3, 30)]
    ids, _ = index.dense_search(vectors[7], 5, mask=index.passage_mask(allowed))
    assert len(ids) and set(np.asarray(index.passages)[ids, 0]) <= set(allowed)
