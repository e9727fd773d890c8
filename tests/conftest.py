"""Shared fixtures: a clean environment, a deterministic fake embedder, small corpora."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SEED_CORPUS = ROOT / "corpus"


@pytest.fixture(scope="session", autouse=True)
def session_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Servers built by module-scoped fixtures keep their runtime data (declined questions, Slack's
    store) in a temporary folder too, never in the repository's data/."""
    before = os.environ.get("BOT_DATA_DIR")
    os.environ["BOT_DATA_DIR"] = str(tmp_path_factory.mktemp("session-data"))
    yield
    if before is None:
        os.environ.pop("BOT_DATA_DIR", None)
    else:
        os.environ["BOT_DATA_DIR"] = before


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No BOT_* / SLACK_* variable (or .env file) from the developer's shell leaks into a test;
    runtime data goes to the test's own folder."""
    for name in list(os.environ):
        if name.startswith(("BOT_", "SLACK_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from bot.settings import Settings, get_settings

    # A developer's own .env must not reach the tests either.
    monkeypatch.setitem(Settings.model_config, "env_file", None)

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


class FakeEmbedder:
    """Deterministic bag-of-words hashing vectors: fast, and similar texts share words."""

    name = "fake-hashing-64"
    dimension = 64

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                bucket = int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension
                out[row, bucket] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
            if not norm:
                out[row, 0] = 1.0
        return out


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def real_embedder():
    """The bundled all-MiniLM-L6-v2, loaded once per test session."""
    from bot.models.encoder import get_embedder

    return get_embedder()


@pytest.fixture(scope="session")
def real_reader():
    """The shipped reader on torch (its weights checked), loaded once per test session; None when
    answering's default is to answer without it (BOT_READER's default)."""
    from bot.answer.reading import DEFAULT_READER
    from bot.models.reader import TorchReader

    return TorchReader() if DEFAULT_READER == "on" else None


def write_article(folder: Path, name: str, title: str, body: str, date: str = "2025-01-23", **meta: str) -> Path:
    lines = ["---", f"title: {title}", f"date: {date}"] + [f"{k}: {v}" for k, v in meta.items()] + ["---", body]
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# Two made-up reports, one per harbour, alike but for the harbour and the day: which one answers
# "Which harbour did the Velmora ferry reach this week?" depends only on the day it is asked.
FERRY_QUESTION = "Which harbour did the Velmora ferry reach this week?"


def write_ferry_reports(folder: Path, days: dict[str, str]) -> None:
    """One report per harbour in `days` (harbour → ISO day), in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, (harbour, day) in enumerate(days.items()):
        body = f"The Velmora ferry reached {harbour} this week after a calm crossing from Tessary Point."
        write_article(folder, f"ferry-{n}.md", f"Velmora ferry reaches {harbour}", body, date=day)


@pytest.fixture
def seed_corpus(tmp_path: Path) -> Path:
    """A private copy of the repository's corpus/."""
    target = tmp_path / "corpus"
    shutil.copytree(SEED_CORPUS, target)
    return target


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Path:
    """The seed corpus indexed with the real model, once per session (read-only for tests), with
    the encoder, the reader and its span head exported for the onnx and openvino runtimes, as `bot
    index` leaves it."""
    from bot.indexing.faiss_build import build_index
    from bot.models.encoder import export_onnx
    from bot.models.files import DEFAULT_MODEL
    from bot.models.reader import export_reader
    from bot.models.spans import export_spans

    index_dir = tmp_path_factory.mktemp("seed") / "index"
    build_index(SEED_CORPUS, index_dir, real_embedder)
    export_onnx(DEFAULT_MODEL, index_dir)
    export_reader(index_dir)
    export_spans(index_dir)
    return index_dir


@contextmanager
def served_process(settings: dict[str, str]) -> Iterator[str]:
    """A real `python -m bot serve` process on a free loopback port, with these BOT_* variables
    and none of the caller's; yields its URL and stops it with SIGTERM (kill if it hangs)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLACK_", "FORWARDED_ALLOW_IPS"))}
    server = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env | settings | {"HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.05):
    """Poll `predicate` until it returns something truthy, or fail at the deadline."""
    import time

    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the thing polled for may not exist yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last error: {last_error!r})")


class ServerThread:
    """A real uvicorn server on a free loopback port, in a thread of the test process (`options`:
    more of uvicorn.Config's, e.g. `bot serve`'s connection limits)."""

    def __init__(self, app, **options) -> None:
        import threading

        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, access_log=False, lifespan="on", **options
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        import httpx

        self.thread.start()
        wait_until(lambda: httpx.get(self.url + "/healthz", timeout=1).status_code == 200, timeout=30)
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        import httpx

        wait_until(lambda: httpx.get(self.url + "/readyz", timeout=2).status_code == 200, timeout=timeout)

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def fake_index(seed_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder) -> Path:
    """The seed corpus indexed with the fake embedder."""
    from bot.indexing.faiss_build import build_index

    index_dir = tmp_path / "index"
    build_index(seed_corpus, index_dir, fake_embedder)
    return index_dir
