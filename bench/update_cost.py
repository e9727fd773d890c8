"""What adding one article costs, as a fraction of rebuilding the whole index.

`measure_update_cost(embedder, articles=10_000)` writes a synthetic corpus (reproducible
news-like text), builds it from scratch with an empty embedding cache, adds one article and
times the incremental build that follows. The fraction is dominated by embedding: a rebuild
embeds every passage and sentence, an update only the new article's, plus the fixed costs
that do not shrink with the change (reading and chunking the corpus, BM25, writing a version).
`bench/run.py` reports it.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bot.indexing.faiss_build import build_index
from bot.models.encoder import Embedder

_SYLLABLES = ["ta", "ro", "mi", "ken", "sa", "lu", "dor", "vi", "pe", "gan", "chi", "mo", "rel", "ba", "nu", "tes"]


@dataclass(frozen=True)
class UpdateCost:
    articles: int
    passages: int
    units: int
    full_seconds: float  # a rebuild from scratch, nothing cached
    add_one_seconds: float  # the build after adding one article to the corpus
    embedded_full: int
    embedded_add_one: int

    @property
    def fraction(self) -> float:
        return self.add_one_seconds / self.full_seconds if self.full_seconds else float("nan")

    def as_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "fraction": round(self.fraction, 5)}


def make_vocabulary(size: int, rng: np.random.Generator) -> list[str]:
    words = {"".join(rng.choice(_SYLLABLES, size=int(rng.integers(1, 4)))) for _ in range(size * 2)}
    return sorted(words)[:size]


def synthetic_article(number: int, rng: np.random.Generator, vocabulary: list[str], words: int = 250) -> dict[str, str]:
    """One article of about `words` words in sentences of 8-24 words, paragraphs of 3-5 sentences."""
    paragraphs: list[str] = []
    sentences: list[str] = []
    count = 0
    while count < words:
        length = int(rng.integers(8, 25))
        picked = rng.choice(vocabulary, size=length)
        sentences.append(" ".join(picked).capitalize() + ".")
        count += length
        if len(sentences) >= int(rng.integers(3, 6)):
            paragraphs.append(" ".join(sentences))
            sentences = []
    if sentences:
        paragraphs.append(" ".join(sentences))
    day = 1 + number % 28
    return {
        "id": f"synthetic-{number:06d}",
        "title": " ".join(rng.choice(vocabulary, size=6)).capitalize(),
        "text": "\n\n".join(paragraphs),
        "date": f"2025-01-{day:02d}",
        "url": f"https://news.example/{number}",
    }


def write_synthetic_corpus(folder: Path, articles: int, seed: int = 0, words: int = 250) -> Path:
    """A corpus folder holding `articles` synthetic articles in one .jsonl file."""
    rng = np.random.default_rng(seed)
    vocabulary = make_vocabulary(5000, rng)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "synthetic.jsonl").open("w", encoding="utf-8") as handle:
        for number in range(articles):
            handle.write(json.dumps(synthetic_article(number, rng, vocabulary, words)) + "\n")
    return folder


def measure_update_cost(
    embedder: Embedder, articles: int = 10_000, workdir: Path | None = None, words: int = 250
) -> UpdateCost:
    """Time a full build of `articles` synthetic articles, then the build after adding one more."""
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        corpus = write_synthetic_corpus(Path(scratch) / "corpus", articles, words=words)
        index_dir = Path(scratch) / "index"
        started = time.perf_counter()
        full = build_index(corpus, index_dir, embedder, full=True)
        full_seconds = time.perf_counter() - started
        rng = np.random.default_rng(1)
        extra = synthetic_article(articles, rng, make_vocabulary(5000, rng), words)
        front = f"---\ntitle: {extra['title']}\ndate: {extra['date']}\nurl: {extra['url']}\n---\n"
        (corpus / "new-article.md").write_text(front + extra["text"] + "\n", encoding="utf-8")
        started = time.perf_counter()
        update = build_index(corpus, index_dir, embedder)
        add_one_seconds = time.perf_counter() - started
    return UpdateCost(
        articles=articles,
        passages=full.passages,
        units=full.units,
        full_seconds=full_seconds,
        add_one_seconds=add_one_seconds,
        embedded_full=full.embedded,
        embedded_add_one=update.embedded,
    )
