"""Scaling out on one machine: several `bot serve` processes share one index folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.indexing.faiss_build import build_index
from tests.conftest import SEED_CORPUS, free_port, wait_until, write_article


@dataclass
class Server:
    """A `bot serve` process: its URL, and its output kept in a file."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return f"--- {self.url} (exit {self.process.poll()}):\n{self.log.read_text(errors='replace')}"

    def ready(self) -> dict[str, Any] | None:
        """/readyz's body once ready; a server that has exited fails the test at once, with its output."""
        if self.process.poll() is not None:
            pytest.fail(f"the server exited before it was ready\n{self.output()}")
        response = httpx.get(self.url + "/readyz", timeout=5)
        return response.json() if response.status_code == 200 else None


@contextmanager
def serve(index_dir: Path, workdir: Path) -> Iterator[Server]:
    """A real `python -m bot serve` process on a free loopback port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLACK_"))} | {"HF_HUB_OFFLINE": "1"}
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "bot", "serve", "--port", str(port), "--index", str(index_dir)]
    # The output is kept, and shown when the test fails: why a server never came up (it died, or
    # was still exporting a model) is otherwise lost.
    log = workdir / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=output, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", process, log)
    failed = False
    try:
        yield server
    except BaseException:
        failed = True
        raise
    finally:
        process.terminate()
        process.wait(timeout=30)
        if failed:
            print(server.output())


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
        servers = [stack.enter_context(serve(index_dir, tmp_path / f"run{n}")) for n in range(2)]
        urls = [server.url for server in servers]
        states = [wait_until(server.ready, timeout=180) for server in servers]
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
        for server in servers:
            wait_until(lambda server=server: (server.ready() or {}).get("index_version") == report.version, timeout=60)
        first, second = (ask(url, "Which county was chosen for the second Stargate campus?") for url in urls)
        assert first == second
        assert first["quotes"][0]["article"]["id"] == "2025-02-01-stargate-texas"
