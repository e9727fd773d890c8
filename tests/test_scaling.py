"""Scaling out on one machine: several `bot serve` processes share one index folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.indexing.faiss_build import build_index
from tests.conftest import SEED_CORPUS, free_port, wait_until, write_article


@contextmanager
def serve(index_dir: Path, workdir: Path) -> Iterator[str]:
    """A real `python -m bot serve` process on a free loopback port; yields its URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLACK_"))} | {"HF_HUB_OFFLINE": "1"}
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "bot", "serve", "--port", str(port), "--index", str(index_dir)]
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def ready(url: str) -> dict[str, Any] | None:
    response = httpx.get(url + "/readyz", timeout=5)
    return response.json() if response.status_code == 200 else None


def ask(url: str, question: str) -> dict[str, Any]:
    response = httpx.post(url + "/ask", json={"question": question, "k": 3}, timeout=60)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    body.pop("took_ms")
    return body


@pytest.mark.slow
def test_two_processes_on_one_index_answer_alike_and_follow_current(
    seed_index: Path,
    tmp_path: Path,
    real_embedder,
) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(seed_index, index_dir)
    with ExitStack() as stack:
        urls = [stack.enter_context(serve(index_dir, tmp_path / f"run{n}")) for n in range(2)]
        states = [wait_until(lambda url=url: ready(url), timeout=180) for url in urls]
        assert states[0]["index_version"] == states[1]["index_version"]
        first, second = (ask(url, "Who will chair Stargate?") for url in urls)
        assert first == second and first["answered"]
        assert "Masayoshi Son" in first["quotes"][0]["text"]

        # The indexer, a separate writer, publishes a new version: both servers pick it up.
        corpus = tmp_path / "corpus"
        shutil.copytree(SEED_CORPUS, corpus)
        write_article(
            corpus,
            "2025-02-01-stargate-texas.md",
            "Stargate picks a second Texas site",
            "The Stargate partners chose Milam County, Texas, for their second data centre campus. "
            "Construction of the Milam County campus starts in the spring.",
            date="2025-02-01",
        )
        report = build_index(corpus, index_dir, real_embedder)
        for url in urls:
            wait_until(lambda url=url: (ready(url) or {}).get("index_version") == report.version, timeout=60)
        first, second = (ask(url, "Which county was chosen for the second Stargate campus?") for url in urls)
        assert first == second
        assert first["quotes"][0]["article"]["id"] == "2025-02-01-stargate-texas"
