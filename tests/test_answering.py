"""Quote selection, recency and dates, on small corpora with the fake embedder."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bot.answer.answering import answer
from bot.answer.asking import Ask, parse_day, validate_question
from bot.answer.claims import answer_message
from bot.answer.conversation import validate_history
from bot.errors import QuestionError
from bot.indexing.faiss_build import build_index
from bot.indexing.index import Index
from bot.indexing.keyword import query_tokens
from bot.indexing.versions import open_index
from tests.conftest import FakeEmbedder, write_article


def build(tmp_path: Path, embedder: FakeEmbedder, articles: list[tuple[str, str, str, str]]) -> Index:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, title, body, date in articles:
        write_article(corpus, name, title, body, date=date)
    build_index(corpus, tmp_path / "index", embedder)
    return open_index(tmp_path / "index")


def test_recency_preference_puts_the_newer_report_first(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    body = "The city council approved the harbour tunnel budget after a long debate."
    index = build(
        tmp_path,
        fake_embedder,
        [("old.md", "Tunnel vote", body, "2023-03-01"), ("new.md", "Tunnel vote", body, "2025-03-01")],
    )
    question = "Did the council approve the harbour tunnel budget?"
    plain = answer(index, fake_embedder, Ask(question, 2, threshold=0.0))
    recent = answer(index, fake_embedder, Ask(question, 2, threshold=0.0, recent=30))
    assert {q.article.id for q in plain.quotes} == {"old", "new"}
    assert recent.quotes[0].article.id == "new"
    assert all(q.article.date for q in recent.quotes)  # every quote carries its article's date


def test_recency_half_life_must_be_positive(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    index = build(tmp_path, fake_embedder, [("a.md", "Budget", "The budget passed on Monday.", "2025-01-01")])
    with pytest.raises(QuestionError, match="half-life"):
        answer(index, fake_embedder, Ask("Did the budget pass?", recent=0))


def test_the_day_asked_puts_that_weeks_report_first(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    index = build(
        tmp_path,
        fake_embedder,
        [
            ("y1.md", "Velmora marathon", "The Velmora marathon was won by Arlen Tasker this week.", "2023-04-02"),
            ("y2.md", "Velmora marathon", "The Velmora marathon was won by Brisa Okonkwe this week.", "2024-04-07"),
            ("y3.md", "Velmora marathon", "The Velmora marathon was won by Corin Delmas this week.", "2025-04-06"),
        ],
    )
    question = "Who won the Velmora marathon this week?"
    for asked_on, winner in (("2023-04-03", "y1"), ("2024-04-09", "y2"), ("2025-04-06", "y3")):
        result = answer(index, fake_embedder, Ask(question, 3, threshold=0.0, asked_on=dt.date.fromisoformat(asked_on)))
        assert result.quotes[0].article.id == winner, asked_on
        assert {q.article.id for q in result.quotes} == {"y1", "y2", "y3"}  # the other years stay reachable
    # A day far from every article prefers none of them; date filters still apply with it.
    filtered = answer(
        index,
        fake_embedder,
        Ask(
            question,
            3,
            threshold=0.0,
            asked_on=dt.date.fromisoformat("2024-04-09"),
            since=dt.date.fromisoformat("2025-01-01"),
        ),
    )
    assert [q.article.id for q in filtered.quotes] == ["y3"]


@pytest.mark.parametrize("asked_on", ["last Tuesday", "2025-13-01", ""])
def test_the_day_asked_must_be_an_iso_date(asked_on: str) -> None:
    with pytest.raises(QuestionError, match="ISO date"):
        parse_day(asked_on, "asked_on")


def test_text_with_a_lone_surrogate_is_refused_on_every_way_in(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    # The model's tokenizer fails on a lone surrogate, with every question of its batch.
    with pytest.raises(QuestionError, match=r"The question holds .* \(a lone surrogate, U\+D800, at character 4\)"):
        validate_question("Who \ud800 chairs the Tessary board?")
    with pytest.raises(QuestionError, match=r"history\[1\] holds .* lone surrogate, U\+DFFF"):
        validate_history(["Who chairs the Tessary board?", "Since \udfff when?"], 100)
    index = build(tmp_path, fake_embedder, [("a.md", "Budget", "The budget passed on Monday.", "2025-01-01")])
    with pytest.raises(QuestionError, match="The message holds"):
        answer_message(
            index, lambda text: fake_embedder.encode([text])[0], Ask("The budget \ud800 passed."), max_chars=100
        )


@pytest.mark.parametrize("asked_on", ["0001-01-01", "0001-01-15", "9999-12-20", "9999-12-31"])
def test_a_day_asked_near_the_ends_of_the_calendar_is_answered(
    tmp_path: Path, fake_embedder: FakeEmbedder, asked_on: str
) -> None:
    index = build(tmp_path, fake_embedder, [("a.md", "Budget", "The budget passed on Monday.", "2025-01-01")])
    result = answer(index, fake_embedder, Ask("Did the budget pass?", asked_on=dt.date.fromisoformat(asked_on)))
    assert result.quotes and result.quotes[0].article.id == "a"


def test_a_number_question_quotes_the_sentence_with_the_number(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    body = (
        "The new stadium in the river district will host the national football final. "
        "Officials praised the stadium design at the opening ceremony on the river bank. "
        "The stadium cost 420 million euros to build."
    )
    index = build(tmp_path, fake_embedder, [("s.md", "Stadium opens", body, "2025-05-01")])
    result = answer(index, fake_embedder, Ask("How much did the stadium cost?", 1, threshold=0.0))
    assert "420 million euros" in result.quotes[0].text


def test_a_short_sentence_takes_in_the_next_one(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    body = (
        "The merger was announced on Tuesday. "
        "Regulators in three countries must still approve the deal, which values the company at 12 billion dollars. "
        "Shares rose sharply in early trading."
    )
    index = build(tmp_path, fake_embedder, [("m.md", "Merger", body, "2025-05-01")])
    quote = answer(index, fake_embedder, Ask("When was the merger announced?", 1, threshold=0.0)).quotes[0]
    assert quote.text.startswith("The merger was announced on Tuesday. Regulators")
    assert "Shares" not in quote.text
    assert len(quote.text.split()) <= 60


@pytest.mark.parametrize(
    ("question", "kept", "dropped"),
    [
        ("How much does the tunnel cost?", ["tunnel", "cost"], ["doe", "much"]),
        ("What did Microsoft now announce?", ["microsoft", "announc"], ["did", "now"]),
        ("Who chairs Stargate?", ["chair", "stargat"], ["who"]),
        ("How long will the tunnel take to build?", ["tunnel", "build"], ["long"]),
    ],
)
def test_question_filler_words_are_not_search_terms(question: str, kept: list[str], dropped: list[str]) -> None:
    tokens = query_tokens(question)
    assert all(t in tokens for t in kept) and not any(t in tokens for t in dropped)


def test_a_quote_never_runs_into_the_next_paragraph(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    body = "The merger was announced on Tuesday.\n\nRegulators in three countries must still approve the deal."
    index = build(tmp_path, fake_embedder, [("m.md", "Merger", body, "2025-05-01")])
    quote = answer(index, fake_embedder, Ask("When was the merger announced?", 1, threshold=0.0)).quotes[0]
    assert quote.text == "The merger was announced on Tuesday."
