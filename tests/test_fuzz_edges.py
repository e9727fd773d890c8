"""Fuzz the routes that take outside input beyond /ask (see test_api_schema.py): /slack/events,
signed and unsigned, and POST/DELETE /articles keep 5xx out whatever arrives (hypothesis; bounded
in examples so the suite stays fast)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.http.app import create_app
from bot.indexing.faiss_build import build_index
from bot.settings import Settings
from tests.conftest import SEED_CORPUS, FakeEmbedder, ServerThread, write_article
from tests.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, sign

KEY = {"Authorization": "Bearer s3cret"}
FUZZ = settings(
    max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
slack_keys = st.sampled_from(["type", "event", "event_id", "challenge", "token", "team_id", "api_app_id", "payload"])
slack_like = st.dictionaries(slack_keys, json_values, max_size=5) | st.fixed_dictionaries(
    {
        "type": st.sampled_from(["event_callback", "url_verification", "block_actions", "view_submission"]),
        "event": st.none()
        | json_values
        | st.dictionaries(st.sampled_from(["type", "user", "channel", "ts", "text"]), json_values),
        "event_id": json_values,
    }
)


@st.composite
def slack_requests(draw: st.DrawFn) -> tuple[str, str]:
    kind = draw(st.sampled_from(["json", "raw", "form", "form-payload"]))
    if kind == "json":
        return json.dumps(draw(slack_like | json_values)), "application/json"
    if kind == "raw":
        return draw(st.text(max_size=200)), draw(st.sampled_from(["application/json", "text/plain", ""]))
    if kind == "form":
        fields = draw(
            st.dictionaries(
                st.sampled_from(["command", "text", "response_url", "user_id", "channel_id", "token"]),
                st.text(max_size=30),
            )
        )
        return urlencode(fields), "application/x-www-form-urlencoded"
    payload = draw(st.text(max_size=60) | json_values.map(json.dumps) | slack_like.map(json.dumps))
    return urlencode({"payload": payload}), "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("fuzz")
    corpus = root / "corpus"
    shutil.copytree(SEED_CORPUS, corpus)
    write_article(corpus, "ferry.md", "Quillfield ferry", "The ferry of Quillfield runs twice a day.")
    build_index(corpus, root / "index", FakeEmbedder())
    with FakeSlack() as fake:
        values = {
            "corpus_dir": corpus,
            "index_dir": root / "index",
            "data_dir": root / "data",
            "api_key": "s3cret",
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": fake.api_url,
        }
        with ServerThread(create_app(Settings(**values), embedder=FakeEmbedder())) as running:  # type: ignore[arg-type]
            running.wait_ready()
            yield running


def test_slack_events_fuzz_finds_no_server_error(server: ServerThread) -> None:
    header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)

    @FUZZ
    @given(request=slack_requests(), signed=st.booleans(), timestamp=st.none() | header_text)
    def run(request: tuple[str, str], signed: bool, timestamp: str | None) -> None:
        body, content_type = request
        headers = {"Content-Type": content_type, **(sign(body) if signed else {})}
        if timestamp is not None:
            headers["X-Slack-Request-Timestamp"] = timestamp
        response = httpx.post(server.url + "/slack/events", content=body.encode(), headers=headers, timeout=30)
        assert response.status_code < 500, (response.status_code, response.text, body)

    run()


urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["http", "https", "ftp", "HTTP", ""]),
    st.sampled_from(["127.0.0.1", "[::1", "[::1]", "0.0.0.0", "[fe80::1%25eth0]", "169.254.169.254", "", "user@"]),
    st.sampled_from(["", ":", ":99999", ":0", ":-1", ":80", ":http", ":8080"]),
    st.text(max_size=10).map(lambda t: "/" + quote(t, safe="")),
) | st.text(max_size=30)
article_bodies = st.fixed_dictionaries(
    {},
    optional={
        "title": st.none() | st.text(max_size=30) | json_values,
        "text": st.none() | st.text(max_size=80) | json_values,
        "date": st.none() | st.text(max_size=12) | st.dates().map(str) | json_values,
        "url": st.none() | urls | json_values,
        "source": st.none() | st.text(max_size=10),
        "author": st.none() | st.text(max_size=10),
        "extra": json_values,
    },
)


def test_articles_fuzz_finds_no_server_error(server: ServerThread) -> None:
    @settings(FUZZ, max_examples=40)
    @given(
        body=st.fixed_dictionaries({"url": urls}) | article_bodies | json_values,
        article_id=st.text(min_size=1, max_size=20),
    )
    def run(body: object, article_id: str) -> None:
        response = httpx.post(server.url + "/articles", json=body, headers=KEY, timeout=60)
        assert response.status_code < 500 or response.status_code == 503, (response.status_code, response.text)
        assert response.status_code != 503, response.text
        gone = httpx.delete(f"{server.url}/articles/{quote(article_id, safe='')}", headers=KEY, timeout=60)
        assert gone.status_code < 500, (gone.status_code, gone.text)

    run()
