"""The "Ask the articles" message shortcut: really signed interaction payloads, answered in the
message's thread through the fake Slack; and how a long message is cut to the question limit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml

from bot.answer.claims import MAX_CLAIMS, claims, cut
from bot.slack.app import MESSAGE_SHORTCUT
from bot.slack.blocks import SHARE
from tests.conftest import ROOT, wait_until
from tests.fake_slack import TEAM, FakeSlack, action_body, quote_texts, trigger_id
from tests.test_slack_app import post, running

CLAIM = (
    "Heard in the corridor: SoftBank will be the lead partner with the financial responsibility. "
    "Masayoshi Son is said to be the chairman."
)


def shortcut_body(text: str, response_url: str, *, ts: str = "9.1", thread_ts: str | None = None) -> str:
    message: dict[str, Any] = {"type": "message", "user": "UWRITER1", "ts": ts, "text": text}
    if thread_ts:
        message["thread_ts"] = thread_ts
    payload = {
        "type": "message_action",
        "callback_id": MESSAGE_SHORTCUT,
        "trigger_id": trigger_id(),
        "team": {"id": TEAM},
        "user": {"id": "UREADER1", "team_id": TEAM},
        "channel": {"id": "C0000001", "name": "general"},
        "message_ts": ts,
        "message": message,
        "response_url": response_url,
        "api_app_id": "A0000001",
    }
    return urlencode({"payload": json.dumps(payload)})


def test_the_manifest_declares_the_message_shortcut() -> None:
    manifest = yaml.safe_load((ROOT / "bot" / "slack" / "manifest.yaml").read_text(encoding="utf-8"))
    (shortcut,) = [s for s in manifest["features"]["shortcuts"] if s["callback_id"] == MESSAGE_SHORTCUT]
    assert shortcut["type"] == "message" and shortcut["name"] == "Ask the articles"
    assert len(shortcut["description"]) <= 150  # Slack's limit


@pytest.mark.slow
def test_the_shortcut_answers_privately_in_the_messages_thread_and_share_posts_it_there(
    seed_index: Path, real_embedder: Any, tmp_path: Path
) -> None:
    form = "application/x-www-form-urlencoded"
    with FakeSlack() as fake, running(seed_index, tmp_path / "data", fake, embedder=real_embedder) as base:
        assert post(base, shortcut_body(CLAIM, fake.response_url("s1")), form).status_code == 200
        (shown,) = wait_until(lambda: fake.of("chat.postEphemeral"))
        answer_id = shown.body["blocks"][-1]["elements"][2]["value"]
        share = action_body(SHARE, answer_id, fake.response_url("share"), user="UREADER1")
        assert post(base, share, form).status_code == 200
        (shared,) = wait_until(lambda: fake.of("chat.postMessage"))
        wait_until(lambda: fake.of("/response/share"))
        # On a message inside a thread, the answer goes to that thread.
        claim = "Stargate will invest five hundred billion dollars."
        inner = shortcut_body(claim, fake.response_url("s2"), ts="9.5", thread_ts="9.0")
        assert post(base, inner, form).status_code == 200
        both = wait_until(lambda: len(fake.of("chat.postEphemeral")) == 2 and fake.of("chat.postEphemeral"))
        assert post(base, shortcut_body("  ", fake.response_url("s3"), ts="9.7"), form).status_code == 200
        empty = wait_until(lambda: len(fake.of("chat.postEphemeral")) == 3 and fake.of("chat.postEphemeral"))[2]
        assert not fake.rejected
    assert shown.body["channel"] == "C0000001" and shown.body["thread_ts"] == "9.1"
    assert shown.body["user"] == "UREADER1"  # only the one who asked sees it
    quotes = "\n".join(quote_texts(shown.body["blocks"]))
    # The quotes bear on both claims: the financial responsibility and the chairman.
    assert "SoftBank taking on financial responsibility" in quotes and "will be the chairman" in quotes
    assert shared.body["channel"] == "C0000001" and shared.body["thread_ts"] == "9.1"
    assert "Shared by <@UREADER1>" in json.dumps(shared.body["blocks"])
    assert fake.of("/response/share")[0].body.get("delete_original") in (True, "true")
    assert both[1].body["thread_ts"] == "9.0"
    assert "US$500 B" in "\n".join(quote_texts(both[1].body["blocks"]))
    assert "no text to ask the articles about" in empty.body["text"] and empty.body["thread_ts"] == "9.7"


def test_a_long_message_is_cut_at_a_sentence_or_word_boundary() -> None:
    sentences = [f"Sentence number {n} says the Vellin tram line will cost a great deal of money." for n in range(40)]
    long = " ".join(sentences)
    short = cut(long, 1000)
    assert len(short) <= 1000 and short.endswith("money.") and long.startswith(short)
    one_run_on = "word " * 400
    cut_words = cut(one_run_on, 1000)
    assert len(cut_words) <= 1000 and cut_words.endswith("word…")
    assert cut("  A   short   one. ", 1000) == "A short one."
    assert len(claims(long)) == MAX_CLAIMS
    assert claims("Wow. Stargate will invest five hundred billion.") == ["Stargate will invest five hundred billion."]
