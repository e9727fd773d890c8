"""Block Kit rendering (pure) and the Slack app's SQLite memory."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import BotError
from bot.records import Answer, ArticleRef, Quote
from bot.slack.blocks import (
    MAX_BLOCKS,
    SECTION_LIMIT,
    SHARE,
    VOTE_DOWN,
    VOTE_UP,
    answer_blocks,
    citation,
    clean_question,
    escape,
    example_questions,
    fallback_text,
    home_view,
    passage_mrkdwn,
    safe_url,
    unescape,
)
from bot.slack.feedback import FeedbackStore


def make_quote(passage: str, sentence: str, url: str | None = "https://example.com/a", title: str = "A title") -> Quote:
    offset = passage.index(sentence)
    return Quote(
        text=sentence,
        passage=passage,
        start=100 + offset,
        end=100 + offset + len(sentence),
        passage_start=100,
        score=0.9,
        article=ArticleRef(id="a", title=title, date="2025-01-23", url=url, source="wire"),
    )


def make_answer(quotes: list[Quote], answered: bool = True, question: str = "Who chairs it?") -> Answer:
    message = None if answered else "I couldn't find that in the 2 articles I know."
    return Answer(question=question, answered=answered, quotes=quotes, message=message, took_ms=1.0)


def all_text(blocks: object) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_the_answering_sentence_is_bold_inside_its_quoted_passage() -> None:
    quote = make_quote("First one. Son will chair it. Last one.", "Son will chair it.")
    assert passage_mrkdwn(quote) == "> First one. *Son will chair it.* Last one."


def test_multi_line_passages_stay_quoted_and_bold_per_line() -> None:
    quote = make_quote("Intro.\n\nA list:\n- one\n- two\nAfter.", "A list:\n- one")
    assert passage_mrkdwn(quote) == "> Intro.\n> *A list:*\n> *- one*\n> - two\n> After."


@pytest.mark.parametrize(
    "danger",
    [
        "<!channel>",
        "<!here>",
        "<!everyone>",
        "<@U123>",
        "<#C123|general>",
        "<https://evil.example|click>",
        "&lt;!channel&gt;",
    ],
)
def test_article_and_question_markup_can_never_ping_or_link(danger: str) -> None:
    quote = make_quote(f"Before {danger} after. Sentence {danger} here.", f"Sentence {danger} here.", title=danger)
    blocks = answer_blocks(make_answer([quote], question=f"what about {danger}?"), "id1", share=True)
    rendered = all_text(blocks) + fallback_text(make_answer([quote]))
    assert danger not in rendered
    assert escape(danger) in rendered
    # The only `<` left is the article's own link.
    assert "<" not in rendered.replace("<https://example.com/a|link>", "")


@given(st.text(max_size=200))
def test_escape_round_trips_and_leaves_no_angle_brackets(text: str) -> None:
    assert unescape(escape(text)) == text
    assert "<" not in escape(text) and ">" not in escape(text)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a?b=1&c=2", "https://example.com/a?b=1&amp;c=2"),
        ("http://example.com/x|<!channel>", "http://example.com/x%7C%3C!channel%3E"),
        ("javascript:alert(1)", None),
        ("slack://channel?id=C1", None),
        ("ftp://example.com/", None),
        ("", None),
        (None, None),
        ("https:///nohost", None),
    ],
)
def test_links_come_only_from_http_urls_and_cannot_break_out(url: str | None, expected: str | None) -> None:
    assert safe_url(url) == expected


def test_citation_is_title_date_link() -> None:
    quote = make_quote("Son will chair it.", "Son will chair it.", title="Stargate & co")
    assert citation(quote) == "Stargate &amp; co · 2025-01-23 · <https://example.com/a|link>"
    assert citation(make_quote("S.", "S.", url="javascript:x")) == "A title · 2025-01-23"


def test_huge_passages_are_trimmed_around_the_answering_sentence() -> None:
    before = " ".join(f"before{n}" for n in range(800))
    after = " ".join(f"after{n}" for n in range(800))
    sentence = "The answer & nothing but <the answer>."
    quote = make_quote(f"{before} {sentence} {after}", sentence)
    text = passage_mrkdwn(quote)
    assert len(text) <= SECTION_LIMIT
    assert f"*{escape(sentence)}*" in text
    assert "before799" in text and "after0 " in text  # the nearest context is what is kept
    assert "before0 " not in text and "after799" not in text
    assert re.match(r"> … before\d+ ", text) and re.search(r" after\d+ …$", text)  # cut between words


def test_a_sentence_longer_than_a_section_keeps_its_beginning() -> None:
    sentence = "Start " + "<&> " * 2000 + "end."
    quote = make_quote(f"Ctx. {sentence} More.", sentence)
    text = passage_mrkdwn(quote)
    assert len(text) <= SECTION_LIMIT
    assert text.startswith("> … *Start &lt;&amp;&gt;") and text.endswith("…* …")


def test_echoed_text_stays_within_limits_after_escaping() -> None:
    quote = make_quote("S.", "S.", title="<&>" * 500)
    blocks = answer_blocks(make_answer([quote], question="<&>" * 1000), "x")
    assert all(len(e["text"]) <= SECTION_LIMIT for b in blocks if b["type"] == "context" for e in b["elements"])
    assert re.search(r"(&lt;|&amp;|&gt;)…$", blocks[0]["elements"][0]["text"])  # cut between entities
    assert len(citation(quote)) < 400 and "&lt;&amp;&gt;" in citation(quote)


def test_at_most_50_blocks_and_buttons_always_present() -> None:
    quotes = [make_quote(f"Sentence {n}.", f"Sentence {n}.") for n in range(40)]
    blocks = answer_blocks(make_answer(quotes), "abc", share=True)
    assert len(blocks) <= MAX_BLOCKS
    assert all(len(b["text"]["text"]) <= SECTION_LIMIT for b in blocks if b["type"] == "section")
    actions = blocks[-1]
    assert actions["type"] == "actions"
    assert [e["action_id"] for e in actions["elements"]] == [VOTE_UP, VOTE_DOWN, SHARE]
    assert {e["value"] for e in actions["elements"]} == {"abc"}


def test_not_found_says_so_and_marks_the_nearest_passage() -> None:
    quotes = [make_quote("Nearby text here.", "Nearby text here."), make_quote("Other.", "Other.")]
    blocks = answer_blocks(make_answer(quotes, answered=False), "x")
    text = all_text(blocks)
    assert "I couldn't find that" in text and "nearest passage, which does not answer it" in text
    assert "Nearby text here." in text and "Other." not in text
    assert "*Nearby" not in text  # not bold: it is not an answer
    assert fallback_text(make_answer(quotes, answered=False)).startswith("I couldn't find that")


def test_fallback_text_holds_the_top_quote_and_citation() -> None:
    quote = make_quote("Son will chair it.", "Son will chair it.")
    assert fallback_text(make_answer([quote])) == "“Son will chair it.” — A title (2025-01-23)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<@UBOT> who will chair Stargate?", "who will chair Stargate?"),
        ("  <@UBOT>   spaced \n out  ", "spaced out"),
        ("is <@U999> right about <#C1|general>?", "is @U999 right about #general?"),
        ("what about <!channel> and <!subteam^S1>", "what about @channel and @subteam"),
        ("read <https://x.example/a|this> &amp; <https://y.example>", "read this & https://y.example"),
        ("AT&amp;T &lt;3", "AT&T <3"),
        ("<@UBOT>", ""),
    ],
)
def test_messages_become_plain_questions(text: str, expected: str) -> None:
    assert clean_question(text, "UBOT") == expected


def test_home_view_shows_how_to_ask_examples_and_corpus() -> None:
    view = home_view(
        articles=2, passages=9, built_at="2025-02-01T10:20:30+00:00", newest="2025-01-23", examples=["Q1?"]
    )
    text = all_text(view)
    assert view["type"] == "home"
    assert "/ask" in text and "Q1?" in text and "*2* articles (9 passages)" in text
    assert "2025-01-23" in text and "2025-02-01 10:20" in text
    assert "loading" in all_text(home_view(articles=None, passages=None, built_at=None, newest=None, examples=[]))
    assert example_questions(["a?", "a?", "b?"], ["T1", "T2"]) == ["a?", "b?", "What does “T1” say?"]


def test_votes_store_question_quotes_user_and_time(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "data" / "slack.sqlite3")
    answer = make_answer([make_quote("Son will chair it.", "Son will chair it.")])
    answer_id = store.record_answer(answer, "mention", "C1", "U1")
    assert store.answer(answer_id) == answer
    assert store.record_vote(answer_id, "U2", "up") is True
    assert store.record_vote(answer_id, "U2", "up") is False  # a repeat click
    assert store.record_vote(answer_id, "U2", "down") is True  # a change of mind
    (vote,) = store.votes()
    assert (vote.answer_id, vote.user, vote.vote, vote.question) == (answer_id, "U2", "down", "Who chairs it?")
    assert vote.quotes[0]["text"] == "Son will chair it." and vote.time > 0
    with pytest.raises(KeyError):
        store.record_vote("nope", "U2", "up")
    with pytest.raises(ValueError, match="vote must be"):
        store.record_vote(answer_id, "U2", "sideways")
    assert store.recent_questions("U1") == ["Who chairs it?"]
    assert store.recent_questions("U2") == []  # nobody sees another person's questions
    # A second store on the same file (another process, a restart) sees the same data.
    assert FeedbackStore(store.path).answer(answer_id) == answer


def test_each_delivery_is_claimed_once_even_under_concurrency(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "slack.sqlite3")
    wins: list[bool] = []
    threads = [
        threading.Thread(target=lambda: wins.append(store.claim("event:Ev1", "message:C1:1.0"))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 7 + [True]
    assert store.claim("event:Ev2", "message:C1:1.0") is False  # the twin delivery of the same message
    assert store.claim("event:Ev3", "message:C1:2.0") is True


def test_an_unusable_data_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file, not a folder", encoding="utf-8")
    with pytest.raises(BotError, match="Set BOT_DATA_DIR to a writable folder"):
        FeedbackStore(tmp_path / "data" / "slack.sqlite3")
