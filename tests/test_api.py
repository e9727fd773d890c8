from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from bot.http.app import create_app
from bot.settings import Settings
from tests.conftest import ROOT, FakeEmbedder, ServerThread, free_port, wait_until


def make_client(index_dir: Path, embedder: FakeEmbedder, **settings: object) -> TestClient:
    app = create_app(Settings(index_dir=index_dir, **settings), embedder=embedder)  # type: ignore[arg-type]
    return TestClient(app)


@pytest.fixture
def client(fake_index: Path, fake_embedder: FakeEmbedder) -> Iterator[TestClient]:
    with make_client(fake_index, fake_embedder) as test_client:
        wait_until(lambda: test_client.get("/readyz").status_code == 200)
        yield test_client


def test_post_ask_returns_the_contract(client: TestClient) -> None:
    response = client.post("/ask", json={"question": "Who will be the chairman of Stargate?", "k": 2})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"question", "answered", "quotes", "message", "took_ms"}
    assert len(body["quotes"]) == 2 and body["took_ms"] > 0
    quote = body["quotes"][0]
    assert {"text", "passage", "start", "end", "score", "article"} <= set(quote)
    assert set(quote["article"]) == {"id", "title", "date", "url", "source"}
    assert quote["text"] in quote["passage"]
    assert quote["article"]["date"] == "2025-01-23"
    scores = [q["score"] for q in body["quotes"]]
    assert scores == sorted(scores, reverse=True)


def test_get_ask_matches_post(client: TestClient) -> None:
    posted = client.post("/ask", json={"question": "Who will chair Stargate?", "k": 3}).json()
    got = client.get("/ask", params={"q": "Who will chair Stargate?", "k": 3}).json()
    assert [q["text"] for q in got["quotes"]] == [q["text"] for q in posted["quotes"]]


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"json": {"question": ""}}, 422, "The question is empty"),
        ({"json": {"question": "   \n\t "}}, 422, "The question is empty"),
        ({"json": {"question": "x" * 1001}}, 422, "limit is 1000"),
        ({"json": {"question": 42}}, 422, "question: Input should be a valid string"),
        ({"json": {"question": "Who?", "k": "three"}}, 422, "k: Input should be a valid integer"),
        ({"json": {"question": "Who?", "k": 0}}, 422, "k: Input should be greater than or equal to 1"),
        ({"json": {"question": "Who?", "k": 21}}, 422, "k: Input should be less than or equal to 20"),
        ({"json": {"k": 3}}, 422, "question: Field required"),
        ({"json": {"question": "Who?", "colour": "red"}}, 422, "colour: Extra inputs are not permitted"),
        ({"json": ["Who?"]}, 422, "Input should be a valid dictionary"),
        ({"json": {"question": "Who?", "since": "last week"}}, 422, "since: Input should be a valid date"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "not valid JSON"),
        ({"content": b"x" * (64 * 1024 + 1), "headers": {"content-type": "application/json"}}, 413, "over 64 KiB"),
    ],
)
def test_bad_input_gets_a_clear_4xx(client: TestClient, kwargs: dict, status: int, message: str) -> None:
    response = client.post("/ask", **kwargs)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_body_limit_applies_when_streamed_without_length(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(80):
            yield b"x" * 1024

    response = client.post("/ask", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_get_ask_validation(client: TestClient) -> None:
    assert client.get("/ask").status_code == 422
    assert (
        "k: Input should be less than or equal to 20" in client.get("/ask", params={"q": "x", "k": 99}).json()["error"]
    )


def test_question_limit_is_a_setting(fake_index: Path, fake_embedder: FakeEmbedder) -> None:
    with make_client(fake_index, fake_embedder, max_question_chars=10) as test_client:
        wait_until(lambda: test_client.get("/readyz").status_code == 200)
        assert "limit is 10" in test_client.post("/ask", json={"question": "Who will chair it?"}).json()["error"]


def test_missing_index_is_503_with_the_reason(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    with make_client(tmp_path / "none", fake_embedder) as test_client:
        wait_until(lambda: "No index" in test_client.get("/readyz").text)
        assert test_client.get("/healthz").json() == {"status": "ok"}
        response = test_client.post("/ask", json={"question": "Who?"})
        assert response.status_code == 503
        assert "run `bot index` first" in response.json()["error"]
        assert response.headers["retry-after"]


def test_index_of_another_model_is_503_with_what_to_run(fake_index: Path) -> None:
    class OtherModel(FakeEmbedder):
        name = "another-model"

    with make_client(fake_index, OtherModel()) as test_client:
        wait_until(
            lambda: (
                test_client.get("/readyz").status_code == 503 and "bot index --full" in test_client.get("/readyz").text
            )
        )


def test_readyz_reports_counts_and_version(client: TestClient) -> None:
    body = client.get("/readyz").json()
    assert body["status"] == "ready" and body["articles"] == 1 and body["passages"] >= 5
    assert body["index_version"] and body["built_at"]


def test_metrics_count_requests_answers_and_index(client: TestClient) -> None:
    client.post("/ask", json={"question": "Who will chair Stargate?"})
    client.post("/ask", json={"question": ""})
    text = client.get("/metrics").text
    assert 'bot_http_requests_total{method="POST",route="/ask",status="200"} 1.0' in text
    assert 'bot_http_requests_total{method="POST",route="/ask",status="422"} 1.0' in text
    assert "bot_http_request_duration_seconds_bucket" in text
    assert re.search(r'bot_answers_total\{answered="(true|false)"\} 1.0', text)
    assert re.search(r"bot_index_passages \d+", text) and "bot_index_age_seconds" in text


def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    made = client.post("/ask", json={"question": ""}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)


def test_api_key_guards_ask_but_not_health(fake_index: Path, fake_embedder: FakeEmbedder) -> None:
    with make_client(fake_index, fake_embedder, api_key="s3cret") as test_client:
        wait_until(lambda: test_client.get("/readyz").status_code == 200)
        assert test_client.post("/ask", json={"question": "Who?"}).status_code == 401
        wrong = test_client.post("/ask", json={"question": "Who?"}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        ok = test_client.post("/ask", json={"question": "Who?"}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert test_client.get("/ask", params={"q": "Who?"}).status_code == 401
        for open_route in ("/healthz", "/readyz", "/metrics"):
            assert test_client.get(open_route).status_code == 200


def test_rate_limit_answers_429_with_retry_after(fake_index: Path, fake_embedder: FakeEmbedder) -> None:
    with make_client(fake_index, fake_embedder, rate_limit="3/minute") as test_client:
        wait_until(lambda: test_client.get("/readyz").status_code == 200)
        codes = [test_client.get("/ask", params={"q": "Who?"}).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = test_client.get("/ask", params={"q": "Who?"})
        assert 0 < int(limited.headers["retry-after"]) <= 61
        assert "Rate limit of 3/minute exceeded" in limited.json()["error"]


class SlowEmbedder(FakeEmbedder):
    """The fake model, taking 100 ms a call whatever the batch: batching shows in the call count."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def encode(self, texts, *, batch_size=64, progress=False):
        self.calls.append(len(texts))
        time.sleep(0.1)
        return super().encode(texts)


@pytest.mark.slow
def test_concurrent_questions_are_encoded_in_batches_over_real_http(fake_index: Path) -> None:
    embedder = SlowEmbedder()
    with ServerThread(create_app(Settings(index_dir=fake_index), embedder=embedder)) as server:
        server.wait_ready()

        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                responses = await asyncio.gather(
                    *(http.post("/ask", json={"question": f"Who chairs project {n}?"}) for n in range(32))
                )
            return [r.status_code for r in responses]

        assert asyncio.run(burst()) == [200] * 32
        # 32 questions, 100 ms per call: one encode each would be 32 calls.
        assert sum(embedder.calls) == 32
        assert len(embedder.calls) <= 6, embedder.calls
        metrics = httpx.get(server.url + "/metrics").text
        assert "bot_encode_questions 32.0" in metrics
        # A repeated question is served from the cache: no new encode call.
        before = len(embedder.calls)
        assert httpx.post(server.url + "/ask", json={"question": "Who chairs project 3?"}).status_code == 200
        assert len(embedder.calls) == before


@pytest.mark.slow
def test_shutdown_finishes_in_flight_requests(fake_index: Path) -> None:
    embedder = SlowEmbedder()
    server = ServerThread(create_app(Settings(index_dir=fake_index), embedder=embedder))
    with server:
        server.wait_ready()
        result: dict[str, int] = {}

        def slow_request() -> None:
            result["status"] = httpx.post(
                server.url + "/ask", json={"question": "A question in flight"}, timeout=30
            ).status_code

        worker = threading.Thread(target=slow_request)
        worker.start()
        wait_until(lambda: embedder.calls, timeout=10, interval=0.005)
        server.server.should_exit = True  # what uvicorn's SIGTERM handler does
        worker.join(timeout=30)
    assert result == {"status": 200}


@pytest.mark.slow
def test_bot_serve_with_the_real_model_and_the_readme_curl(seed_index: Path) -> None:
    port = free_port()
    env = {"BOT_INDEX_DIR": str(seed_index), "BOT_PORT": str(port), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(url + "/healthz", timeout=1).status_code == 200, timeout=30)
        healthy_after = time.monotonic() - started
        wait_until(lambda: httpx.get(url + "/readyz", timeout=2).status_code == 200, timeout=120)
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        curl = next(line for line in readme.splitlines() if line.startswith("curl ") and "/ask" in line)
        output = subprocess.run(
            curl.replace("localhost:8000", f"localhost:{port}"), shell=True, capture_output=True, text=True, timeout=60
        )
        answer = json.loads(output.stdout)
        assert answer["answered"] and "Masayoshi Son" in answer["quotes"][0]["text"]
        assert healthy_after < 5
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete.
    assert process.returncode in (0, -signal.SIGTERM), err
    assert "Application shutdown complete" in err
    assert f"http://localhost:{port}" in out and "curl -s" in out


def test_access_log_is_json_when_asked(
    fake_index: Path, fake_embedder: FakeEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        make_client(fake_index, fake_embedder, log_format="json") as test_client,
        caplog.at_level("INFO", logger="bot.access"),
    ):
        test_client.get("/healthz", headers={"X-Request-ID": "req-1"})
    line = json.loads(next(r.getMessage() for r in caplog.records if r.name == "bot.access"))
    assert line["request_id"] == "req-1" and line["status"] == 200 and line["path"] == "/healthz" and line["ms"] >= 0


def test_date_filters_and_recency_on_ask(seed_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    from bot.indexing.faiss_build import build_index
    from tests.conftest import write_article

    write_article(
        seed_corpus,
        "later.md",
        "Stargate names a new chair",
        "Stargate will have a new chairman in 2026.",
        date="2026-03-01",
    )
    build_index(seed_corpus, tmp_path / "dated-index", fake_embedder)
    with make_client(tmp_path / "dated-index", fake_embedder) as test_client:
        wait_until(lambda: test_client.get("/readyz").status_code == 200)

        def dates(**params: object) -> set[str]:
            body = test_client.post("/ask", json={"question": "Who will chair Stargate?", "k": 5, **params}).json()
            return {q["article"]["date"] for q in body["quotes"]}

        assert dates(since="2026-01-01") == {"2026-03-01"}
        assert dates(until="2025-12-31") == {"2025-01-23"}
        assert dates() == {"2025-01-23", "2026-03-01"}
        empty = test_client.post("/ask", json={"question": "Who will chair Stargate?", "since": "2030-01-01"}).json()
        assert empty["answered"] is False and empty["quotes"] == [] and "date range" in empty["message"]
        got = test_client.get("/ask", params={"q": "Who will chair Stargate?", "since": "2026-01-01", "recent": 30})
        assert got.status_code == 200 and {q["article"]["date"] for q in got.json()["quotes"]} == {"2026-03-01"}
        assert test_client.post("/ask", json={"question": "Who?", "recent": 0}).status_code == 422
        # The day asked prefers the articles dated near it; either article can win.
        for asked_on, first in (("2026-03-02", "2026-03-01"), ("2025-01-20", "2025-01-23")):
            body = test_client.post("/ask", json={"question": "Who will chair Stargate?", "asked_on": asked_on}).json()
            assert body["quotes"][0]["article"]["date"] == first
            got = test_client.get("/ask", params={"q": "Who will chair Stargate?", "asked_on": asked_on})
            assert got.json()["quotes"][0]["article"]["date"] == first
        bad = test_client.post("/ask", json={"question": "Who?", "asked_on": "last week"})
        assert bad.status_code == 422 and "asked_on" in bad.text


def test_rate_limit_is_per_address_whatever_the_headers(fake_index: Path, fake_embedder: FakeEmbedder) -> None:
    with make_client(fake_index, fake_embedder, rate_limit="2/minute") as test_client:
        wait_until(lambda: test_client.get("/readyz").status_code == 200)
        codes = [
            test_client.get("/ask", params={"q": "Who?"}, headers={"Authorization": f"x{n}"}).status_code
            for n in range(3)
        ]
        assert codes == [200, 200, 429]


def test_a_413_still_gets_a_request_id_and_a_metric(client: TestClient) -> None:
    response = client.post(
        "/ask", content=b"x" * (70 * 1024), headers={"content-type": "application/json", "X-Request-ID": "big-1"}
    )
    assert response.status_code == 413 and response.headers["x-request-id"] == "big-1"
    assert 'status="413"' in client.get("/metrics").text


def test_a_jsonl_corpus_serves_and_refuses_changes_clearly(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    from bot.indexing.faiss_build import build_index

    collection = tmp_path / "articles.jsonl"
    collection.write_text(
        json.dumps({"id": "a1", "title": "Stargate", "text": "Masayoshi Son will chair Stargate."}) + "\n",
        encoding="utf-8",
    )
    build_index(collection, tmp_path / "index", fake_embedder)
    with make_client(tmp_path / "index", fake_embedder, corpus_dir=collection, api_key="k") as test_client:
        wait_until(lambda: test_client.get("/readyz").status_code == 200)
        assert (
            test_client.post(
                "/ask", json={"question": "Who will chair Stargate?"}, headers={"Authorization": "Bearer k"}
            ).status_code
            == 200
        )
        refused = test_client.post(
            "/articles", json={"title": "New", "text": "Words."}, headers={"Authorization": "Bearer k"}
        )
        assert refused.status_code == 409 and "is a file" in refused.json()["error"]
