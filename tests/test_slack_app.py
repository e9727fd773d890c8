"""The Slack app end to end: really signed requests to /slack/events of a running server, whose
Web API calls go to a fake Slack on loopback (tests/fake_slack.py); Socket Mode through the SDK's
own envelope processing."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from bot.answer.answering import answer
from bot.answer.asking import Ask
from bot.articles.corpus import load_corpus
from bot.http.app import create_app
from bot.indexing.faiss_build import build_index
from bot.indexing.versions import open_index
from bot.settings import Settings
from bot.slack.adapter.socket_mode import socket_mode_handler
from bot.slack.app import asked_day
from bot.slack.blocks import SHARE, VOTE_UP, escape
from bot.slack.feedback import FeedbackStore
from tests.conftest import (
    FERRY_QUESTION,
    ROOT,
    SEED_CORPUS,
    FakeEmbedder,
    ServerThread,
    wait_until,
    write_article,
    write_ferry_reports,
)
from tests.fake_slack import (
    APP_TOKEN,
    BOT_TOKEN,
    BOT_USER,
    GONE,
    SIGNING_SECRET,
    FakeSlack,
    action_body,
    command_body,
    event_body,
    mention,
    quote_elements,
    quote_texts,
    sign,
)

DANGER = "The memo said <!channel> and <@U0123456> should read <https://evil.example|this> at once."


@pytest.fixture(scope="module")
def slack_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed corpus plus an article full of Slack markup, indexed with the fake embedder."""
    corpus = tmp_path_factory.mktemp("slack") / "corpus"
    corpus.mkdir()
    for path in SEED_CORPUS.iterdir():
        (corpus / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    write_article(
        corpus,
        "memo.md",
        "Memo <!here> leaks",
        f"Staff were surprised on Monday. {DANGER} Nobody replied to the memo.",
        date="2025-02-01",
        url="https://news.example/memo",
    )
    index_dir = corpus.parent / "index"
    build_index(corpus, index_dir, FakeEmbedder())
    return index_dir


def slack_settings(index_dir: Path, data_dir: Path, fake: FakeSlack, **extra: Any) -> Settings:
    values = {
        "index_dir": index_dir,
        "data_dir": data_dir,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.api_url,
        **extra,
    }
    return Settings(**values)


@contextmanager
def running(index_dir: Path, data_dir: Path, fake: FakeSlack, embedder: Any = None, **extra: Any) -> Iterator[str]:
    app = create_app(slack_settings(index_dir, data_dir, fake, **extra), embedder=embedder or FakeEmbedder())
    with ServerThread(app) as server:
        server.wait_ready()
        yield server.url


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        yield slack


@pytest.fixture
def url(slack_index: Path, tmp_path: Path, fake: FakeSlack) -> Iterator[str]:
    with running(slack_index, tmp_path / "data", fake) as base:
        yield base


def post(base: str, body: str, content_type: str = "application/json", **headers: str) -> httpx.Response:
    signed = {"Content-Type": content_type, **sign(body), **headers}
    return httpx.post(base + "/slack/events", content=body, headers=signed, timeout=10)


def expected_quote(index_dir: Path, question: str) -> str:
    return answer(open_index(index_dir), FakeEmbedder(), Ask(question, 3)).quotes[0].text


@pytest.mark.slow
def test_a_mention_is_answered_once_in_its_thread_with_the_verbatim_quote(
    url: str, fake: FakeSlack, slack_index: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    question = "Who will be the chairman of Stargate?"
    event = mention(question, ts="1700000000.000100")
    response = post(url, event_body(event, "Ev001"))
    assert response.status_code == 200
    (call,) = wait_until(lambda: fake.of("chat.postMessage"))
    assert call.body["channel"] == "C0000001" and call.body["thread_ts"] == "1700000000.000100"
    best = answer(open_index(slack_index), FakeEmbedder(), Ask(question, 3)).quotes[0]
    (article,) = [a for a in load_corpus(SEED_CORPUS).articles if a.id == best.article.id]
    # The first quote is the article's own passage, word for word, and its bold is the quote.
    assert quote_texts(call.body["blocks"])[0] == best.passage
    assert best.passage == article.text[best.passage_start : best.passage_start + len(best.passage)]
    styled = [e for e in quote_elements(call.body["blocks"])[0] if e.get("style")]
    if best.answer is None:
        assert styled == [{"type": "text", "text": best.text, "style": {"bold": True}}]
    else:  # holding a short answer, the sentence is italic and the answer in it bold
        assert "".join(e["text"] for e in styled) == best.text
        assert [e["text"] for e in styled if e["style"].get("bold")] == [best.answer.text]
    assert escape(best.text) in call.body["text"]
    # Cited by title and date; the seed post has no URL, so no link is made up.
    blocks = json.dumps(call.body["blocks"], ensure_ascii=False)
    assert "OpenAI, Softbank launch Stargate Project · 2025-01-23" in blocks and "<http" not in blocks
    assert [c.method for c in fake.calls] == ["auth.test", "chat.postMessage"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert BOT_TOKEN not in logged and SIGNING_SECRET not in logged


def test_the_short_answer_is_bold_inside_the_italic_sentence_and_escaped(
    slack_index: Path, tmp_path: Path, fake: FakeSlack
) -> None:
    # Made-up news whose answer is an amount next to Slack's special characters.
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_article(
        corpus,
        "toll.md",
        "Brindlewood <toll> & bridge",
        "The Brindlewood <board> & council met on Monday. "
        "The new Quarry Lane bridge will cost US$42 M & open in spring, the council said.",
        date="2025-03-01",
    )
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir, FakeEmbedder())
    question = "How much will the Quarry Lane bridge cost?"
    best = answer(open_index(index_dir), FakeEmbedder(), Ask(question, 1, threshold=0.0)).quotes[0]
    assert best.answer is not None and best.answer.text == "US$42 M"
    with running(index_dir, tmp_path / "data", fake, BOT_THRESHOLD=0.0) as base:
        assert post(base, event_body(mention(question, ts="1.9"), "Ev0900")).status_code == 200
        (call,) = wait_until(lambda: fake.of("chat.postMessage"))
    (shown,) = quote_elements(call.body["blocks"])[:1]
    assert [e for e in shown if e.get("style")] == [
        {"type": "text", "text": "The new Quarry Lane bridge will cost ", "style": {"italic": True}},
        {"type": "text", "text": "US$42 M", "style": {"bold": True, "italic": True}},  # only the answer is bold
        {"type": "text", "text": " & open in spring, the council said.", "style": {"italic": True}},
    ]
    # Word for word: rich text is shown as it is, so nothing is escaped in it.
    assert quote_texts(call.body["blocks"])[0] == best.passage and "<board> & council" in best.passage


@pytest.mark.slow
def test_retries_and_twin_deliveries_are_answered_once(url: str, fake: FakeSlack) -> None:
    first = event_body(mention("Who are the initial equity funders?", ts="1700000001.000100"), "Ev100")
    assert post(url, first).status_code == 200
    wait_until(lambda: fake.of("chat.postMessage"))
    # Slack's retry of the same event, and the same DM message delivered as `message` and `app_mention`.
    assert post(url, first, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}).status_code == 200
    dm = {"user": "UASKER01", "text": "Who are the partners?", "ts": "1700000002.000100", "channel": "D0000001"}
    assert post(url, event_body({"type": "message", "channel_type": "im", **dm}, "Ev101")).status_code == 200
    assert post(url, event_body({"type": "app_mention", **dm}, "Ev102")).status_code == 200
    # In a channel, the plain `message` twin (were message.channels subscribed) does not shadow the mention.
    said = {"user": "UASKER01", "text": f"<@{BOT_USER}> Who are the partners?", "ts": "1700000002.500000"}
    channel_message = {"type": "message", "channel_type": "channel", "channel": "C0000001", **said}
    assert post(url, event_body(channel_message, "Ev104")).status_code == 200
    assert post(url, event_body({"type": "app_mention", "channel": "C0000001", **said}, "Ev105")).status_code == 200
    wait_until(lambda: len(fake.of("chat.postMessage")) == 3)
    # A retry of an event whose first delivery never arrived is answered; by the time it is, any
    # duplicate answer above would have been posted too.
    retried = event_body(mention("Where is the buildout?", ts="1700000003.000100"), "Ev103")
    assert post(url, retried, **{"X-Slack-Retry-Num": "2", "X-Slack-Retry-Reason": "http_error"}).status_code == 200
    wait_until(lambda: any(c.body.get("thread_ts") == "1700000003.000100" for c in fake.of("chat.postMessage")))
    posts = fake.of("chat.postMessage")
    threads = sorted(str(c.body.get("thread_ts")) for c in posts)
    assert threads == ["1700000001.000100", "1700000002.500000", "1700000003.000100", "None"]
    metrics = httpx.get(url + "/metrics").text
    assert 'bot_slack_deliveries_total{event="app_mention",outcome="duplicate"} 2.0' in metrics
    assert 'bot_http_requests_total{method="POST",route="/slack/events",status="200"} 7.0' in metrics


@pytest.mark.slow
@pytest.mark.parametrize(
    "headers_for",
    [
        lambda body: sign(body, secret="not-the-secret"),
        lambda body: sign(body, timestamp=int(time.time()) - 600),  # replayed ten minutes later
        lambda body: sign(body.replace("Stargate", "Stargаte")),  # signed, then altered
        lambda body: {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=00"},
        lambda body: {},
    ],
    ids=["wrong-secret", "stale", "tampered", "garbage", "unsigned"],
)
def test_bad_or_stale_signatures_get_401_and_no_answer(
    url: str, fake: FakeSlack, headers_for: Callable[[str], dict[str, str]]
) -> None:
    body = event_body(mention("Who will chair Stargate?", ts="1700000004.000100"), "Ev200")
    headers = {"Content-Type": "application/json", **headers_for(body)}
    assert httpx.post(url + "/slack/events", content=body, headers=headers).status_code == 401
    good = event_body(mention("Who will chair Stargate?", ts="1700000005.000100"), "Ev201")
    assert post(url, good).status_code == 200
    (call,) = wait_until(lambda: fake.of("chat.postMessage"))
    assert call.body["thread_ts"] == "1700000005.000100"  # only the signed one


@pytest.mark.slow
def test_url_verification_echoes_the_challenge(url: str) -> None:
    body = json.dumps(
        {
            "token": "legacy",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            "type": "url_verification",
        }
    )
    response = post(url, body)
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


@pytest.mark.slow
def test_ask_command_is_acked_at_once_then_answered_privately_and_shareable(
    url: str, fake: FakeSlack, tmp_path: Path
) -> None:
    started = time.monotonic()
    response = post(
        url, command_body("Who will chair Stargate?", fake.response_url("cmd1")), "application/x-www-form-urlencoded"
    )
    acked = time.monotonic() - started
    assert response.status_code == 200 and acked < 3.0
    (reply,) = wait_until(lambda: fake.of("/response/cmd1"))
    assert reply.body["response_type"] == "ephemeral"
    assert "Masayoshi Son" in json.dumps(reply.body["blocks"], ensure_ascii=False)
    buttons = reply.body["blocks"][-1]["elements"]
    share = next(b for b in buttons if b["action_id"] == SHARE)
    # "Share in channel": the same answer for everyone, then the private copy goes.
    assert (
        post(
            url, action_body(SHARE, share["value"], fake.response_url("share1")), "application/x-www-form-urlencoded"
        ).status_code
        == 200
    )
    shared, removed = wait_until(lambda: (c := fake.of("/response/share1")) and len(c) == 2 and c)
    assert shared.body["response_type"] == "in_channel" and shared.body["replace_original"] is False
    assert "Shared by <@UASKER01>" in json.dumps(shared.body["blocks"])
    assert "Masayoshi Son" in json.dumps(shared.body["blocks"], ensure_ascii=False)
    assert removed.body["delete_original"] is True


@pytest.mark.slow
def test_ask_command_without_a_question_gets_usage_in_the_ack(url: str, fake: FakeSlack) -> None:
    response = post(url, command_body("   ", fake.response_url("cmd2")), "application/x-www-form-urlencoded")
    assert response.status_code == 200 and response.json()["response_type"] == "ephemeral"
    assert (
        "The question is empty" in response.json()["text"]
        and "/ask Who will chair Stargate?" in response.json()["text"]
    )
    assert not fake.of("/response/cmd2")


@pytest.mark.slow
def test_ask_command_in_channel_when_not_ephemeral(slack_index: Path, tmp_path: Path, fake: FakeSlack) -> None:
    with running(slack_index, tmp_path / "data", fake, slack_ephemeral=False) as base:
        response = post(
            base, command_body("Who will chair Stargate?", fake.response_url("c3")), "application/x-www-form-urlencoded"
        )
        assert response.status_code == 200 and response.json()["response_type"] == "in_channel"
        (reply,) = wait_until(lambda: fake.of("/response/c3"))
    assert reply.body["response_type"] == "in_channel"
    assert SHARE not in json.dumps(reply.body["blocks"])


@pytest.mark.slow
def test_a_thumbs_up_is_stored_and_counted(url: str, fake: FakeSlack, tmp_path: Path, slack_index: Path) -> None:
    assert (
        post(url, event_body(mention("Who will chair Stargate?", ts="1700000006.000100"), "Ev300")).status_code == 200
    )
    (call,) = wait_until(lambda: fake.of("chat.postMessage"))
    answer_id = call.body["blocks"][-1]["elements"][0]["value"]
    for _ in range(2):  # a double click counts once
        body = action_body(VOTE_UP, answer_id, fake.response_url("vote"), user="UVOTER01")
        assert post(url, body, "application/x-www-form-urlencoded").status_code == 200
    wait_until(lambda: len(fake.of("/response/vote")) == 2)
    (vote,) = FeedbackStore(tmp_path / "data" / "slack.sqlite3").votes()
    assert (vote.user, vote.vote, vote.question) == ("UVOTER01", "up", "Who will chair Stargate?")
    shown = answer(open_index(slack_index), FakeEmbedder(), Ask("Who will chair Stargate?", 3))
    assert [q["text"] for q in vote.quotes] == [q.text for q in shown.quotes]  # the quotes that were shown
    assert 'bot_feedback_total{channel="slack",vote="up"} 1.0' in httpx.get(url + "/metrics").text


@pytest.mark.slow
def test_an_article_full_of_slack_markup_renders_harmless(url: str, fake: FakeSlack, slack_index: Path) -> None:
    question = "What did the memo say staff should read?"
    assert DANGER in expected_quote(slack_index, question)
    assert post(url, event_body(mention(question, ts="1700000007.000100"), "Ev400")).status_code == 200
    (call,) = wait_until(lambda: fake.of("chat.postMessage"))
    # In the mrkdwn Slack parses (question, citation, fallback text) the markup is escaped ...
    mrkdwn = json.dumps([b for b in call.body["blocks"] if b["type"] != "rich_text"]) + call.body["text"]
    for markup in ("<!channel>", "<@U0123456>", "<https://evil.example", "<!here>"):
        assert markup not in mrkdwn
    assert "&lt;!channel&gt;" in mrkdwn and "&lt;@U0123456&gt;" in mrkdwn and "Memo &lt;!here&gt; leaks" in mrkdwn
    assert "<https://news.example/memo|link>" in mrkdwn
    # ... and the quote shows it word for word as text: pings and links are element types of their own.
    assert DANGER in quote_texts(call.body["blocks"])[0]
    assert {e["type"] for elements in quote_elements(call.body["blocks"]) for e in elements} == {"text"}


@pytest.mark.slow
def test_answers_go_to_the_right_conversation_and_bot_messages_are_ignored(url: str, fake: FakeSlack) -> None:
    ignored = [
        {
            "type": "message",
            "channel_type": "im",
            "bot_id": "BOTHER",
            "text": "Who will chair Stargate?",
            "user": "U2",
            "ts": "1.1",
            "channel": "D1",
        },
        {"type": "message", "channel_type": "im", "subtype": "message_changed", "ts": "1.2", "channel": "D1"},
        {
            "type": "message",
            "channel_type": "im",
            "user": BOT_USER,
            "text": "my own answer",
            "ts": "1.3",
            "channel": "D1",
        },
        {
            "type": "message",
            "channel_type": "channel",
            "user": "U2",
            "text": "Who will chair Stargate?",
            "ts": "1.4",
            "channel": "C1",
        },
    ]
    for n, event in enumerate(ignored):
        assert post(url, event_body(event, f"Ev5{n:02d}")).status_code == 200
    in_thread = {"type": "message", "channel_type": "im", "user": "U2", "text": "Who will chair Stargate?"}
    assert (
        post(url, event_body({**in_thread, "ts": "2.1", "thread_ts": "2.0", "channel": "D1"}, "Ev510")).status_code
        == 200
    )
    assert post(url, event_body({**in_thread, "ts": "2.2", "channel": "D1"}, "Ev511")).status_code == 200
    follow_up = mention("And who funds it?", ts="3.5", thread_ts="3.0")  # a mention inside a thread
    assert post(url, event_body(follow_up, "Ev512")).status_code == 200
    posts = wait_until(lambda: (p := fake.of("chat.postMessage")) and len(p) == 3 and p)
    where = sorted((p.body["channel"], str(p.body.get("thread_ts"))) for p in posts)
    assert where == [("C0000001", "3.0"), ("D1", "2.0"), ("D1", "None")]


@pytest.mark.slow
def test_while_there_is_no_index_the_bot_says_so(tmp_path: Path, fake: FakeSlack) -> None:
    app = create_app(slack_settings(tmp_path / "no-index", tmp_path / "data", fake), embedder=FakeEmbedder())
    with ServerThread(app) as server:
        wait_until(lambda: "bot index" in httpx.get(server.url + "/readyz").json()["error"])
        assert post(server.url, event_body(mention("Who will chair Stargate?", ts="4.1"), "Ev513")).status_code == 200
        (call,) = wait_until(lambda: fake.of("chat.postMessage"))
    assert call.body["text"].startswith("I can't answer right now: ") and "bot index" in call.body["text"]
    assert call.body["thread_ts"] == "4.1"


@pytest.mark.slow
def test_an_empty_mention_gets_a_private_hint(url: str, fake: FakeSlack) -> None:
    assert post(url, event_body(mention("", ts="1700000008.000100"), "Ev600")).status_code == 200
    (hint,) = wait_until(lambda: fake.of("chat.postEphemeral"))
    assert hint.body["user"] == "UASKER01" and "The question is empty" in hint.body["text"]
    assert not fake.of("chat.postMessage")


@pytest.mark.slow
def test_home_tab_shows_how_to_ask_and_the_corpus(url: str, fake: FakeSlack) -> None:
    event = {"type": "app_home_opened", "user": "UASKER01", "channel": "D1", "tab": "home", "event_ts": "1.0"}
    assert post(url, event_body(event, "Ev700")).status_code == 200
    (call,) = wait_until(lambda: fake.of("views.publish"))
    view = json.dumps(call.body["view"], ensure_ascii=False)
    assert call.body["user_id"] == "UASKER01"
    assert "*2* articles" in view and "/ask" in view and "2025-02-01" in view
    assert "What does “Memo &lt;!here&gt; leaks” say?" in view


@pytest.mark.slow
def test_ratelimited_posts_are_retried_after_retry_after(slack_index: Path, tmp_path: Path) -> None:
    with (
        FakeSlack(ratelimit_once={"chat.postMessage"}, retry_after=1) as fake,
        running(slack_index, tmp_path / "d", fake) as base,
    ):
        assert post(base, event_body(mention("Who will chair Stargate?", ts="1.5"), "Ev800")).status_code == 200
        (call,) = wait_until(lambda: fake.of("chat.postMessage"), timeout=30)
        (limited,) = fake.ratelimited
        assert call.at - limited.at >= 1.0
        assert call.body["thread_ts"] == "1.5"


@pytest.mark.slow
def test_slack_web_api_errors_are_logged_not_fatal(url: str, fake: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.slack")
    assert (
        post(url, event_body(mention("Who will chair Stargate?", ts="1.6", channel=GONE), "Ev900")).status_code == 200
    )
    wait_until(lambda: "Slack chat.postMessage failed: channel_not_found" in caplog.text)
    assert post(url, event_body(mention("Who will chair Stargate?", ts="1.61"), "Ev901")).status_code == 200
    wait_until(lambda: [c for c in fake.of("chat.postMessage") if c.body["channel"] == "C0000001"])


@pytest.mark.slow
def test_a_wrong_token_is_never_logged(slack_index: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeSlack() as fake:
        settings = slack_settings(slack_index, tmp_path / "d", fake, SLACK_BOT_TOKEN="xoxb-wrong-token-0000")
        with ServerThread(create_app(settings, embedder=FakeEmbedder())) as server:
            server.wait_ready()
            assert post(server.url, event_body(mention("Who?", ts="1.62"), "Ev902")).status_code == 200
            wait_until(lambda: fake.of("auth.test"))
            assert httpx.get(server.url + "/healthz").status_code == 200
        assert not fake.of("chat.postMessage")
    assert "xoxb-wrong-token-0000" not in caplog.text


@pytest.mark.slow
def test_slack_is_off_without_both_secrets(slack_index: Path, tmp_path: Path) -> None:
    with ServerThread(
        create_app(
            Settings(index_dir=slack_index, data_dir=tmp_path, SLACK_BOT_TOKEN=BOT_TOKEN), embedder=FakeEmbedder()
        )
    ) as server:
        assert httpx.post(server.url + "/slack/events", content="{}").status_code in (404, 405)


def test_socket_mode_envelopes_are_acked_and_answered(slack_index: Path, tmp_path: Path, fake: FakeSlack) -> None:
    """Through the SDK's own Socket Mode client: a raw envelope as the websocket would deliver it."""
    from bot.service import Service
    from bot.slack.app import SlackBot

    settings = slack_settings(slack_index, tmp_path / "d", fake, SLACK_APP_TOKEN=APP_TOKEN)
    service = Service(settings, FakeEmbedder())
    service.load()
    bot = SlackBot(service, token=BOT_TOKEN, signing_secret=None)
    handler = socket_mode_handler(bot, APP_TOKEN)
    sent: list[Any] = []
    setattr(handler.client, "send_socket_mode_response", sent.append)  # noqa: B010 (a fake for one method)
    try:
        event = mention("Who will chair Stargate?", ts="1.7")
        envelope = {"type": "events_api", "envelope_id": "env-1", "accepts_response_payload": False}
        envelope["payload"] = json.loads(event_body(event, "Ev1000"))
        handler.client.enqueue_message(json.dumps(envelope))
        handler.client.enqueue_message(
            json.dumps({**envelope, "envelope_id": "env-2", "retry_attempt": 1, "retry_reason": "timeout"})
        )
        (call,) = wait_until(lambda: fake.of("chat.postMessage"))
        assert call.body["thread_ts"] == "1.7" and "Masayoshi Son" in json.dumps(
            call.body["blocks"], ensure_ascii=False
        )
        wait_until(lambda: len(sent) == 2)
        assert sorted(r.envelope_id for r in sent) == ["env-1", "env-2"]
        command = {"type": "slash_commands", "envelope_id": "env-3", "accepts_response_payload": True}
        command["payload"] = dict(parse_qsl(command_body("Who will chair Stargate?", fake.response_url("sm"))))
        handler.client.enqueue_message(json.dumps(command))
        (reply,) = wait_until(lambda: fake.of("/response/sm"))
        assert "Masayoshi Son" in json.dumps(reply.body["blocks"], ensure_ascii=False)
        assert len(fake.of("chat.postMessage")) == 1
    finally:
        handler.client.close()
        assert service.live is not None
        asyncio.run(service.close())


@pytest.mark.slow
def test_a_mention_is_answered_with_the_real_model(
    seed_index: Path, real_embedder: Any, tmp_path: Path, fake: FakeSlack
) -> None:
    with running(seed_index, tmp_path / "data", fake, embedder=real_embedder) as base:
        assert post(base, event_body(mention("Who will chair Stargate?", ts="1.8"), "Ev1100")).status_code == 200
        (call,) = wait_until(lambda: fake.of("chat.postMessage"))
    (first,) = quote_elements(call.body["blocks"])[:1]
    # The answering sentence in italics with its short answer, the name, in bold; verbatim.
    assert [e for e in first if e.get("style")] == [
        {"type": "text", "text": "Masayoshi Son", "style": {"bold": True, "italic": True}},
        {
            "type": "text",
            "text": ", Representative Director, Corporate Officer, Chairman & CEO of SoftBank, will be the chairman.",
            "style": {"italic": True},
        },
    ]
    assert call.body["thread_ts"] == "1.8"


def test_the_manifest_asks_for_what_the_app_uses() -> None:
    import yaml

    from bot.slack.app import COMMAND

    manifest = yaml.safe_load((ROOT / "bot" / "slack" / "manifest.yaml").read_text(encoding="utf-8"))
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == [
        "app_mentions:read",
        "channels:read",  # conversations.members of BOT_SLACK_EDITORS_CHANNEL, when public
        "chat:write",
        "commands",
        "groups:read",  # the same, when private
        "im:history",
    ]
    settings = manifest["settings"]
    assert sorted(settings["event_subscriptions"]["bot_events"]) == ["app_home_opened", "app_mention", "message.im"]
    assert settings["socket_mode_enabled"] is True and settings["interactivity"]["is_enabled"] is True
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == COMMAND
    assert 174 <= len(manifest["display_information"]["long_description"]) <= 4000  # Slack refuses others
    assert manifest["features"]["bot_user"]["display_name"] == "qa-bot"  # the name the README tells people to @
    home = manifest["features"]["app_home"]
    assert home["home_tab_enabled"] and home["messages_tab_enabled"] and not home["messages_tab_read_only_enabled"]


def test_bot_slack_without_tokens_says_what_to_set(capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    assert main(["slack"]) == 1
    error = capsys.readouterr().err
    assert "SLACK_BOT_TOKEN" in error and "SLACK_APP_TOKEN" in error and "README" in error


@pytest.mark.slow
def test_bot_slack_checks_both_tokens_with_slack(
    seed_index: Path,
    real_embedder: Any,
    tmp_path: Path,
    fake: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bot.cli import main

    monkeypatch.setattr("bot.observability.configure_logging", lambda *args: None)
    for name, value in {
        "SLACK_API_URL": fake.api_url,
        "SLACK_APP_TOKEN": "xapp-1-not-valid",
        "BOT_DATA_DIR": str(tmp_path),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-not-valid")
    assert main(["slack", "--index", str(seed_index)]) == 1
    assert "Slack refused SLACK_BOT_TOKEN (invalid_auth)" in capsys.readouterr().err
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    from bot.settings import get_settings

    get_settings.cache_clear()
    assert main(["slack", "--index", str(seed_index)]) == 1
    assert "Slack refused the Socket Mode connection (invalid_auth)" in capsys.readouterr().err
    assert [c.method for c in fake.calls][-1] == "apps.connections.open"


def test_anything_like_a_token_is_redacted_from_the_slack_log(caplog: pytest.LogCaptureFixture) -> None:
    from bot.slack.app import log

    caplog.set_level(logging.DEBUG, logger="bot.slack")
    log.debug("headers: %s", {"Authorization": "Bearer xoxb-9999-8888-abcdef", "app": "xapp-1-A1-2-xyz"})
    assert "xoxb-9999" not in caplog.text and "xapp-1-A1" not in caplog.text
    assert caplog.text.count("(redacted token)") == 2


class CountingEmbedder(FakeEmbedder):
    """The fake embedder, counting the texts it is asked to encode."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> Any:
        self.texts += texts
        return super().encode(texts, batch_size=batch_size, progress=progress)


def test_slack_questions_share_the_servers_batches_and_vector_cache(
    slack_index: Path, tmp_path: Path, fake: FakeSlack
) -> None:
    embedder = CountingEmbedder()
    app = create_app(slack_settings(slack_index, tmp_path / "data", fake), embedder=embedder)
    with ServerThread(app) as server:
        server.wait_ready()
        service = app.state.service
        question = "Who will be the chairman of Stargate?"
        assert post(server.url, event_body(mention(question, ts="1700000000.000700"), "Ev701")).status_code == 200
        wait_until(lambda: fake.of("chat.postMessage"))
        assert embedder.texts == [question] and service.encoder.batch_sizes == [1]
        # The same question over HTTP is answered from the vector the Slack question left in the cache.
        response = httpx.post(server.url + "/ask", json={"question": question}, timeout=30)
        assert response.status_code == 200
        assert embedder.texts == [question] and service.encoder.cache_hits == 1


def epoch(day: str, hour: int = 12) -> str:
    moment = dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=dt.UTC)
    return f"{moment.timestamp():.6f}"


def test_a_slack_timestamp_gives_the_day_asked_in_utc() -> None:
    assert asked_day("1700000000.000100") == dt.date(2023, 11, 14)
    assert asked_day(epoch("2031-03-04", hour=23)) == dt.date(2031, 3, 4)
    today = dt.datetime.now(dt.UTC).date()
    # No timestamp, or one that is not a number: the question is asked now.
    for ts in (None, "", "soon", "1e400", "nan"):
        assert asked_day(ts) in {today, today + dt.timedelta(days=1)}


@pytest.mark.slow
def test_this_week_reads_against_the_day_of_the_message(tmp_path: Path, fake: FakeSlack) -> None:
    corpus = tmp_path / "corpus"
    write_ferry_reports(corpus, {"Port Quill": "2031-03-03", "Harrow Bay": "2031-05-05"})
    today = dt.datetime.now(dt.UTC).date()
    write_ferry_reports(
        tmp_path / "now", {"Kelmouth": today.isoformat(), "Dunmere": (today - dt.timedelta(70)).isoformat()}
    )
    for n, path in enumerate(sorted((tmp_path / "now").iterdir())):
        path.rename(corpus / f"now-{n}.md")
    build_index(corpus, tmp_path / "index", FakeEmbedder())
    with running(tmp_path / "index", tmp_path / "data", fake) as base:
        for n, (day, harbour) in enumerate([("2031-03-04", "Port Quill"), ("2031-05-06", "Harrow Bay")]):
            post(base, event_body(mention(FERRY_QUESTION, ts=epoch(day)), f"EvFerry{n}"))
            call = wait_until(lambda n=n: (calls := fake.of("chat.postMessage")) and len(calls) > n and calls[n])
            top = quote_texts(call.body["blocks"])[0]
            assert harbour in top, (day, top)
        # A slash command has no timestamp: it is asked today.
        post(base, command_body(FERRY_QUESTION, fake.response_url("ferry")), "application/x-www-form-urlencoded")
        (reply,) = wait_until(lambda: fake.of("/response/ferry"))
        assert "Kelmouth" in quote_texts(reply.body["blocks"])[0]
