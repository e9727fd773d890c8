"""Slack's limits are never hit: the longest answers the bot can build are accepted by the fake
Slack (tests/fake_slack.py), which refuses what the real one refuses; and the fake does refuse."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.answer.answering import answer
from bot.answer.asking import MAX_K, Ask
from bot.indexing.faiss_build import build_index
from bot.indexing.versions import open_index
from bot.records import Answer
from bot.slack.blocks import ELLIPSIS, answer_blocks, fallback_text, unescape
from tests.conftest import ROOT, FakeEmbedder, write_article
from tests.fake_slack import BOT_TOKEN, FakeSlack, quote_texts

SQUAD_PASSAGES = ROOT.parent / "shared" / "eval" / "squad-v1.1-dev" / "passages.jsonl"
# Made-up words (and Slack's special characters, which escaping lengthens fivefold).
VOCABULARY = (
    "Quorvath Elmsgate tideworks ferrymen &amp-like <signal> harbourmaster ledger brine ropewalk "
    "Skellan Varnholt dredger lanterns cobbled quayside barometer gale salt-cod & < > warehouse"
).split()
LONG_SENTENCE_WORDS = 900  # one sentence of about 7,000 characters, over two section limits


def made_up_text(rng: random.Random, sentences: int) -> str:
    parts = []
    for n in range(sentences):
        words = LONG_SENTENCE_WORDS if n == sentences // 2 else rng.randint(20, 60)
        parts.append(" ".join(rng.choice(VOCABULARY) for _ in range(words)).capitalize() + ".")
    return " ".join(parts)


def post(fake: FakeSlack, answer_: Answer, *, share: bool) -> dict[str, Any]:
    client = WebClient(token=BOT_TOKEN, base_url=fake.api_url)
    blocks = answer_blocks(answer_, "a" * 32, share=share)
    if share:  # as "Share in channel" posts it, with the sharer on top
        blocks = answer_blocks(answer_, "a" * 32, max_blocks=49)
        blocks.insert(0, {"type": "context", "elements": [{"type": "mrkdwn", "text": "Shared by <@U0123456>"}]})
    response = client.chat_postMessage(channel="C0000001", text=fallback_text(answer_), blocks=blocks)
    assert response["ok"]
    return {"text": fallback_text(answer_), "blocks": blocks}


def whole_words(message: dict[str, Any], vocabulary: set[str]) -> None:
    """Every article word shown (quotes, passages, titles, the fallback), shortened or not, is a
    whole word of the articles: nothing is cut mid-word."""
    texts = [unescape(message["text"].strip("“").split("” — ")[0])]  # the fallback: “quote” — title (date)
    for block in message["blocks"]:
        if block["type"] == "context" and " · " in block["elements"][0]["text"]:
            texts.append(unescape(block["elements"][0]["text"].split(" · ")[0]))
    texts += quote_texts(message["blocks"])  # rich text: as it is, nothing escaped
    for text in texts:
        for word in text.split():
            word = word.strip(ELLIPSIS).removesuffix(".")
            assert not word or word.lower() in vocabulary, f"{word!r} is not a whole word"


@pytest.fixture(scope="module")
def long_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(7)
    corpus = tmp_path_factory.mktemp("long") / "corpus"
    corpus.mkdir()
    for n in range(24):
        title = " ".join(rng.choice(VOCABULARY) for _ in range(80))  # over the 300-character title limit
        write_article(corpus, f"a{n:02}.md", title.replace("<", "").replace(">", ""), made_up_text(rng, 9))
    index_dir = corpus.parent / "index"
    build_index(corpus, index_dir, FakeEmbedder())
    return index_dir


def rich_text(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "rich_text", "elements": [{"type": "rich_text_quote", "elements": list(elements)}]}


def test_the_fake_refuses_what_slack_refuses() -> None:
    with FakeSlack() as fake:
        client = WebClient(token=BOT_TOKEN, base_url=fake.api_url)
        bad: list[list[dict[str, Any]]] = [
            [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
            [{"type": "divider"}] * 51,
            [{"type": "context", "elements": [{"type": "mrkdwn", "text": "x"}] * 11}],
            [{"type": "section", "text": {"type": "mrkdwn", "text": ""}}],
            [{"type": "sections", "text": {"type": "mrkdwn", "text": "x"}}],
            [{"type": "divider", "block_id": "a"}, {"type": "divider", "block_id": "a"}],
            [{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "x" * 76}}]}],
            [rich_text({"type": "text", "text": "x" * 1500}, {"type": "text", "text": "y" * 1501})],
            [rich_text({"type": "text", "text": ""})],
            [rich_text({"type": "text", "text": "x", "style": {"underlined": True}})],
            [rich_text({"type": "text", "text": "x", "style": {"bold": "yes"}})],
            [rich_text({"type": "text"})],
            [rich_text()],
            [{"type": "rich_text", "elements": []}],
            [{"type": "rich_text", "elements": [{"type": "rich_text_paragraph", "elements": [{"type": "text"}]}]}],
            [
                {
                    "type": "rich_text",
                    "elements": [{"type": "rich_text_list", "elements": [{"type": "text", "text": "x"}]}],
                }
            ],
        ]
        for blocks in bad:
            with pytest.raises(SlackApiError) as caught:
                client.chat_postMessage(channel="C0000001", text="t", blocks=blocks)
            assert caught.value.response["error"] == "invalid_blocks"
        with pytest.raises(SlackApiError) as caught:
            client.chat_postMessage(channel="C0000001", text="x" * 4001)
        assert caught.value.response["error"] == "msg_too_long"
        assert len(fake.rejected) == len(bad) + 1
        assert client.chat_postMessage(channel="C0000001", text="x" * 4000)["ok"]
        styles = {"bold": True, "italic": True, "strike": False, "code": False}
        good = rich_text({"type": "text", "text": "x\n" * 750}, {"type": "text", "text": "y" * 1500, "style": styles})
        assert client.chat_postMessage(channel="C0000001", text="t", blocks=[good])["ok"]
    with FakeSlack(limits=False) as lax:
        assert WebClient(token=BOT_TOKEN, base_url=lax.api_url).chat_postMessage(channel="C1", text="x" * 5000)["ok"]


@pytest.mark.parametrize("share", [False, True])
def test_an_answer_from_the_longest_made_up_passages_at_k20_is_accepted(long_index: Path, share: bool) -> None:
    index = open_index(long_index)
    result = answer(
        index, FakeEmbedder(), Ask("Which harbourmaster kept the ledger of the ropewalk?", MAX_K, threshold=0.0)
    )
    assert len(result.quotes) == MAX_K and max(len(q.passage) for q in result.quotes) > 6000
    declined = result.model_copy(update={"answered": False, "message": "x " * 2000})
    with FakeSlack() as fake:
        for shown in (result, declined, result.model_copy(update={"context": "y " * 3000})):
            message = post(fake, shown, share=share)
            titles = {w.lower().replace("<", "").replace(">", "") for w in VOCABULARY}  # as the titles hold them
            whole_words(message, {w.lower() for w in VOCABULARY} | titles | {"x"})  # x: the long message
        assert not fake.rejected
    quotes = quote_texts(message["blocks"])
    assert len(quotes) == MAX_K and any(ELLIPSIS in q for q in quotes)  # long passages were shortened, not dropped


@pytest.mark.slow
@pytest.mark.skipif(not SQUAD_PASSAGES.exists(), reason="../shared/eval/squad-v1.1-dev is absent")
def test_an_answer_from_squads_longest_passages_at_k20_is_accepted(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in SQUAD_PASSAGES.read_text(encoding="utf-8").splitlines() if line.strip()]
    longest = sorted(rows, key=lambda r: -len(r["text"]))[:40]
    corpus = tmp_path / "squad.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in longest), encoding="utf-8")
    build_index(corpus, tmp_path / "index", FakeEmbedder())
    index = open_index(tmp_path / "index")
    question = " ".join(longest[0]["text"].split()[:12])
    result = answer(index, FakeEmbedder(), Ask(question, MAX_K, threshold=0.0))
    assert len(result.quotes) == MAX_K
    with FakeSlack() as fake:
        for share in (False, True):
            post(fake, result, share=share)
        assert not fake.rejected
