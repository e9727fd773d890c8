"""/slack/events against what anyone on the internet can send, signed or not: 4xx, never 5xx, and
nothing of the request's secrets (or forged lines) in the log, whichever logger writes it."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import httpx
import numpy as np
import pytest

from bot.observability import configure_logging
from bot.slack.blocks import VOTE_UP
from tests.conftest import FakeEmbedder, wait_until
from tests.fake_slack import FakeSlack, action_body, command_body, event_body, mention, sign
from tests.test_slack_app import running, slack_index  # noqa: F401 (a module-scoped fixture)
from tests.test_slack_shortcut import shortcut_body

FORGED = "2026-01-01 00:00:00,000 INFO bot.http.app: admin logged in"
LEGACY_TOKEN = "legacyVerificationTok3n"
HOOK = "https://hooks.slack.com/commands/T0001/1234/SecretHookPath"


@pytest.fixture
def url(slack_index: Path, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    with FakeSlack() as fake, running(slack_index, tmp_path / "data", fake) as base:
        yield base


@pytest.fixture
def root_logging() -> Iterator[None]:
    """configure_logging replaces the root handlers: put the test runner's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def post(base: str, body: str, content_type: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(base + "/slack/events", content=body, headers={"Content-Type": content_type, **headers})


MALFORMED = [
    ("not-json", "{nope", "application/json"),
    ("json-array", "[1, 2]", "application/json"),
    ("json-string", '"hello"', "application/json"),
    ("json-number", "7", "application/json"),
    ("form-payload-not-json", "payload=%7Bnope", "application/x-www-form-urlencoded"),
    ("form-payload-array", "payload=%5B1%5D", "application/x-www-form-urlencoded"),
    ("event-null", json.dumps({"type": "event_callback", "event": None, "event_id": "Ev1"}), "application/json"),
    ("event-list", json.dumps({"type": "event_callback", "event": [1], "event_id": "Ev2"}), "application/json"),
    ("deep", "[" * 5000 + "]" * 5000, "application/json"),
    ("invalid-utf8-ish", "\udcff{}", "application/json"),
]


@pytest.mark.parametrize(("name", "body", "content_type"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_slack_request_is_a_4xx_signed_or_not(url: str, name: str, body: str, content_type: str) -> None:
    body = body.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    assert post(url, body, content_type, sign(body)).status_code == 400
    assert post(url, body, content_type, {}).status_code == 401


@pytest.mark.parametrize("timestamp", ["abc", "", "1e9", "-5", "12345678901234567890123"])
def test_a_non_numeric_or_absurd_slack_timestamp_is_a_401(url: str, timestamp: str) -> None:
    body = json.dumps({"type": "event_callback", "event": {"type": "app_mention"}})
    headers = {**sign(body), "X-Slack-Request-Timestamp": timestamp}
    assert post(url, body, "application/json", headers).status_code == 401


def test_slack_request_bodies_never_reach_the_log_and_cannot_forge_a_line(
    url: str, root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("text", "DEBUG")
    body = urlencode({"token": LEGACY_TOKEN, "response_url": HOOK, "text": f"hi\n{FORGED}", "command": "/ask"})
    content_type = "application/x-www-form-urlencoded"
    assert (
        post(url, body, content_type, {"X-Slack-Signature": "v0=00", "X-Slack-Request-Timestamp": "1"}).status_code
        == 401
    )
    # The same through a third-party logger, as slack_bolt writes a body that fails verification.
    logging.getLogger("slack_bolt.RequestVerification").info("Invalid request signature detected (body: %s)", body)
    logging.getLogger("some.library").warning("payload %s", json.dumps({"token": LEGACY_TOKEN, "response_url": HOOK}))
    logging.getLogger("some.library").warning("decoded: %s", f"hi\n{FORGED}")
    logging.getLogger("bot.articles.ingest").warning("cannot fetch %s", "http://editor:hunter22@news.example/feed")
    err = capsys.readouterr().err
    assert "hunter22" not in err
    assert "Invalid request signature detected" in err and "(redacted)" in err
    assert LEGACY_TOKEN not in err and "SecretHookPath" not in err
    assert not any(line.startswith(FORGED) for line in err.splitlines()), err


def test_logs_go_to_the_stderr_of_the_moment(root_logging: None) -> None:
    """A handler bound to the stderr of its making wrote into a closed file once a test runner had
    swapped that stderr out (a later test's server then printed "I/O operation on closed file")."""
    configure_logging("text", "INFO")
    first, second = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(first):
        logging.getLogger("bot.http").warning("to Quillfield")
    first.close()
    with contextlib.redirect_stderr(second):
        logging.getLogger("bot.http").warning("to Brindlewood")
    assert "to Brindlewood" in second.getvalue()


def test_json_logs_keep_the_traceback(root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "INFO")
    try:
        raise ValueError("the Quillfield feed broke")
    except ValueError:
        logging.getLogger("bot.slack").exception("Failed to run a listener")
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["message"] == "Failed to run a listener"
    assert "Traceback" in record["exc_info"] and "ValueError: the Quillfield feed broke" in record["exc_info"]


class TokenizerLikeEmbedder(FakeEmbedder):
    """The fake model, a little slow (so concurrent questions share batches) and refusing, as the
    real tokenizer does, a batch holding text that is not valid Unicode."""

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        time.sleep(0.005)
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise TypeError("TextEncodeInput must be Union[TextInputSequence, ...]") from None
        return super().encode(texts)


def test_a_lone_surrogate_in_a_signed_slack_question_fails_no_http_question_beside_it(
    slack_index: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    with FakeSlack() as fake, running(slack_index, tmp_path / "data", fake, TokenizerLikeEmbedder()) as base:

        def ask(n: int) -> int:
            question = {"question": f"Who will chair Stargate in round {n}?"}  # distinct: no cached vectors
            return httpx.post(base + "/ask", json=question, timeout=60).status_code

        def poison(n: int) -> int:
            # json.dumps writes the surrogate as the escape \ud800: a body Slack could sign.
            body = event_body(mention("who \ud800 chairs Stargate?", ts=f"1700001{n:03d}.000100"), f"EvSur{n}")
            return post(base, body, "application/json", sign(body)).status_code

        with ThreadPoolExecutor(max_workers=20) as pool:
            futures = []
            for round_ in range(5):
                futures += [pool.submit(ask, round_ * 16 + n) for n in range(16)]
                futures += [pool.submit(poison, round_ * 4 + n) for n in range(4)]
            statuses = Counter(f.result() for f in futures)
        assert statuses == Counter({200: 100}), statuses
        replies = wait_until(lambda: (found := fake.of("chat.postEphemeral")) and len(found) == 20 and found)
        assert all("not text (a lone surrogate" in r.body["text"] for r in replies), replies[0].body
        assert not fake.of("chat.postMessage")


def test_a_signed_command_or_interaction_sent_again_is_answered_once(
    slack_index: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    form = "application/x-www-form-urlencoded"
    with FakeSlack() as fake, running(slack_index, tmp_path / "data", fake) as base:
        asked = event_body(mention("Who will chair Stargate?", ts="1700002000.000100"), "EvReplay")
        assert post(base, asked, "application/json", sign(asked)).status_code == 200
        (shown,) = wait_until(lambda: fake.of("chat.postMessage"))
        answer_id = shown.body["blocks"][-1]["elements"][0]["value"]
        captured = {
            "/ask": command_body("Who will chair Stargate?", fake.response_url("cmd")),
            "block_actions": action_body(VOTE_UP, answer_id, fake.response_url("vote"), user="UVOTER01"),
            "message_action": shortcut_body("Masayoshi Son is said to chair Stargate.", fake.response_url("sc")),
        }
        for body in captured.values():
            headers = sign(body)  # one signature, within its five minutes: sent as captured, three times
            assert [post(base, body, form, headers).status_code for _ in range(3)] == [200, 200, 200]
        wait_until(lambda: fake.of("/response/cmd") and fake.of("/response/vote") and fake.of("chat.postEphemeral"))
        metrics = httpx.get(base + "/metrics").text
        # Each repeat was dropped before its listener ran: the one answer above is all there is.
        for kind in captured:
            assert f'bot_slack_deliveries_total{{event="{kind}",outcome="duplicate"}} 2.0' in metrics, kind
            assert f'bot_slack_deliveries_total{{event="{kind}",outcome="taken"}} 1.0' in metrics, kind
        assert len(fake.of("/response/cmd")) == len(fake.of("/response/vote")) == 1
        assert len(fake.of("chat.postEphemeral")) == 1
