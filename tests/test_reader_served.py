"""The reader on a real `bot serve`: HTTP /ask and a signed Slack mention both answer through it,
on the exported reader (OpenVINO), with the same quotes as the reader on torch in this process."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bot.answer.answering import answer
from bot.answer.asking import Ask
from bot.indexing.versions import open_index
from bot.models.reader import TorchReader
from tests.conftest import served_process, wait_until
from tests.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, event_body, mention, quote_texts, sign

pytestmark = pytest.mark.slow

# Declined without the reader on the published post (its confidence 0.41 < 0.5), answered with it.
HTTP_QUESTION = "Over how many years will the money be invested?"
SLACK_QUESTION = "Since when have OpenAI and NVIDIA worked together?"


def metric(base: str, name: str) -> float:
    """One unlabelled sample of the server's /metrics."""
    for line in httpx.get(base + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


def test_http_and_slack_answer_through_the_reader(seed_index: Path, real_embedder, tmp_path: Path) -> None:
    index = open_index(seed_index)
    torch_reader = TorchReader()
    tops = {
        q: answer(index, real_embedder, Ask(q, 3), reader=torch_reader).quotes[0]
        for q in (HTTP_QUESTION, SLACK_QUESTION)
    }
    expected = {q: top.text for q, top in tops.items()}
    # The span head marks the short answer inside the top quote (the patterns find none here).
    marked = tops[HTTP_QUESTION].answer
    assert marked is not None and marked.text in expected[HTTP_QUESTION]
    with FakeSlack() as fake:
        settings = {
            "BOT_INDEX_DIR": str(seed_index),
            "BOT_DATA_DIR": str(tmp_path / "data"),
            "BOT_READER": "on",
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": fake.api_url,
        }
        with served_process(settings) as base:
            wait_until(lambda: httpx.get(base + "/readyz", timeout=2).status_code == 200, timeout=180)
            assert metric(base, "bot_reader_pairs") == 0

            reply = httpx.post(base + "/ask", json={"question": HTTP_QUESTION, "k": 3}, timeout=60)
            assert reply.status_code == 200, reply.text
            body = reply.json()
            assert body["answered"] is True
            assert body["quotes"][0]["text"] == expected[HTTP_QUESTION]
            assert "over the next four years" in body["quotes"][0]["text"]
            assert body["quotes"][0]["answer"] == marked.model_dump(mode="json")
            read = metric(base, "bot_reader_pairs")
            assert read > 0 and metric(base, "bot_reader_calls") == 1

            event = event_body(mention(SLACK_QUESTION, ts="1737600000.000100"), "EvReader1")
            signed = {"Content-Type": "application/json", **sign(event)}
            assert httpx.post(base + "/slack/events", content=event, headers=signed, timeout=10).status_code == 200
            (call,) = wait_until(lambda: fake.of("chat.postMessage"), timeout=60)
            assert expected[SLACK_QUESTION] in quote_texts(call.body["blocks"])[0]
            assert metric(base, "bot_reader_pairs") > read
