"""Links added from Slack: "Add the link to the articles" on a message and `/ask add URL`, by really
signed requests to a running server, whose Web API calls go to the fake Slack; the pages come from a
loopback web server, and the article on them is made up for these tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import yaml
from pydantic import ValidationError

from bot.articles.corpus import load_corpus
from bot.errors import QuestionError
from bot.indexing.faiss_build import build_index
from bot.service import Service
from bot.settings import Settings
from bot.slack.adapter.socket_mode import socket_mode_handler
from bot.slack.app import SlackBot
from bot.slack.links import ADD_SHORTCUT, add_request, links_in
from tests.conftest import ROOT, FakeEmbedder, wait_until
from tests.fake_slack import APP_TOKEN, BOT_TOKEN, TEAM, FakeSlack, command_body, event_body, quote_texts, trigger_id
from tests.test_ingest import Site, article_html
from tests.test_slack_app import post, running, slack_settings

FORM = "application/x-www-form-urlencoded"
EDITOR = "UEDITOR1"  # named in BOT_SLACK_EDITORS
MEMBER = "UMEMBER3"  # third member of the editors' channel: found on conversations.members' second page
READER = "UREADER1"  # neither
EDITORS_CHANNEL = "CEDITORS"
KEY = "s3cret"

# A made-up story about made-up places and a made-up company.
TITLE = "Tallowick Ferries opens a night route to Brackenmoor"
DAY = "2025-03-14"
STORY = [
    "Tallowick Ferries will run a night crossing from Quenby Harbour to Brackenmoor from the first of April.",
    "The company said the new vessel, the Marrowdene, can carry 340 passengers and 60 cars on each crossing.",
    "Harbour master Idris Fenlow said the route would end the long detour over the Skelling Viaduct.",
    "Tickets for the first sailings go on sale next week, priced at 18 crowns for a foot passenger.",
]
QUESTION = "How many passengers can the Marrowdene carry?"
CORRECTION = "This report was corrected on 15 March: the first sailing is on the second of April."
SIGN_IN = (
    "<html><head><title>Tallowick Ferries account</title></head><body><form><label>Password "
    "<input name=password type=password></label><button>Sign in</button></form></body></html>"
)


def shortcut_body(text: str, user: str, *, ts: str = "20.1", thread_ts: str | None = None) -> str:
    """A message shortcut's interaction, as Slack posts it (form-encoded `payload=` JSON)."""
    message: dict[str, Any] = {"type": "message", "user": "UPOSTER1", "ts": ts, "text": text}
    if thread_ts:
        message["thread_ts"] = thread_ts
    payload = {
        "type": "message_action",
        "callback_id": ADD_SHORTCUT,
        "trigger_id": trigger_id(),
        "team": {"id": TEAM},
        "user": {"id": user, "team_id": TEAM},
        "channel": {"id": "C0000001", "name": "news"},
        "message_ts": ts,
        "message": message,
        "response_url": "http://127.0.0.1:9/unused",
        "api_app_id": "A0000001",
    }
    return urlencode({"payload": json.dumps(payload)})


def linked(url: str) -> str:
    """A link as Slack writes it in a message's text."""
    return f"<{url}|{url.split('://', 1)[1]}>"


def sent_to(fake: FakeSlack, user: str | None = None, thread: str | None = None) -> list[dict[str, Any]]:
    """The messages posted so far (ephemeral or not), optionally only those for `user` / in `thread`."""
    calls = fake.of("chat.postEphemeral") + fake.of("chat.postMessage")
    bodies = [c.body for c in sorted(calls, key=lambda c: c.at)]
    return [
        b
        for b in bodies
        if (user is None or b.get("user") == user) and (thread is None or b.get("thread_ts") == thread)
    ]


def texts(fake: FakeSlack, **where: Any) -> list[str]:
    return [str(b["text"]) for b in sent_to(fake, **where)]


@pytest.fixture
def site() -> Iterator[Site]:
    with Site() as running_site:
        yield running_site


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    members = {EDITORS_CHANNEL: ["UOTHER01", "UOTHER02", MEMBER]}
    with FakeSlack(members=members, page_size=2) as slack:
        yield slack


def editors(**extra: Any) -> dict[str, Any]:
    """The settings of a server that takes new articles and names its editors."""
    return {"api_key": KEY, "slack_editors": EDITOR, "slack_editors_channel": EDITORS_CHANNEL, **extra}


def test_the_manifest_declares_the_add_shortcut_and_the_scopes_to_read_the_editors_channel() -> None:
    manifest = yaml.safe_load((ROOT / "bot" / "slack" / "manifest.yaml").read_text(encoding="utf-8"))
    (shortcut,) = [s for s in manifest["features"]["shortcuts"] if s["callback_id"] == ADD_SHORTCUT]
    assert shortcut["name"] == "Add the link to the articles" and shortcut["type"] == "message"
    assert len(shortcut["description"]) <= 150
    # conversations.members: channels:read for a public editors' channel, groups:read for a private one.
    assert {"channels:read", "groups:read"} <= set(manifest["oauth_config"]["scopes"]["bot"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("add https://news.example/a", "https://news.example/a"),
        ("  ADD   <https://news.example/a?x=1&amp;y=2|news.example/a>  ", "https://news.example/a?x=1&y=2"),
        ("add <http://news.example/b>", "http://news.example/b"),
        ("Who will chair Stargate?", None),
        ("add up the pledges made by SoftBank?", None),  # no link: a question
        ("address of https://news.example/a?", None),  # "add" must be a word of its own
        ("additional https://news.example/a", None),
    ],
)
def test_ask_add_url_is_told_apart_from_a_question(text: str, expected: str | None) -> None:
    assert add_request(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("add https://news.example/a please", "one link, nothing else"),
        ("add https://news.example/a https://news.example/b", "one link, nothing else"),
        ("add <mailto:desk@news.example|desk@news.example>", "Only http(s) links"),
        ("add ftp://news.example/a", "Only http(s) links"),
    ],
)
def test_ask_add_with_more_than_one_link_gets_the_usage(text: str, problem: str) -> None:
    with pytest.raises(QuestionError, match=r"/ask add https://") as caught:
        add_request(text)
    assert problem in str(caught.value)


def test_the_links_of_a_message_are_found_once_each_in_order() -> None:
    text = (
        "Two reads: <https://a.example/x|a.example/x> and https://b.example/y?q=1&amp;r=2, "
        "again <https://a.example/x>, not <mailto:me@a.example|me@a.example> nor <@U123> or <#C1|news>."
    )
    assert links_in(text) == ["https://a.example/x", "https://b.example/y?q=1&r=2"]


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("BOT_SLACK_EDITORS", "@alice", "'@alice' is not a Slack user id"),
        ("BOT_SLACK_EDITORS", "U0EDIT01, alice", "'alice' is not a Slack user id"),
        ("BOT_SLACK_EDITORS_CHANNEL", "#editors", "'#editors' is not a Slack channel id"),
    ],
)
def test_editor_settings_must_be_slack_ids(
    name: str, value: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=problem):
        Settings()


def test_editor_settings_take_commas_or_spaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_SLACK_EDITORS", "U0EDIT01, U0EDIT02 W0EDIT03")
    monkeypatch.setenv("BOT_SLACK_EDITORS_CHANNEL", "C0EDITS1")
    settings = Settings()
    assert settings.slack_editors == {"U0EDIT01", "U0EDIT02", "W0EDIT03"}
    assert settings.slack_editors_channel == "C0EDITS1"


@pytest.mark.slow
def test_an_editor_adds_a_linked_page_and_a_question_then_quotes_it(
    site: Site, fake: FakeSlack, seed_corpus: Path, tmp_path: Path, real_embedder: Any
) -> None:
    """The issue's whole story on the real model: the shortcut by an editor adds the page and says
    so in the thread; then `/ask` answers from it, quoted word for word."""
    index_dir = tmp_path / "index"
    build_index(seed_corpus, index_dir, real_embedder)
    url = site.page("/ferries/night-route", article_html(TITLE, STORY, date=DAY))
    settings = editors(corpus_dir=seed_corpus, allow_private_urls=True)
    with running(index_dir, tmp_path / "data", fake, embedder=real_embedder, **settings) as base:
        body = shortcut_body(f"Worth adding: {linked(url)}", EDITOR, ts="20.1")
        assert post(base, body, FORM).status_code == 200
        (done,) = wait_until(lambda: fake.of("chat.postMessage"), timeout=120)
        asked = post(base, command_body(QUESTION, fake.response_url("q1"), user=READER), FORM)
        assert asked.status_code == 200
        (answer,) = wait_until(lambda: fake.of("/response/q1"), timeout=60)
        assert not fake.rejected
    # In the message's thread, for everyone: who added what, its date, and that it is searchable.
    assert done.body["channel"] == "C0000001" and done.body["thread_ts"] == "20.1" and "user" not in done.body
    assert TITLE in done.body["text"] and DAY in done.body["text"] and "searchable now" in done.body["text"]
    assert f"<@{EDITOR}>" in done.body["text"]
    (adding,) = texts(fake, user=EDITOR, thread="20.1")  # the editor alone saw "Adding …" first
    assert adding.startswith("Adding ") and url in adding
    (article,) = [a for a in load_corpus(seed_corpus).articles if a.title == TITLE]
    assert article.date == DAY
    # The answer quotes the new article word for word, and cites it.
    blocks = json.dumps(answer.body["blocks"], ensure_ascii=False)
    first = quote_texts(answer.body["blocks"])[0]
    assert first in article.text and "340 passengers" in first
    assert TITLE in blocks and DAY in blocks


@pytest.mark.slow
def test_who_may_add_and_what_each_failure_says(
    site: Site, fake: FakeSlack, seed_corpus: Path, fake_index: Path, tmp_path: Path
) -> None:
    url = site.page("/ferries/night-route", article_html(TITLE, STORY, date=DAY))
    login = site.page("/account", SIGN_IN)
    image = site.page("/map.png", b"\x89PNG\r\n\x1a\n" + bytes(64), content_type="image/png")
    huge = site.page("/archive", article_html("Everything", STORY * 30_000))
    before = len(load_corpus(seed_corpus).articles)
    settings = editors(corpus_dir=seed_corpus, allow_private_urls=True)
    with running(fake_index, tmp_path / "data", fake, **settings) as base:

        def shortcut(text: str, user: str, ts: str, count: int) -> list[str]:
            assert post(base, shortcut_body(text, user, ts=ts), FORM).status_code == 200
            return wait_until(lambda: len(got := texts(fake, thread=ts)) >= count and got, timeout=60)

        # Anyone else: refused privately, saying who may; nothing fetched, nothing added.
        (refused,) = shortcut(f"Look: {linked(url)}", READER, "21.1", 1)
        # A member of the editors' channel (found on the second page of its members) may.
        added = shortcut(f"Look: {linked(url)}", MEMBER, "21.2", 2)
        home = event_body({"type": "app_home_opened", "user": MEMBER, "tab": "home", "event_ts": "1.0"}, "EvHome1")
        assert post(base, home).status_code == 200
        (view,) = wait_until(lambda: fake.of("views.publish"))
        # The same page again, a sign-in page, an image, a page past the size limit, no link at all.
        again = shortcut(f"Again {linked(url)}", EDITOR, "21.3", 2)
        failures = shortcut(f"{linked(login)} {linked(image)} {linked(huge)}", EDITOR, "21.4", 4)
        (nothing,) = shortcut("No link here, only <@U0000002> and <#C0000003|news>.", EDITOR, "21.5", 1)
        # A wire copy of the story elsewhere (near-duplicate), then a new text at the first page's address.
        copy = site.page("/wire/ferries", article_html(f"{TITLE} (wire)", [*STORY, "By the Quenby Wire."]))
        linked_copy = shortcut(linked(copy), EDITOR, "21.6", 2)[1]
        site.page("/ferries/night-route", article_html(TITLE, [*STORY, CORRECTION], date=DAY))
        updated = shortcut(linked(url), EDITOR, "21.7", 2)[1]
        assert not fake.rejected
    assert sent_to(fake, thread="21.1")[0]["user"] == READER  # ephemeral, to them alone
    assert refused.startswith("Only the bot's editors can add links") and f"<#{EDITORS_CHANNEL}>" in refused
    assert TITLE in added[1] and DAY in added[1] and "searchable now" in added[1]
    assert "user" not in sent_to(fake, thread="21.2")[1]  # the outcome is for the thread
    members_calls = fake.of("conversations.members")
    assert [c.body.get("cursor") for c in members_calls[:2]] == [None, "2"]  # paged, as Slack does
    # The Home tab shows the count and the newest articles with their dates, the new one first.
    shown = json.dumps(view.body["view"], ensure_ascii=False)
    assert f"*{before + 1}* articles" in shown and f"• {DAY} · <{url}|{TITLE}>" in shown
    assert shown.index(TITLE) < shown.index("2025-01-23 · OpenAI, Softbank launch Stargate Project")
    assert "/ask add https://" in shown  # an editor is told how to add
    # Each failure privately, with its reason; the duplicate names the article it repeats.
    assert all(b["user"] == EDITOR for b in sent_to(fake, thread="21.3") + sent_to(fake, thread="21.4"))
    assert again[1] == f"Already in the articles, and searchable: *<{url}|{TITLE}>* ({DAY})."
    not_article, not_html, too_big = failures[1:]
    assert not_article.startswith(f"Not added: {login}: the page is not an article: its main text is 3 words")
    assert not_html == (
        f"Not added: {image}: content type 'image/png' is not one of "
        "application/xhtml+xml, text/html, text/markdown, text/plain"
    )
    assert too_big.startswith(f"Not added: {huge}: ") and "5242880-byte limit" in too_big
    assert nothing == "There is no http(s) link in this message to add."
    # Both in the thread for everyone: the copy is cited beside the story, the story has its new text.
    assert "user" not in sent_to(fake, thread="21.6")[1] and "user" not in sent_to(fake, thread="21.7")[1]
    assert linked_copy == (
        f"<@{EDITOR}> added *<{copy}|{TITLE} (wire)>* (no date): a near-copy of an article already in, "
        "so answers quote that one and cite this as also reported by: searchable now."
    )
    assert updated == f"<@{EDITOR}> updated *<{url}|{TITLE}>* ({DAY}) in the articles: its new text is searchable now."
    (story,) = [a for a in load_corpus(seed_corpus).articles if a.title == TITLE]
    assert CORRECTION in story.text
    titles = [a.title for a in load_corpus(seed_corpus).articles]
    assert len(titles) == before + 2 and titles.count(TITLE) == 1  # the story and its copy


@pytest.mark.slow
def test_ask_add_url_adds_for_editors_and_refuses_others(
    site: Site, fake: FakeSlack, seed_corpus: Path, fake_index: Path, tmp_path: Path
) -> None:
    url = site.page("/ferries/night-route", article_html(TITLE, STORY, date=DAY))
    settings = editors(corpus_dir=seed_corpus, allow_private_urls=True)
    with running(fake_index, tmp_path / "data", fake, **settings) as base:
        refused = post(base, command_body(f"add {url}", fake.response_url("r1"), user=READER), FORM)
        (refusal,) = wait_until(lambda: fake.of("/response/r1"))
        usage = post(base, command_body(f"add {url} tonight", fake.response_url("r2"), user=EDITOR), FORM)
        added = post(base, command_body(f"add <{url}>", fake.response_url("r3"), user=EDITOR), FORM)
        adding, done = wait_until(lambda: len(got := fake.of("/response/r3")) == 2 and got, timeout=60)
        assert post(base, command_body(QUESTION, fake.response_url("r4"), user=READER), FORM).status_code == 200
        (answer,) = wait_until(lambda: fake.of("/response/r4"))
    assert refused.status_code == 200 and refused.text == ""  # acked at once, answered after the check
    assert refusal.body["response_type"] == "ephemeral" and "Only the bot's editors" in refusal.body["text"]
    assert usage.json() == {
        "text": "To add a page to the articles: `/ask add https://…` (one link, nothing else).",
        "response_type": "ephemeral",
    }
    assert not fake.of("/response/r2")
    assert added.status_code == 200 and adding.body["text"].startswith(f"Adding {url}")
    assert done.body["response_type"] == "ephemeral"  # BOT_SLACK_EPHEMERAL, like answers
    assert TITLE in done.body["text"] and DAY in done.body["text"] and "searchable now" in done.body["text"]
    assert "340 passengers" in quote_texts(answer.body["blocks"])[0]


@pytest.mark.slow
def test_a_refused_address_and_a_server_that_is_not_the_writer_say_why(
    site: Site, fake: FakeSlack, seed_corpus: Path, fake_index: Path, tmp_path: Path
) -> None:
    url = site.page("/ferries/night-route", article_html(TITLE, STORY, date=DAY))
    # Private addresses not allowed (the default): the loopback page is refused by its address.
    with running(fake_index, tmp_path / "d1", fake, **editors(corpus_dir=seed_corpus)) as base:
        assert post(base, shortcut_body(linked(url), EDITOR, ts="22.1"), FORM).status_code == 200
        _, refused = wait_until(lambda: len(got := texts(fake, thread="22.1")) == 2 and got, timeout=60)
    # No BOT_API_KEY: this server is not the writer, and says so before fetching anything.
    settings = editors(corpus_dir=seed_corpus, allow_private_urls=True, api_key=None)
    with running(fake_index, tmp_path / "d2", fake, **settings) as base:
        assert post(base, shortcut_body(linked(url), EDITOR, ts="22.2"), FORM).status_code == 200
        (not_writer,) = wait_until(lambda: texts(fake, thread="22.2"))
        home = event_body({"type": "app_home_opened", "user": EDITOR, "tab": "home", "event_ts": "1.0"}, "EvHome2")
        assert post(base, home).status_code == 200
        (view,) = wait_until(lambda: fake.of("views.publish"))
        assert httpx.post(base + "/articles", json={"url": url}).status_code == 403  # the same rule over HTTP
    assert refused == (
        f"Not added: {url}: 127.0.0.1 resolves to the non-public address 127.0.0.1; "
        "set BOT_ALLOW_PRIVATE_URLS=1 to fetch from private networks"
    )
    assert not_writer.startswith("I can't add links here: This server does not change articles: set BOT_API_KEY")
    assert "/ask add" not in json.dumps(view.body["view"])  # no editor's hint where nothing can be added
    assert [a.title for a in load_corpus(seed_corpus).articles].count(TITLE) == 0


@pytest.mark.slow
def test_without_editors_adding_is_off_and_an_unreadable_channel_is_named(
    site: Site, fake: FakeSlack, seed_corpus: Path, fake_index: Path, tmp_path: Path
) -> None:
    url = site.page("/ferries/night-route", article_html(TITLE, STORY, date=DAY))
    with running(fake_index, tmp_path / "d1", fake, corpus_dir=seed_corpus, api_key=KEY) as base:
        assert post(base, shortcut_body(linked(url), EDITOR, ts="23.1"), FORM).status_code == 200
        (off,) = wait_until(lambda: texts(fake, thread="23.1"))
    # A channel the fake Slack does not know (or the bot is not in): refused, and the reason named.
    settings = editors(corpus_dir=seed_corpus, slack_editors="", slack_editors_channel="CUNKNOWN")
    with running(fake_index, tmp_path / "d2", fake, **settings) as base:
        assert post(base, shortcut_body(linked(url), MEMBER, ts="23.2"), FORM).status_code == 200
        (unreadable,) = wait_until(lambda: texts(fake, thread="23.2"))
    assert off.startswith("Adding links from Slack is off") and "BOT_SLACK_EDITORS" in off
    assert "`channel_not_found`" in unreadable and "<#CUNKNOWN>" in unreadable


def test_over_socket_mode_the_add_shortcut_adds_too(
    site: Site, fake: FakeSlack, seed_corpus: Path, fake_index: Path, tmp_path: Path
) -> None:
    """`bot slack` (no HTTP server) with BOT_API_KEY is the writer: an interactive envelope, through
    the SDK's own Socket Mode client, adds the page like the HTTP app."""
    url = site.page("/ferries/night-route", article_html(TITLE, STORY, date=DAY))
    settings = slack_settings(
        fake_index, tmp_path / "d", fake, **editors(corpus_dir=seed_corpus, allow_private_urls=True)
    )
    service = Service(settings, FakeEmbedder())
    service.load()
    bot = SlackBot(service, token=BOT_TOKEN, signing_secret=None)
    handler = socket_mode_handler(bot, APP_TOKEN)
    acked: list[Any] = []
    setattr(handler.client, "send_socket_mode_response", acked.append)  # noqa: B010 (a fake for one method)
    try:
        payload = json.loads(dict(parse_qsl(shortcut_body(linked(url), EDITOR, ts="24.1")))["payload"])
        envelope = {"type": "interactive", "envelope_id": "env-add", "accepts_response_payload": False}
        handler.client.enqueue_message(json.dumps({**envelope, "payload": payload}))
        (done,) = wait_until(lambda: fake.of("chat.postMessage"), timeout=60)
        assert [r.envelope_id for r in acked] == ["env-add"]
    finally:
        handler.client.close()
        asyncio.run(service.close())
    assert done.body["thread_ts"] == "24.1" and TITLE in done.body["text"] and "searchable now" in done.body["text"]
    assert [a.title for a in load_corpus(seed_corpus).articles].count(TITLE) == 1
