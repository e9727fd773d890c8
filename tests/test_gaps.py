"""What the articles miss: declined and 👎 questions recorded by HTTP (without who asked) and
Slack, counted in /metrics per surface, and listed grouped by `bot gaps`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.errors import BotError
from bot.quality.gaps import DECLINED_FILE, DeclinedLog, Miss, group, parse_since
from bot.slack.blocks import VOTE_DOWN
from tests.conftest import wait_until
from tests.fake_slack import FakeSlack, action_body, event_body, mention
from tests.test_cli import bot
from tests.test_slack_app import post, running

TRAM = ["When will the Saltmarsh tram line open?", "When does the Saltmarsh tram start running?"]
TRAM_COST = "How much will the Saltmarsh tram cost?"
CAPITAL = ["What is the capital of Australia?", "Which city is the capital of Australia?"]


def test_near_duplicates_are_grouped_and_other_questions_are_not(real_embedder: Any) -> None:
    now = time.time()
    misses = [
        Miss(TRAM[0], now - 50, "http", "declined"),
        Miss(TRAM[1], now - 40, "slack", "declined", "a1"),
        Miss(TRAM[0], now - 30, "slack", "down", "a1"),
        Miss(TRAM_COST, now - 20, "http", "declined"),
        Miss(CAPITAL[0], now - 10, "http", "declined"),
        Miss(CAPITAL[1], now, "slack", "down"),
    ]
    gaps = group(misses, real_embedder.encode)
    # Most asked first; a group is named by its most asked wording (ties: alphabetically).
    assert [(g.question, g.count) for g in gaps] == [(TRAM[0], 3), (CAPITAL[0], 2), (TRAM_COST, 1)]
    tram = gaps[0]
    assert set(tram.questions) == set(TRAM)
    assert tram.reasons == {"declined": 2, "down": 1} and tram.surfaces == {"http": 1, "slack": 2}
    assert tram.nearest_article == {"id": "a1", "title": None}
    assert gaps[1].last_asked == time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now))


def test_since_must_be_a_date() -> None:
    assert parse_since("2025-01-23") == 1737590400.0
    with pytest.raises(BotError, match="not an ISO date"):
        parse_since("last week")


@pytest.mark.slow
def test_declined_questions_are_recorded_counted_and_listed_by_bot_gaps(
    seed_index: Path, real_embedder: Any, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with FakeSlack() as fake, running(seed_index, data, fake, embedder=real_embedder) as base:
        for question in (CAPITAL[0], CAPITAL[1], "Who will chair Stargate?"):
            assert httpx.post(base + "/ask", json={"question": question}, headers={"X-Forwarded-For": "10.1.2.3"})
        assert post(base, event_body(mention(CAPITAL[0], ts="7.1", user="UPERSON1"), "EvG1")).status_code == 200
        assert post(base, event_body(mention("Who will chair Stargate?", ts="7.2"), "EvG2")).status_code == 200
        calls = wait_until(lambda: len(fake.of("chat.postMessage")) >= 2 and fake.of("chat.postMessage"))
        chair = next(c for c in calls if "Masayoshi" in c.body["text"])
        vote = chair.body["blocks"][-1]["elements"][1]["value"]
        body = action_body(VOTE_DOWN, vote, fake.response_url("down1"), user="UVOTER01")
        assert post(base, body, "application/x-www-form-urlencoded").status_code == 200
        wait_until(lambda: fake.of("/response/down1"))
        metrics = httpx.get(base + "/metrics").text
    assert 'bot_declined_answers_total{surface="http"} 2.0' in metrics
    assert 'bot_declined_answers_total{surface="slack"} 1.0' in metrics
    # HTTP's record: the questions, no address, no user.
    recorded = (data / DECLINED_FILE).read_text(encoding="utf-8")
    assert [json.loads(line)["question"] for line in recorded.splitlines()] == CAPITAL
    assert "10.1.2.3" not in recorded and "127.0.0.1" not in recorded and "UPERSON1" not in recorded
    assert len(DeclinedLog(data).misses(since=time.time() + 60)) == 0

    listed = bot("gaps", "--json", "--data", str(data), "--index", str(seed_index))
    assert listed.returncode == 0, listed.stderr
    gaps = json.loads(listed.stdout)
    assert [(g["count"], g["reasons"]) for g in gaps] == [(3, {"declined": 3}), (1, {"down": 1})]
    assert set(gaps[0]["questions"]) == set(CAPITAL) and gaps[0]["surfaces"] == {"http": 2, "slack": 1}
    assert gaps[0]["answered_now"] is False and gaps[1]["answered_now"] is True
    assert gaps[1]["nearest_article"]["title"] == "OpenAI, Softbank launch Stargate Project"
    assert "UPERSON1" not in listed.stdout and "UVOTER01" not in listed.stdout
    human = bot("gaps", "--data", str(data), "--index", str(seed_index))
    assert "3× “" in human.stdout and "nearest article: OpenAI, Softbank launch Stargate Project" in human.stdout
    later = bot("gaps", "--since", "2999-01-01", "--data", str(data))
    assert later.returncode == 0 and "No declined or 👎 questions" in later.stdout
    assert bot("gaps", "--since", "soon", "--data", str(data)).returncode == 1
