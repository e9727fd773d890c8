"""Question types, answer kinds and the short answer inside a quote."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.answer.answer_types import (
    QuestionInfo,
    answer_kind,
    asked_term,
    asks_for_several,
    best_span,
    definitions,
    question_type,
    whole_list,
)
from bot.answer.answering import answer
from bot.answer.asking import Ask
from bot.indexing.faiss_build import build_index
from bot.indexing.versions import open_index
from tests.conftest import FakeEmbedder, write_article


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("When did the Tollmere ferry start running?", "when"),
        ("How much will the Quarry Lane bridge cost?", "how much"),
        ("How many rounds of voting did it take?", "how many"),
        ("Who chairs the Brindlewood council?", "who"),
        ("Which actor is a new addition this season?", "who"),
        ("Where will the rocket launch from?", "where"),
        ("The storm hit this week. Which state is the house located in?", "where"),
        ("Why did the council close the yard?", "why"),
        ("What did the harbour board say about the fares?", "said"),
        ("Is the Tollmere ferry still running?", "yes/no"),
        ("True or false: the bridge opened in spring.", "yes/no"),
        ("Which company is being sued for rent?", "which"),
        ("What does AGI stand for?", "what"),
        ("What does THA mean?", "what"),
        ("What did he mean?", "said"),
        ("What does Orla Quint mean by fair fares?", "said"),
        ("Brindlewood rail changes", "topic"),
    ],
)
def test_question_type(question: str, kind: str) -> None:
    assert question_type(question) == kind


@pytest.mark.parametrize(
    ("text", "question", "expected"),
    [
        ("The partnership with Tollmere Ferries began in 2019.", "When did the partnership begin?", "2019"),
        ("It intends to invest US$500 B over the next four years.", "How much will it invest?", "US$500 B"),
        ("It intends to invest US$500 B over the next four years.", "Over how many years?", "four"),
        ("Orla Quint, chair of the Brindlewood Council, will lead it.", "Who will lead it?", "Orla Quint"),
        ("The ferry leaves from Port Ansel on Mondays.", "Where does the ferry leave from?", "Port Ansel"),
        ("*THA refers to the Tollmere Harbour Authority.", "What does THA mean?", "the Tollmere Harbour Authority"),
        (
            "Fares rose, said the Tollmere Harbour Authority (THA).",
            "What does THA stand for?",
            "Tollmere Harbour Authority",
        ),
        ("QLB is short for Quarry Lane Bridge, the council said.", "What is QLB short for?", "Quarry Lane Bridge"),
    ],
)
def test_best_span_finds_the_short_answer(text: str, question: str, expected: str) -> None:
    span = best_span(text, QuestionInfo.of(question))
    assert span is not None and text[span.start : span.end] == expected


def test_no_span_when_the_question_wants_no_short_answer_or_the_text_only_repeats_it() -> None:
    assert (
        best_span(
            "The council closed the yard because of floods.", QuestionInfo.of("Why did the council close the yard?")
        )
        is None
    )
    assert best_span("Brindlewood voted.", QuestionInfo.of("Who chairs Brindlewood?")) is None
    assert answer_kind("Why did the council close the yard?") is None


def test_a_meaning_question_wants_a_definition_of_its_own_term() -> None:
    assert answer_kind("What does THA stand for?") == "meaning"
    assert asked_term("What does the acronym “THA” stand for?") == "THA"
    assert asked_term("What does it mean for renters?") is None
    text = "The THA (the harbour's new board) met. The Tollmere Harbour Authority (THA) and the Brindlewood Council (BC) met."
    assert [(term, text[s.start : s.end]) for term, s in definitions(text)] == [
        ("THA", "Tollmere Harbour Authority"),
        ("BC", "Brindlewood Council"),
    ]
    # A term the text defines, but not the one asked, is no answer.
    assert best_span("The Brindlewood Council (BC) met.", QuestionInfo.of("What does THA mean?")) is None


_WORDS = st.sampled_from(
    "the ferry Tollmere council Brindlewood US$42 M £3.5m 2019 March 4 Monday four 31 Orla Quint said will "
    "cost open in spring , . “ ” bridge Quarry Lane 12% began".split()
)
_QUESTIONS = st.sampled_from(
    [
        "When did the ferry begin?",
        "How much will the bridge cost?",
        "How many bridges are there?",
        "Who chairs the council?",
        "Where is the bridge?",
        "Which town voted?",
    ]
)


@settings(max_examples=300, deadline=None)
@given(words=st.lists(_WORDS, min_size=1, max_size=40), question=_QUESTIONS)
def test_best_span_is_an_exact_slice_of_its_text(words: list[str], question: str) -> None:
    text = " ".join(words)
    span = best_span(text, QuestionInfo.of(question))
    if span is not None:
        assert 0 <= span.start < span.end <= len(text)
        piece = text[span.start : span.end]
        assert piece.strip() == piece and piece


@pytest.fixture(scope="module")
def span_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = tmp_path_factory.mktemp("spans") / "corpus"
    corpus.mkdir()
    write_article(
        corpus,
        "bridge.md",
        "Quarry Lane bridge approved",
        "The Brindlewood council met on Monday.\n\nThe new Quarry Lane bridge will cost US$42 M and open "
        "in March 2026, council chair Orla Quint said. Work begins in spring.\n\n- Tollmere keeps its ferry.",
    )
    index_dir = corpus.parent / "index"
    build_index(corpus, index_dir, FakeEmbedder())
    return index_dir


@settings(max_examples=40, deadline=None)
@given(
    question=st.sampled_from(
        [
            "How much will the Quarry Lane bridge cost?",
            "When will the bridge open?",
            "Who chairs the council?",
            "When did the council meet?",
            "Which ferry stays?",
        ]
    ),
    k=st.integers(min_value=1, max_value=3),
)
def test_every_quotes_answer_is_an_exact_substring_inside_its_quote(span_index: Path, question: str, k: int) -> None:
    index = open_index(span_index)
    result = answer(index, FakeEmbedder(), Ask(question, k, threshold=0.0))
    for quote in result.quotes:
        text = index.articles[index.article_number[quote.article.id]].text
        if quote.answer is not None:
            assert text[quote.answer.start : quote.answer.end] == quote.answer.text
            assert quote.start <= quote.answer.start < quote.answer.end <= quote.end
            assert quote.answer.text in quote.text
        assert "answer" not in quote.model_dump() or quote.answer is not None


def test_the_amount_is_returned_in_the_json(span_index: Path) -> None:
    result = answer(
        open_index(span_index), FakeEmbedder(), Ask("How much will the Quarry Lane bridge cost?", 1, threshold=0)
    )
    dumped = result.model_dump()["quotes"][0]
    assert dumped["answer"]["text"] == "US$42 M"


def test_the_answer_span_travels_in_the_http_json(span_index: Path) -> None:
    import httpx

    from bot.http.app import create_app
    from bot.settings import Settings
    from tests.conftest import ServerThread

    app = create_app(Settings(index_dir=span_index, threshold=0.0), embedder=FakeEmbedder())
    with ServerThread(app) as server:
        server.wait_ready()
        body = httpx.post(server.url + "/ask", json={"question": "How much will the Quarry Lane bridge cost?", "k": 2})
    top = body.json()["quotes"][0]
    assert top["answer"]["text"] == "US$42 M"
    assert top["text"][top["answer"]["start"] - top["start"] : top["answer"]["end"] - top["start"]] == "US$42 M"
    assert all("answer" not in q or q["answer"] for q in body.json()["quotes"])  # absent, never null


@pytest.mark.parametrize(
    ("question", "several"),
    [
        ("Who are the lead partners of the Quarry Lane bridge?", True),
        ("Which companies will build the bridge?", True),
        ("Who were the founders of Brindlewood?", True),
        ("What are the names of the ferries?", True),
        ("Who is the council chair?", False),
        ("Which company will build the bridge?", False),
        ("Which status will the bridge have?", False),
        ("What business does Orla Quint run?", False),
    ],
)
def test_a_question_asking_for_several_names_is_told_apart(question: str, several: bool) -> None:
    assert asks_for_several(question) is several


@pytest.mark.parametrize(
    ("text", "marked", "widened"),
    [
        (
            "Funders include Quintrel, Orvik, Fenwick, and Marrowby Ltd. Quintrel leads.",
            "Orvik",
            "Quintrel, Orvik, Fenwick, and Marrowby Ltd",
        ),
        ("Quintrel and Orvik lead the Tollmere project.", "Orvik", "Quintrel and Orvik"),
        ("Quintrel or Orvik Group will run the ferry.", "Quintrel", "Quintrel or Orvik Group"),
        ("The bridge opened in May and Orvik paid for it.", "Orvik", "Orvik"),  # a month lists no name
        ("Orvik paid. Quintrel and Fenwick watched.", "Orvik", "Orvik"),  # a list stays in its sentence
        ("Orvik built the bridge for Tollmere.", "Orvik", "Orvik"),
        ("The ferry runs at noon, Orvik said.", "noon", "noon"),
        # An opening phrase's name before its comma is not one of the list's.
        ("As part of Tollmere, Quintrel, Orvik, and Fenwick will run it.", "Orvik", "Quintrel, Orvik, and Fenwick"),
        ("Work on Tollmere, Quintrel, and Orvik began.", "Orvik", "Tollmere, Quintrel, and Orvik"),
        ("As for Tollmere, Quintrel, and Orvik, it was a good year.", "Orvik", "Tollmere, Quintrel, and Orvik"),
        ("In Tollmere, Quintrel said the ferry runs.", "Quintrel", "Quintrel"),
        # A capitalised word opening the sentence is not part of the name after it.
        ("For Tollmere, Quintrel, and Orvik, it was a good year.", "Orvik", "Tollmere, Quintrel, and Orvik"),
        ("The Orvik Group and Quintrel lead the project.", "Quintrel", "Orvik Group and Quintrel"),
        ("Tollmere, Quintrel, Orvik, and Fenwick will run it.", "Orvik", "Tollmere, Quintrel, Orvik, and Fenwick"),
    ],
)
def test_a_name_in_a_list_widens_to_the_whole_list(text: str, marked: str, widened: str) -> None:
    start = text.index(marked)
    found = whole_list(text, start, start + len(marked))
    assert text[found[0] : found[1]] == widened


def test_a_question_asking_for_several_gets_the_whole_list(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_article(
        corpus,
        "ferry.md",
        "Tollmere ferry partners",
        "The Tollmere ferry will run again in spring.\n\nQuintrel Shipping and Orvik Group are the lead partners "
        "for the Tollmere ferry.",
    )
    build_index(corpus, tmp_path / "index", FakeEmbedder())
    index = open_index(tmp_path / "index")
    several = answer(index, FakeEmbedder(), Ask("Who are the lead partners for the Tollmere ferry?", 1, threshold=0))
    one = answer(index, FakeEmbedder(), Ask("Who is a lead partner for the Tollmere ferry?", 1, threshold=0))
    assert several.quotes[0].answer is not None and several.quotes[0].answer.text == "Quintrel Shipping and Orvik Group"
    assert one.quotes[0].answer is not None and one.quotes[0].answer.text != "Quintrel Shipping and Orvik Group"
