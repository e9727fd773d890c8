"""What a hostile or careless HTTP client sends: every answer is 4xx with {"error": ...}, the rate
limit cannot be dodged with a header or spent on wrong keys, and wrong types are refused."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from bot.http import connections
from bot.http.app import create_app
from bot.observability import ACCEPT_FAILED, Throttle
from bot.settings import Settings
from tests.conftest import FakeEmbedder, ServerThread, served_process, wait_until


@pytest.fixture
def client(fake_index: Path) -> Iterator[TestClient]:
    app = create_app(Settings(index_dir=fake_index), embedder=FakeEmbedder())
    with TestClient(app, raise_server_exceptions=False) as test_client:
        wait_until(lambda: test_client.get("/readyz").status_code == 200)
        yield test_client


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/no/such/route", None, 404),
        ("DELETE", "/ask", None, 405),
        ("PUT", "/articles", None, 405),
        ("POST", "/ask", b'{"question": "Who \xff\xfe chairs it?"}', 400),
        ("POST", "/ask", b'{"question": ' + b"[" * 100_00 + b"]" * 100_00 + b"}", 400),
    ],
    ids=["404", "405-ask", "405-articles", "invalid-utf8", "deeply-nested"],
)
def test_every_error_body_has_the_documented_error_shape(
    client: TestClient, method: str, path: str, body: bytes | None, status: int
) -> None:
    response = client.request(method, path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert isinstance(response.json().get("error"), str) and response.json()["error"], response.json()


@pytest.mark.parametrize(
    "body",
    [
        {"question": "Who will chair Stargate?", "k": True},
        {"question": "Who will chair Stargate?", "k": "3"},
        {"question": "Who will chair Stargate?", "k": 2.5},  # 2.0 is JSON Schema's integer 2: accepted
        {"question": "Who will chair Stargate?", "recent": "30"},
        {"question": "Who will chair Stargate?", "recent": False},
        {"question": 42},
    ],
)
def test_a_wrong_type_in_the_ask_body_is_a_422(client: TestClient, body: dict[str, object]) -> None:
    response = client.post("/ask", json=body)
    assert response.status_code == 422, response.text
    assert "error" in response.json()


def test_an_integral_number_for_k_is_the_integer_the_schema_allows(client: TestClient) -> None:
    response = client.post("/ask", json={"question": "Who will chair Stargate?", "k": 2.0})
    assert response.status_code == 200 and len(response.json()["quotes"]) == 2


def test_the_get_form_of_ask_still_reads_numbers_from_the_query(client: TestClient) -> None:
    assert client.get("/ask", params={"q": "Who will chair Stargate?", "k": "2", "recent": "30"}).status_code == 200


def test_wrong_api_keys_count_against_the_rate_limit(fake_index: Path) -> None:
    settings = Settings(index_dir=fake_index, api_key="s3cret", rate_limit="3/minute")
    with TestClient(create_app(settings, embedder=FakeEmbedder())) as client:
        wrong = {"Authorization": "Bearer guess"}
        statuses = [client.post("/ask", json={"question": "Who?"}, headers=wrong).status_code for _ in range(5)]
        assert statuses == [401, 401, 401, 429, 429]
        deletes = client.delete("/articles/x", headers=wrong)
        assert deletes.status_code == 429 and "Retry-After" in deletes.headers


def test_x_forwarded_for_from_a_local_process_does_not_buy_a_fresh_rate_limit_bucket(fake_index: Path) -> None:
    with served_process({"BOT_INDEX_DIR": str(fake_index), "BOT_RATE_LIMIT": "2/minute"}) as url:
        wait_until(lambda: httpx.get(url + "/healthz", timeout=1).status_code == 200, timeout=60)
        # The limit is checked before the model is needed: no need to wait for readiness.
        statuses = [
            httpx.get(url + "/ask", params={"q": "Who?"}, headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
            for n in range(4)
        ]
        assert statuses[2:] == [429, 429], statuses


@pytest.mark.parametrize("asked_on", ["0001-01-01", "0001-01-15", "9999-12-20", "9999-12-31"])
def test_a_day_asked_near_the_ends_of_the_calendar_is_answered_by_both_forms_of_ask(
    client: TestClient, asked_on: str
) -> None:
    # Three weeks either side of the day asked once overflowed `date` here: a bare 500.
    posted = client.post("/ask", json={"question": "Who will chair Stargate?", "asked_on": asked_on})
    got = client.get("/ask", params={"q": "Who will chair Stargate?", "asked_on": asked_on})
    for response in (posted, got):
        assert response.status_code == 200, response.text
        assert response.json()["quotes"]


@pytest.mark.parametrize("field", ["title", "text"])
def test_an_article_with_a_lone_surrogate_is_a_422_naming_the_field_and_nothing_is_written(
    seed_corpus: Path, fake_index: Path, field: str
) -> None:
    settings = Settings(corpus_dir=seed_corpus, index_dir=fake_index, api_key="s3cret")
    before = sorted(p.name for p in seed_corpus.iterdir())
    fields = {"title": "Tessary quay reopens", "text": "The quay of Tessary reopened after a zebra-striped refit."}
    # json.dumps escapes it as \ud800: valid JSON, but not text that can be written as UTF-8.
    body = json.dumps(fields | {field: fields[field] + " \ud800"})
    with TestClient(create_app(settings, embedder=FakeEmbedder()), raise_server_exceptions=False) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        response = client.post(
            "/articles",
            content=body,
            headers={"Authorization": "Bearer s3cret", "Content-Type": "application/json"},
        )
        assert response.status_code == 422, response.text
        assert f"'{field}' is not valid Unicode" in response.json()["error"]
        assert len(client.get("/articles").json()["articles"]) == len(before)
    assert sorted(p.name for p in seed_corpus.iterdir()) == before


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (AssertionError at `timeout`)."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        raise AssertionError(f"still open after {timeout} s; received {received!r}") from None
    return received


def test_a_client_that_stops_mid_request_gets_a_408_in_time_and_others_are_answered(
    fake_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connections, "READ_SECONDS", 1.0)
    app = create_app(Settings(index_dir=fake_index), embedder=FakeEmbedder())
    with ServerThread(app, **connections.connection_options()) as server:
        server.wait_ready()
        address = ("127.0.0.1", server.port)
        started = time.monotonic()
        half_headers = socket.create_connection(address)
        half_headers.sendall(b"POST /ask HTTP/1.1\r\nHost: x\r\n")
        half_body = socket.create_connection(address)
        half_body.sendall(
            b"POST /ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        # A kept-alive connection: the first request answered, the next one stops halfway.
        kept = socket.create_connection(address)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n")
        asked = httpx.post(server.url + "/ask", json={"question": "Who will chair Stargate?"}, timeout=10)
        assert asked.status_code == 200  # meanwhile, a whole request is answered as usual
        replies = [read_until_closed(s) for s in (half_headers, half_body, kept)]
        assert time.monotonic() - started < 8
        for reply in replies:
            assert b"HTTP/1.1 408 " in reply and b'{"error": "The request' in reply, reply
        assert replies[2].startswith(b"HTTP/1.1 200 ")
        for sock in (half_headers, half_body, kept):
            sock.close()


def test_connections_past_the_cap_get_a_503_and_are_closed_at_once(fake_index: Path) -> None:
    app = create_app(Settings(index_dir=fake_index), embedder=FakeEmbedder())
    with ServerThread(app, **(connections.connection_options() | {"limit_concurrency": 8})) as server:
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(8)]
        extra = socket.create_connection(("127.0.0.1", server.port))
        reply = read_until_closed(extra)  # at once: the idle ones would hold it for READ_SECONDS
        assert reply.startswith(b"HTTP/1.1 503 ") and b"too many open connections" in reply, reply
        for sock in [*idle, extra]:
            sock.close()
        wait_until(lambda: httpx.get(server.url + "/healthz", timeout=2).status_code == 200, timeout=10)


def test_the_accept_loops_failures_are_logged_once_a_minute_with_a_count() -> None:
    now = [0.0]
    throttle = Throttle(ACCEPT_FAILED, 60.0, clock=lambda: now[0])

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, message, None, None)

    flood = [throttle.filter(record(f"{ACCEPT_FAILED}\nsocket: <fd={n}>")) for n in range(10_000)]
    assert flood.count(True) == 1 and flood[0]
    assert throttle.filter(record("Task exception was never retrieved"))  # anything else passes
    now[0] = 61.0
    later = record(f"{ACCEPT_FAILED}\nsocket: <fd=1>")
    assert throttle.filter(later) and "(9999 more like it in the last 60 s were not logged)" in later.getMessage()
