"""A small evaluation of the seed article, written for this repository (needs nothing outside it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.answer.answering import answer
from bot.indexing.versions import open_index

ANSWERABLE = [
    ("How much money will Stargate invest?", "US$500 B"),
    ("How much will be deployed right away?", "US$100 B immediately"),
    ("Who chairs Stargate?", "Masayoshi Son"),
    ("Which company has financial responsibility for Stargate?", "SoftBank having financial responsibility"),
    ("Where did the buildout start?", "starting in Texas"),
    ("Since when have OpenAI and NVIDIA worked together?", "2016"),
    ("What does AGI stand for?", "artificial general intelligence"),
    ("What does IP mean?", "intellectual property"),
    ("Who are the key initial technology partners?", "Arm, Microsoft, NVIDIA, Oracle, and OpenAI"),
    ("Until when do the key elements of the Microsoft partnership remain in place?", "through 2030"),
    ("Do Microsoft and OpenAI share revenue?", "revenue sharing agreements"),
    ("How many jobs will the infrastructure create?", "hundreds of thousands of American jobs"),
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
    index, real_embedder, question: str, evidence: str
) -> None:
    result = answer(index, real_embedder, question, 3)
    assert result.answered, f"declined: {result.quotes[0].score if result.quotes else None}"
    top = result.quotes[0]
    assert evidence in top.text
    assert len(top.text.split()) <= 60
    article = index.articles[index.article_number[top.article.id]]
    assert article.text[top.start : top.end] == top.text


@pytest.mark.slow
@pytest.mark.parametrize("question", OFF_TOPIC)
def test_off_topic_question_is_declined_with_nearest_passages(index, real_embedder, question: str) -> None:
    result = answer(index, real_embedder, question, 2)
    assert not result.answered
    assert result.message == "I couldn't find that in the 1 article I know."
    assert len(result.quotes) == 2
