"""Follow-up questions: the rules that decide whether a question leans on earlier ones, and the
same follow-up answered alike in a Slack thread (real signatures, fake Slack on loopback) and over
`POST /ask` with `history`, with the real model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.answer.conversation import MAX_HISTORY, Turn, dependence, read, understand, validate_history
from bot.errors import QuestionError
from bot.http.app import create_app
from bot.quality.evaluation import cached_index
from bot.quality.followups import evaluate_followups, load_followups
from bot.settings import Settings
from tests.conftest import ROOT, SEED_CORPUS, ServerThread, wait_until
from tests.fake_slack import FakeSlack, event_body, mention, quote_texts
from tests.test_slack_app import post, running

FIRST = "What did Microsoft say about its partnership with OpenAI?"
FOLLOW_UP = "When did it begin?"
FOLLOWUPS = ROOT / "tests" / "data" / "followups.jsonl"
FOLLOWUP_CORPUS = ROOT / "tests" / "data" / "followup-corpus"


@pytest.mark.parametrize(
    ("question", "reason"),
    [
        ("When did it begin?", "pronoun"),
        ("Who chairs it?", "pronoun"),
        ("How much will they invest in Stargate?", "pronoun"),  # "they" before any name
        ("What is this deal worth?", "pronoun"),
        ("Why did he resign?", "pronoun"),
        ("What about Oracle?", "ellipsis"),
        ("and Microsoft?", "ellipsis"),
        ("Why?", "short"),
        ("How much?", "short"),
        ("Over how many years?", "short"),
        ("Who will chair Stargate?", None),
        (FIRST, None),  # "its" follows the name it stands for
        ("Is it true that OpenAI and NVIDIA have worked together since 2016?", None),
        ("Who said that the project would create jobs in Texas?", None),  # "that" is a conjunction
        ("Which industry is expected to benefit from the new data centres?", None),
    ],
)
def test_which_questions_lean_on_earlier_ones(question: str, reason: str | None) -> None:
    assert dependence(question) == reason


def test_a_follow_up_is_read_with_the_earlier_topic_and_a_new_name_takes_the_old_ones_place() -> None:
    first = read(FIRST, None)
    assert first.context is None
    follow = read(FOLLOW_UP, first)
    assert follow.context == "When did it begin? (about Microsoft, partnership, OpenAI)"
    assert read("And Oracle?", first).context == "What did Oracle say about its partnership with OpenAI?"
    assert read("Who will chair Stargate?", first).context is None
    # A chain keeps the topic of the question it started from.
    assert "Microsoft" in (read("Why?", follow).context or "")


def test_the_earlier_article_comes_from_the_turn_or_from_answering_it_again() -> None:
    asked: list[str] = []

    def answered_article() -> str | None:
        asked.append("asked")
        return None

    history = [Turn("Who will chair Stargate?", "stargate")]
    assert understand("How much will it invest?", history, answered_article).prefer_article == "stargate"
    assert not asked
    reading = understand("How much will it invest?", [Turn("Who will chair Stargate?")], lambda: "found")
    assert reading.prefer_article == "found"
    # A question that stands alone never needs the earlier article.
    assert understand("Who is the mayor of Vellin?", [Turn("x y z")], answered_article).reason is None
    assert not asked


def test_history_is_validated_like_questions() -> None:
    assert validate_history(None, 100) == []
    assert validate_history(["  Who   chairs it? "], 100) == ["Who chairs it?"]
    with pytest.raises(QuestionError, match="limit is 10"):
        validate_history(["q"] * (MAX_HISTORY + 1), 100)
    with pytest.raises(QuestionError, match=r"history\[1\] is empty"):
        validate_history(["q", " "], 100)
    with pytest.raises(QuestionError, match=r"history\[0\] is 12 characters long; the limit is 10"):
        validate_history(["x" * 12], 10)
    with pytest.raises(QuestionError, match="must be a list"):
        validate_history("Who chairs it?", 100)


@pytest.mark.slow
def test_the_follow_up_set_is_answered_and_stand_alone_questions_are_untouched(
    real_embedder: Any, tmp_path: Path
) -> None:
    items = load_followups(FOLLOWUPS)
    assert len(items) >= 30 and sum(not i.standalone for i in items) >= 20 and sum(i.standalone for i in items) >= 10
    index = cached_index([SEED_CORPUS, FOLLOWUP_CORPUS], real_embedder, tmp_path / "cache")
    report, rows = evaluate_followups(index, real_embedder, items)
    assert report.followups_right_with_history is not None and report.followups_right_with_history >= 0.8, report
    assert report.standalone_unchanged_by_history is not None and report.standalone_unchanged_by_history >= 0.95
    # Following the conversation is what gets them right: alone, the same follow-ups score lower.
    assert report.followups_right_without_history is not None
    assert report.followups_right_with_history > report.followups_right_without_history
    assert all(r["context"] is None for r in rows if r["standalone"])


def _top(base: str, question: str, history: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"question": question, "k": 3}
    if history is not None:
        body["history"] = history
    response = httpx.post(base + "/ask", json=body, timeout=30)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.slow
def test_a_follow_up_in_a_slack_thread_and_over_http_gets_the_same_quote(
    seed_index: Path, real_embedder: Any, tmp_path: Path
) -> None:
    with FakeSlack() as fake, running(seed_index, tmp_path / "data", fake, embedder=real_embedder) as base:
        assert post(base, event_body(mention(FIRST, ts="5.1"), "EvC1")).status_code == 200
        wait_until(lambda: fake.of("chat.postMessage"))
        follow = mention(FOLLOW_UP, ts="5.2", thread_ts="5.1")
        assert post(base, event_body(follow, "EvC2")).status_code == 200
        calls = wait_until(lambda: len(fake.of("chat.postMessage")) >= 2 and fake.of("chat.postMessage"))
        alone = mention("Who will chair Stargate?", ts="5.3", thread_ts="5.1")
        assert post(base, event_body(alone, "EvC3")).status_code == 200
        calls = wait_until(lambda: len(fake.of("chat.postMessage")) >= 3 and fake.of("chat.postMessage"))
        over_http = _top(base, FOLLOW_UP, [FIRST])
        without = _top(base, FOLLOW_UP)
    second, third = calls[1].body, calls[2].body
    assert second["thread_ts"] == "5.1" and third["thread_ts"] == "5.1"
    top = quote_texts(second["blocks"])[0]
    assert "which began in 2019" in top and "2019" in second["text"]
    said = json.dumps(second["blocks"], ensure_ascii=False)
    assert "Read as a follow-up:_ When did it begin? (about Microsoft, partnership, OpenAI)" in said
    # The stand-alone question in the same thread is answered as asked.
    assert "Read as a follow-up" not in json.dumps(third["blocks"]) and "Masayoshi Son" in third["text"]
    # HTTP with the same history: the same top quote, and the same reading.
    assert "which began in 2019" in over_http["quotes"][0]["text"]
    assert over_http["quotes"][0]["text"] in second["text"]
    assert over_http["context"] == "When did it begin? (about Microsoft, partnership, OpenAI)"
    assert over_http["question"] == FOLLOW_UP
    assert "context" not in without


def test_bad_history_gets_a_clear_422(fake_index: Path, fake_embedder: Any) -> None:
    app = create_app(Settings(index_dir=fake_index, max_question_chars=50), embedder=fake_embedder)
    with ServerThread(app) as server:
        server.wait_ready()
        cases = {
            "history holds too many questions; the limit is 10": ["Who chairs it?"] * 11,
            "history[1] is over 50 characters long; the limit is 50.": ["ok", "x" * 51],
            "history[0] is empty": ["  "],
            "history must be a list": "Who chairs Stargate?",
            "history[0] must be a question": [3],
        }
        for message, history in cases.items():
            response = httpx.post(server.url + "/ask", json={"question": "Why?", "history": history}, timeout=10)
            assert response.status_code == 422, history
            assert message in response.json()["error"]
        fine = httpx.post(server.url + "/ask", json={"question": "Why?", "history": ["Who chairs Stargate?"]})
        assert fine.status_code == 200 and fine.json()["context"].startswith("Why? (about")


@pytest.mark.slow
def test_bot_ask_takes_history_and_the_prompt_follows_the_conversation(seed_index: Path) -> None:
    from tests.test_cli import bot

    result = bot("ask", FOLLOW_UP, "--history", FIRST, "--json", "--index", str(seed_index))
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert "which began in 2019" in shown["quotes"][0]["text"] and "Microsoft" in shown["context"]
    too_many = bot("ask", "Why?", *["--history", "Who?"] * 11, "--index", str(seed_index))
    assert too_many.returncode == 1 and "limit is 10" in too_many.stderr
    prompt = bot("ask", "--index", str(seed_index), input=f"{FIRST}\n{FOLLOW_UP}\n/new\n{FOLLOW_UP}\n")
    assert prompt.returncode == 0, prompt.stderr
    answers = prompt.stdout.split("question> ")
    assert "read as a follow-up: When did it begin? (about Microsoft" in answers[2]
    assert "which began in 2019" in answers[2]
    assert "read as a follow-up" not in answers[-1]  # after /new the question stands alone


def test_the_slack_store_keeps_threads_and_upgrades_an_older_file(tmp_path: Path) -> None:
    import sqlite3

    from bot.records import Answer
    from bot.slack.feedback import FeedbackStore

    path = tmp_path / "slack.sqlite3"
    with sqlite3.connect(path) as db:  # the schema before threads were stored
        db.execute(
            "CREATE TABLE answers (id TEXT PRIMARY KEY, question TEXT NOT NULL, answer TEXT NOT NULL, "
            "surface TEXT NOT NULL, channel TEXT, user TEXT, created REAL NOT NULL)"
        )
        db.execute("INSERT INTO answers VALUES ('old', 'Who?', '{}', 'mention', 'C1', 'U1', 1.0)")
    store = FeedbackStore(path)

    def shown(question: str) -> Answer:
        return Answer(question=question, answered=False, quotes=[], took_ms=1.0)

    store.record_answer(shown("First?"), "mention", "C1", "U1", "10.0")
    store.record_answer(shown("Elsewhere?"), "mention", "C1", "U1", "11.0")
    store.record_answer(shown("Second?"), "mention", "C1", "U2", "10.0")
    store.record_answer(shown("Other channel?"), "mention", "C2", "U1", "10.0")
    assert store.thread_turns("C1", "10.0") == [Turn("First?"), Turn("Second?")]
    assert store.where(store.record_answer(shown("Third?"), "shortcut", "C1", "U1", "10.0")) == (
        "C1",
        "10.0",
        "shortcut",
    )
    assert len(store.thread_turns("C1", "10.0", limit=2)) == 2
