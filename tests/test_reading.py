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


class MarksBuilder(PrefersBuilder):
    """A reader with a span head: it marks "Brightwater Marine" wherever it is, else nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.marked: list[tuple[str, list[str]]] = []

    def answer_spans(self, question: str, texts: list[str]) -> list[tuple[int, int] | None] | None:
        self.marked.append((question, texts))
        return [
            (t.index("Brightwater Marine"), t.index("Brightwater Marine") + 18) if "Brightwater" in t else None
            for t in texts
        ]


class MarksNothing(PrefersBuilder):
    def answer_spans(self, question: str, texts: list[str]) -> list[tuple[int, int] | None] | None:
        return [None for _ in texts]


class FailingHead(PrefersBuilder):
    def answer_spans(self, question: str, texts: list[str]) -> list[tuple[int, int] | None] | None:
        raise RuntimeError("the span head's session broke")


class NoSpanHead(PrefersBuilder):
    def answer_spans(self, question: str, texts: list[str]) -> list[tuple[int, int] | None] | None:
        return None


def test_a_span_head_marks_the_short_answer_in_the_quotes_it_answers_with(
    tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_article(corpus, "ferry.md", "Harrowgate ferry terminal", BODY)
    build_index(corpus, tmp_path / "index", fake_embedder)
    index = open_index(tmp_path / "index")
    article = index.articles[index.article_number["ferry"]]
    question = "Who built the Harrowgate ferry terminal?"

    reader = MarksBuilder()
    read = answer(index, fake_embedder, Ask(question, 1, threshold=0.0), reader=reader)
    mark = read.quotes[0].answer
    assert mark is not None and mark.text == "Brightwater Marine"
    assert article.text[mark.start : mark.end] == mark.text  # offsets into the article, like the quote's
    # One call, for the quotes confident enough to answer with, with the question as asked.
    assert reader.marked == [(question, [read.quotes[0].text])]

    # A quote the head leaves unmarked gets no short answer, whatever the patterns would find.
    unmarked = answer(index, fake_embedder, Ask(question, 1, threshold=0.0), reader=MarksNothing())
    assert unmarked.answered and unmarked.quotes[0].answer is None

    # Declined: nothing is marked and the head is not called.
    declining = MarksBuilder()
    declined = answer(index, fake_embedder, Ask(question, 1, threshold=1.0), reader=declining)
    assert not declined.answered and declined.quotes[0].answer is None and declining.marked == []

    # A reader without a span head leaves the short answer to the patterns: the same as no reader's mark.
    patterns = answer(index, fake_embedder, Ask(question, 1, threshold=0.0), reader=NoSpanHead())
    plain = answer(index, fake_embedder, Ask(question, 1, threshold=0.0), reader=PrefersBuilder())
    assert patterns.quotes[0].text == plain.quotes[0].text
    assert patterns.quotes[0].answer == plain.quotes[0].answer

    # A span head that fails costs the mark, not the answer: the patterns mark it.
    failed = answer(index, fake_embedder, Ask(question, 1, threshold=0.0), reader=FailingHead())
    assert failed.answered and failed.quotes[0].text == plain.quotes[0].text
    assert failed.quotes[0].answer == plain.quotes[0].answer
