"""A small evaluation of the seed article, written for this repository (needs nothing outside it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.answer.answering import answer
from bot.answer.asking import Ask
from bot.indexing.versions import open_index

ANSWERABLE = [
    ("How much money will Stargate invest?", "US$500 B"),
    ("Over how many years will the money be invested?", "over the next four years"),
    ("Who chairs Stargate?", "Masayoshi Son"),
    ("Which company has financial responsibility for Stargate?", "SoftBank taking on financial responsibility"),
    ("Who is responsible for operations?", "OpenAI assuming the operational responsibility"),
    ("Has construction started?", "The buildout is already underway."),
    ("Since when have OpenAI and NVIDIA worked together?", "2016"),
    ("When did Microsoft's partnership with OpenAI begin?", "which began in 2019"),
    ("What did Microsoft say about Stargate?", "complementary to its existing partnership with OpenAI"),
    ("What does AGI stand for?", "artificial general intelligence"),
    ("What does IP mean?", "intellectual property"),
    ("Who are the key initial technology partners?", "Arm, Microsoft, NVIDIA, Oracle, and OpenAI"),
    ("Until when is Microsoft's contract with OpenAI in place?", "through 2030"),
    ("Do Microsoft and OpenAI share revenue?", "revenue sharing agreements"),
    ("Is Microsoft still an investor in OpenAI?", "Microsoft remains a major investor in OpenAI"),
    ("Which industry is expected to benefit from Stargate?", "Data centre infrastructure players"),
    ("How much did Google invest in Anthropic?", "US$1 B"),
]
OFF_TOPIC = [
    "What is the capital of Australia?",
    "How do I make lasagna?",
    "Who won the 2018 Champions League final?",
    "Will it rain in London tomorrow?",
]


@pytest.fixture(scope="module")
def index(seed_index: Path):
    return open_index(seed_index)


@pytest.mark.slow
@pytest.mark.parametrize(("question", "evidence"), ANSWERABLE)
def test_answerable_question_has_its_evidence_in_the_top_quote(
    index, real_embedder, real_reader, question: str, evidence: str
) -> None:
    result = answer(index, real_embedder, Ask(question, 3), reader=real_reader)
    assert result.answered, f"declined: {result.quotes[0].score if result.quotes else None}"
    top = result.quotes[0]
    assert evidence in top.text
    assert len(top.text.split()) <= 60
    article = index.articles[index.article_number[top.article.id]]
    assert article.text[top.start : top.end] == top.text


@pytest.mark.slow
@pytest.mark.parametrize("question", OFF_TOPIC)
def test_off_topic_question_is_declined_with_nearest_passages(index, real_embedder, real_reader, question: str) -> None:
    result = answer(index, real_embedder, Ask(question, 2), reader=real_reader)
    assert not result.answered
    assert result.message == "I couldn't find that in the 1 article I know."
    assert len(result.quotes) == 2
