"""Block Kit rendering (pure) and the Slack app's SQLite memory."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.articles.corpus import load_corpus
from bot.errors import BotError
from bot.indexing.chunking import chunk_article
from bot.records import Answer, AnswerSpan, Article, ArticleRef, Quote
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
    passage_elements,
    safe_url,
    unescape,
)
from bot.slack.feedback import FeedbackStore
from tests.conftest import SEED_CORPUS
from tests.fake_slack import blocks_problems, quote_elements, quote_texts


def make_quote(
    passage: str,
    sentence: str,
    url: str | None = "https://example.com/a",
    title: str = "A title",
    short: str | None = None,
) -> Quote:
    """A quote of `sentence` inside `passage` (at offset 100 of its article), with `short` as its
    short answer when given."""
    offset = passage.index(sentence)
    span = None
    if short is not None:
        at = 100 + offset + sentence.index(short)
        span = AnswerSpan(text=short, start=at, end=at + len(short))
    return Quote(
        text=sentence,
        passage=passage,
        start=100 + offset,
        end=100 + offset + len(sentence),
        passage_start=100,
        score=0.9,
        article=ArticleRef(id="a", title=title, date="2025-01-23", url=url, source="wire"),
        answer=span,
    )


def make_answer(quotes: list[Quote], answered: bool = True, question: str = "Who chairs it?") -> Answer:
    message = None if answered else "I couldn't find that in the 2 articles I know."
    return Answer(question=question, answered=answered, quotes=quotes, message=message, took_ms=1.0)


def all_text(blocks: object) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def mrkdwn_texts(blocks: list[dict[str, Any]]) -> list[str]:
    """The mrkdwn text of every section and context block (the only text Slack parses for markup)."""
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    return texts + [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]


def plain(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def styled(text: str, *styles: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "style": dict.fromkeys(styles, True)}


def test_the_answering_sentence_is_bold_inside_its_quoted_passage() -> None:
    quote = make_quote("First one. Son will chair it. Last one.", "Son will chair it.")
    assert passage_elements(quote) == [plain("First one. "), styled("Son will chair it.", "bold"), plain(" Last one.")]
    (block,) = [b for b in answer_blocks(make_answer([quote]), "x") if b["type"] == "rich_text"]
    assert block == {
        "type": "rich_text",
        "block_id": "quote-0",
        "elements": [{"type": "rich_text_quote", "elements": passage_elements(quote)}],
    }


def test_multi_line_passages_keep_their_line_breaks_inside_one_quote() -> None:
    passage = "Intro.\n\nA list:\n- one\n- two\nAfter."
    quote = make_quote(passage, "A list:\n- one")
    elements = passage_elements(quote)
    assert elements == [plain("Intro.\n\n"), styled("A list:\n- one", "bold"), plain("\n- two\nAfter.")]
    blocks = answer_blocks(make_answer([quote]), "x")
    assert quote_texts(blocks) == [passage] and blocks_problems(blocks) == []


def test_a_short_answer_is_bold_inside_the_italic_sentence_only_when_it_checks_out() -> None:
    passage = "The board met. The Quarry Lane bridge will cost US$42 M, the council said. More."
    sentence = "The Quarry Lane bridge will cost US$42 M, the council said."
    quote = make_quote(passage, sentence, short="US$42 M")
    assert passage_elements(quote) == [
        plain("The board met. "),
        styled("The Quarry Lane bridge will cost ", "italic"),
        styled("US$42 M", "bold", "italic"),
        styled(", the council said.", "italic"),
        plain(" More."),
    ]
    # A span that is not the quote's own text, or falls outside it, is not shown: the sentence is bold.
    span = quote.answer
    assert span is not None
    off = quote.model_copy(update={"answer": AnswerSpan(text="US$43 M", start=span.start, end=span.end)})
    outside = quote.model_copy(update={"answer": AnswerSpan(text="The board", start=100, end=109)})
    for unsure in (off, outside):
        assert passage_elements(unsure) == [plain("The board met. "), styled(sentence, "bold"), plain(" More.")]
    # Not an answer (the nearest passage when nothing answers): no style at all.
    assert passage_elements(quote, bold=False) == [plain(passage)]


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
    passage = f"Before {danger} after. Sentence {danger} here."
    quote = make_quote(passage, f"Sentence {danger} here.", title=danger)
    blocks = answer_blocks(make_answer([quote], question=f"what about {danger}?"), "id1", share=True)
    # In the mrkdwn Slack parses (question, citation, fallback text) the markup is escaped ...
    rendered = "\n".join(mrkdwn_texts(blocks)) + fallback_text(make_answer([quote]))
    assert danger not in rendered
    assert escape(danger) in rendered
    # The only `<` left is the article's own link.
    assert "<" not in rendered.replace("<https://example.com/a|link>", "")
    # ... and the quote holds it word for word in text elements, which Slack shows as text: a
    # mention, a broadcast or a link would have to be an element of its own type.
    assert quote_texts(blocks) == [passage]
    assert {e["type"] for elements in quote_elements(blocks) for e in elements} == {"text"}
    assert blocks_problems(blocks) == []


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
    passage = f"{before} {sentence} {after}"
    elements = passage_elements(make_quote(passage, sentence))
    text = "".join(e["text"] for e in elements)
    assert SECTION_LIMIT - 25 < len(text) <= SECTION_LIMIT  # as much context as fits, in whole words
    assert [e for e in elements if "style" in e] == [styled(sentence, "bold")]
    assert "before799" in text and "after0 " in text  # the nearest context is what is kept
    assert "before0 " not in text and "after799" not in text
    assert re.match(r"… before\d+ ", text) and re.search(r" after\d+ …$", text)  # cut between words
    assert text.removeprefix("… ").removesuffix(" …") in passage  # the article's own words between the marks


def test_a_sentence_longer_than_a_section_keeps_its_beginning() -> None:
    sentence = "Start " + "<&> " * 2000 + "end."
    elements = passage_elements(make_quote(f"Ctx. {sentence} More.", sentence))
    head, shown, tail = elements
    assert head == plain("… ") and tail == plain(" …") and shown["style"] == {"bold": True}
    assert shown["text"].startswith("Start <&> <&>") and shown["text"].endswith("…")
    assert sentence.startswith(shown["text"].removesuffix("…"))  # its beginning, unescaped
    assert SECTION_LIMIT - 8 < sum(len(e["text"]) for e in elements) <= SECTION_LIMIT


def test_the_seeds_own_stars_stay_word_for_word() -> None:
    # The seed article marks footnotes with *, ** and ***: in mrkdwn they paired up with our bold.
    (article,) = [a for a in load_corpus(SEED_CORPUS).articles if "AGI*" in a.text]
    units, passages = chunk_article(article.id, article.text)
    starred = [u for u in units if "*" in article.text[u.start : u.end]]
    shown = {article.text[u.start : u.end].split()[0] for u in starred}
    assert {"*AGI", "**IP", "***API"} <= shown and len(starred) == 5
    for unit in starred:
        passage = next(p for p in passages if p.start <= unit.start and unit.end <= p.end)
        text, context = article.text[unit.start : unit.end], article.text[passage.start : passage.end]
        quote = Quote(
            text=text,
            passage=context,
            start=unit.start,
            end=unit.end,
            passage_start=passage.start,
            score=0.9,
            article=ArticleRef(id=article.id, title=article.title, date=article.date),
        )
        blocks = answer_blocks(make_answer([quote]), "x")
        (elements,) = quote_elements(blocks)
        assert quote_texts(blocks) == [context]  # exactly the article's passage: no star added or lost
        assert [e["text"] for e in elements if e.get("style")] == [text]  # the bold element is the quote
        assert blocks_problems(blocks) == []


def test_underscores_in_words_and_urls_stay_word_for_word() -> None:
    sentence = "The ferry_log says Harrow_Bay_Ferries paid _14 M_ for it, see https://quill.example/tide_report_2031."
    passage = f"Port_Quill news. {sentence} The __end__."
    quote = make_quote(passage, sentence, short="_14 M_")
    elements = passage_elements(quote)
    assert "".join(e["text"] for e in elements) == passage
    assert [e["text"] for e in elements if e.get("style") == {"bold": True, "italic": True}] == ["_14 M_"]
    assert [e["text"] for e in elements if e.get("style") == {"italic": True}] == [
        "The ferry_log says Harrow_Bay_Ferries paid ",
        " for it, see https://quill.example/tide_report_2031.",
    ]


def test_a_quote_with_nothing_to_show_leaves_its_citation_and_no_empty_text() -> None:
    quote = make_quote("", "")
    blocks = answer_blocks(make_answer([quote]), "x")
    assert passage_elements(quote) == [] and quote_elements(blocks) == []
    assert "A title · 2025-01-23" in all_text(blocks) and blocks_problems(blocks) == []


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
    assert len(quote_texts(blocks)) == 24 and blocks_problems(blocks) == []
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
    assert quote_elements(blocks) == [[plain("Nearby text here.")]]  # not bold: it is not an answer
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
    newest = [
        Article("a", "Quarry Lane <bridge> opens", "x", date="2025-02-01", url="https://news.example/a|b"),
        Article("b", "Vellin tram approved", "x", date="2025-01-23T08:00:00"),
        Article("c", "Undated note", "x", url="javascript:alert(1)"),
    ]
    view = home_view(articles=2, passages=9, built_at="2025-02-01T10:20:30+00:00", newest=newest, examples=["Q1?"])
    text = all_text(view)
    assert view["type"] == "home" and not blocks_problems(view["blocks"], 100)
    assert "/ask" in text and "Q1?" in text and "*2* articles (9 passages)" in text and "2025-02-01 10:20" in text
    # The newest articles with their days, in the order given, titles escaped, links only http(s).
    assert "• 2025-02-01 · <https://news.example/a%7Cb|Quarry Lane &lt;bridge&gt; opens>" in text
    assert (
        text.index("2025-02-01 ·") < text.index("2025-01-23 · Vellin tram approved") < text.index("no date · Undated")
    )
    assert "javascript" not in text and "add https://" not in text
    assert "/ask add https://" in all_text(home_view(**{**HOME, "editor": True}))
    loading = all_text(home_view(articles=None, passages=None, built_at=None, newest=[], examples=[]))
    assert "loading" in loading and "Newest" not in loading
    assert example_questions(["a?", "a?", "b?"], ["T1", "T2"]) == ["a?", "b?", "What does “T1” say?"]


HOME: dict[str, Any] = {"articles": 1, "passages": 1, "built_at": None, "newest": [], "examples": []}


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
