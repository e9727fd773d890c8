from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SEED_CORPUS, write_article


def bot(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLACK_"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=full_env,
        input=input,
        timeout=300,
    )


def test_help_is_fast_and_imports_nothing_heavy() -> None:
    started = time.perf_counter()
    result = bot("--help")
    assert result.returncode == 0 and "ask" in result.stdout and "index" in result.stdout
    assert time.perf_counter() - started < 1.5
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, bot.cli; bot.cli._parser(); print(sorted(m for m in ('torch','faiss','fastapi','sentence_transformers') if m in sys.modules))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("ask", ""), 1, "error: The question is empty"),
        (("ask", "   "), 1, "error: The question is empty"),
        (("ask", "Who?", "-k", "50"), 1, "k must be a whole number from 1 to 20"),
        (("ask", "Who?", "-k", "many"), 2, "invalid int value"),
        (("ask", "Who?", "--since", "yesterday"), 1, "is not an ISO date"),
        (("ask", "Who?", "--asked-on", "last week"), 1, "--asked-on 'last week' is not an ISO date"),
        (("ask", "Who?", "--index", "/nonexistent/index"), 1, "No index in /nonexistent/index: run `bot index` first."),
        pytest.param(
            ("index", "--corpus", "/nonexistent/corpus", "--index", "/tmp/unused-index"),
            1,
            "/nonexistent/corpus: no such file or folder",
            marks=pytest.mark.slow,  # loads the real model before it reads the corpus
        ),
        (("frobnicate",), 2, "invalid choice"),
    ],
)
def test_cli_errors_are_one_clear_line(args: tuple[str, ...], code: int, message: str) -> None:
    result = bot(*args)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    if code == 1:
        assert len(result.stderr.strip().splitlines()) == 1


def test_bad_setting_is_one_clear_line() -> None:
    result = bot("ask", "Who?", env={"BOT_PORT": "eighty"})
    assert result.returncode == 1 and "BOT_PORT" in result.stderr and "Traceback" not in result.stderr
    level = bot("ask", "Who?", env={"BOT_LOG_LEVEL": "chatty"})
    assert level.returncode == 1 and "BOT_LOG_LEVEL" in level.stderr and "Traceback" not in level.stderr
    assert len(level.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_index_reports_malformed_files_and_indexes_the_rest(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_article(corpus, "good.md", "Good news", "The data centre opens in Texas in 2026.")
    (corpus / "broken.md").write_text("no header at all", encoding="utf-8")
    result = bot("index", "--corpus", str(corpus), "--index", str(tmp_path / "index"))
    assert result.returncode == 0, result.stderr
    assert "Indexed 1 articles" in result.stdout
    assert f"skipped {corpus / 'broken.md'}: no front-matter header" in result.stderr
    strict = bot("index", "--corpus", str(corpus), "--index", str(tmp_path / "index"), "--strict")
    assert strict.returncode == 1


@pytest.mark.slow
def test_index_then_ask_end_to_end_with_the_real_model(tmp_path: Path) -> None:
    env = {"BOT_INDEX_DIR": str(tmp_path / "index"), "BOT_CORPUS_DIR": str(SEED_CORPUS)}
    built = bot("index", env=env)
    assert built.returncode == 0, built.stderr
    assert "up to date" in bot("index", "--if-stale", env=env).stdout
    human = bot("ask", "Who will chair Stargate?", env=env)
    assert human.returncode == 0, human.stderr
    first_quote = human.stdout.split("\n\n")[0]
    assert "Masayoshi Son" in first_quote
    # The post has no URL: the citation line ends at the date, with nothing made up after it.
    assert first_quote.rstrip().splitlines()[-1] == "— OpenAI, Softbank launch Stargate Project (2025-01-23)"
    result = json.loads(bot("ask", "Who will chair Stargate?", "--json", "-k", "2", env=env).stdout)
    assert result["answered"] is True and result["message"] is None
    assert set(result) == {"question", "answered", "quotes", "message", "took_ms"}
    assert len(result["quotes"]) == 2
    text = (SEED_CORPUS / "2025-01-23-openai-softbank-launch-stargate-project.md").read_text(encoding="utf-8")
    body = text.split("---\n", 2)[2].strip()
    for quote in result["quotes"]:
        assert body[quote["start"] : quote["end"]] == quote["text"]
        assert quote["text"] in quote["passage"]
        assert set(quote["article"]) == {"id", "title", "date", "url", "source"}
    offtopic = bot("ask", "How do I bake sourdough bread?", env=env)
    assert "I couldn't find that in the 1 article I know." in offtopic.stdout


@pytest.mark.slow
def test_interactive_prompt_answers_each_line(seed_index: Path) -> None:
    result = bot("ask", "--index", str(seed_index), input="Who will chair Stargate?\n\nWhat does IP stand for?\n")
    assert result.returncode == 0, result.stderr
    assert "Masayoshi Son" in result.stdout and "intellectual property" in result.stdout
