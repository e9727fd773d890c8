from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.articles.corpus import load_corpus
from bot.indexing.chunking import MAX_WORDS, chunk_article, split_units
from tests.conftest import SEED_CORPUS


def seed_text() -> str:
    return load_corpus(SEED_CORPUS).articles[0].text


def units_of(text: str) -> list[str]:
    return [text[u.start : u.end] for u in split_units(text)]


sentence = st.builds(
    lambda words, end: " ".join(words) + end,
    st.lists(
        st.sampled_from(
            ["Stargate", "US$500 B", "Corp.", "Chairman & CEO", "AI", "the", "data", "—", "“so", "it”", "Mr.", "42"]
        ),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from([".", "!", "?", ".”", ""]),
)
paragraph = st.lists(sentence, min_size=1, max_size=8).map(" ".join)
item = st.builds(lambda s: "- " + s, sentence)
footnote = st.builds(lambda s: "*" + s, sentence)
article_text = st.lists(st.one_of(paragraph, item, footnote), min_size=1, max_size=12).map("\n\n".join).map(str.strip)


@settings(max_examples=300, deadline=None)
@given(article_text)
def test_passages_are_exact_slices_that_cover_the_text(text: str) -> None:
    _, passages = chunk_article("a", text)
    assert passages, "a non-empty article has at least one passage"
    covered = [False] * len(text)
    for p in passages:
        assert text[p.start : p.end] == p.text
        for i in range(p.start, p.end):
            covered[i] = True
    assert all(covered[i] for i, ch in enumerate(text) if not ch.isspace())


@settings(max_examples=300, deadline=None)
@given(article_text)
def test_passages_start_and_end_on_unit_boundaries(text: str) -> None:
    units, passages = chunk_article("a", text)
    starts = {u.start for u in units}
    ends = {u.end for u in units}
    for p in passages:
        assert p.start in starts and p.end in ends
        inner = [s for s in p.sentences]
        assert inner[0].start == p.start and inner[-1].end == p.end


@settings(max_examples=200, deadline=None)
@given(article_text)
def test_consecutive_passages_overlap_by_one_unit_and_stay_short(text: str) -> None:
    _, passages = chunk_article("a", text)
    for before, after in itertools.pairwise(passages):
        if len(before.sentences) > 1:
            assert after.sentences[0] == before.sentences[-1]
        words = len(before.text.split())
        assert words <= MAX_WORDS or len(before.sentences) == 1


@pytest.mark.parametrize(
    "sentence",
    [
        "OpenAI and Softbank have announced the Stargate Project, a new company which intends to invest US$500 B over "
        "the next four years to build new AI infrastructure for OpenAI in the US.",
        "Masayoshi Son, Representative Director, Corporate Officer, Chairman & CEO of SoftBank, will be the chairman.",
        "Microsoft said in a blog post that the Stargate project is complementary to its existing partnership with "
        "OpenAI, which began in 2019.",
        "- Microsoft and OpenAI have revenue sharing agreements that flow both ways, ensuring that both companies "
        "benefit from increased use of new and existing models.",
        "In other news, Google reportedly announced a US$1 B investment in AI company Anthropic.",
        "*AGI stands for artificial general intelligence, basically sentience.",
        "***API is an acronym for application programming interface.",
    ],
)
def test_seed_hard_sentences_are_whole_units(sentence: str) -> None:
    assert sentence in units_of(seed_text())


def test_quotation_spanning_two_sentences_stays_in_one_unit() -> None:
    units = units_of(seed_text())
    quote = next(u for u in units if u.startswith('"All of us look forward'))
    assert "for the benefit of all of humanity. We believe" in quote
    assert quote.endswith("the two companies added.")


def test_quotation_opening_in_one_bullet_and_closing_in_the_next_is_one_unit() -> None:
    text = (
        "Brindlewood Rail listed what changes:\n\n"
        "- “Quarry Lane gets a new depot that will serve every line.\n"
        "- The old yard closes in spring, and crews move north,” the operator said.\n\n"
        "Nothing else changes."
    )
    joined = next(u for u in units_of(text) if u.startswith("- “Quarry Lane"))
    assert joined.endswith("crews move north,” the operator said.")
    assert joined.count("\n- ") == 1


def test_footnote_markers_do_not_split_sentences() -> None:
    units = units_of(seed_text())
    agi = next(u for u in units if u.startswith('"All of us look forward'))
    assert "AGI*—for" in agi and agi.endswith("the two companies added.")
    assert "**IP refers to intellectual property." in units


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("He paid US$500 B. The rest followed.", ["He paid US$500 B.", "The rest followed."]),
        ("John F. Kennedy spoke. Then U.S. Steel rose.", ["John F. Kennedy spoke.", "Then U.S. Steel rose."]),
        ("Is it new? “Yes,” she said. Fine!", ["Is it new?", "“Yes,” she said.", "Fine!"]),
        ("A stray “quote. Next one.", ["A stray “quote.", "Next one."]),
        ("no terminal punctuation", ["no terminal punctuation"]),
    ],
)
def test_sentence_splitting_edge_cases(text: str, expected: list[str]) -> None:
    assert units_of(text) == expected


def test_a_unit_longer_than_a_passage_stands_alone() -> None:
    long_sentence = "Long " + " ".join(["word"] * 200) + "."
    text = f"Short one. {long_sentence} Short two."
    _, passages = chunk_article("a", text)
    assert any(p.text == long_sentence for p in passages)


def test_straight_quote_left_open_at_a_paragraph_end_does_not_swallow_the_next_item() -> None:
    # News style: a quoted paragraph that runs on leaves its straight mark open, and the next
    # paragraph or item opens again; parity across blocks would pair the wrong marks.
    text = (
        '"The harbour plan stays as agreed, with the Tollmere ferry running until 2031 – specifically:\n\n'
        '- Tollmere keeps its berth at Quay Four. "This means riders keep their route.\n\n'
        '- The fares stay frozen," the harbour board said.\n'
    )
    units = units_of(text)
    assert units[0] == '"The harbour plan stays as agreed, with the Tollmere ferry running until 2031 – specifically:'
    assert all(len(u.split()) <= 45 for u in units)


def test_seed_units_stay_short_enough_to_quote() -> None:
    longest = max(len(u.split()) for u in units_of(seed_text()))
    assert longest <= 51  # the two-sentence quotation "All of us look forward … the two companies added."
