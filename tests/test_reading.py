"""The rescoring step: a reader's scores decide which sentence is quoted; no reader, no change."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bot.answer.answering import answer
from bot.answer.asking import Ask
from bot.indexing.faiss_build import build_index
from bot.indexing.versions import open_index
from tests.conftest import FakeEmbedder, write_article

BODY = (
    "The Harrowgate ferry terminal was opened by the mayor of Quillfield on a windy morning. "
    "Its builder, Brightwater Marine, finished the terminal two months ahead of plan."
)


class PrefersBuilder:
    """A reader that knows the builder's sentence answers "who built it"; it records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def score(self, question: str, texts: list[str]) -> np.ndarray:
        self.calls.append((question, texts))
        return np.array([5.0 if "Brightwater" in t else -5.0 for t in texts])


def test_a_reader_reorders_the_sentences_of_a_passage(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_article(corpus, "ferry.md", "Harrowgate ferry terminal", BODY)
    build_index(corpus, tmp_path / "index", fake_embedder)
    index = open_index(tmp_path / "index")
    ask = Ask("Who opened the Harrowgate ferry terminal?", 1, threshold=0.0)
    plain = answer(index, fake_embedder, ask)
    assert plain.quotes[0].text.startswith("The Harrowgate ferry terminal was opened")
    reader = PrefersBuilder()
    read = answer(index, fake_embedder, ask, reader=reader)
    assert read.quotes[0].text == "Its builder, Brightwater Marine, finished the terminal two months ahead of plan."
    # One call for every candidate unit, with the question as asked.
    assert len(reader.calls) == 1 and reader.calls[0][0] == ask.question
    assert sorted(reader.calls[0][1]) == sorted(index.span_text(*index.unit_span(u)) for u in range(len(index.units)))
    article = index.articles[index.article_number["ferry"]]
    assert article.text[read.quotes[0].start : read.quotes[0].end] == read.quotes[0].text
