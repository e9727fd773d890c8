"""A real `bot serve` process on loopback, timed from spawn to /healthz and /readyz, and loaded
with N concurrent clients."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2.0).status_code
    except httpx.HTTPError:
        return 0


class Server:
    """`python -m bot serve` on a free port over `index_dir`; records start-up times and peak RSS."""

    def __init__(self, index_dir: Path, workdir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.index_dir = index_dir
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.to_healthz = float("nan")
        self.to_readyz = float("nan")

    def __enter__(self) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLACK_"))}
        env |= {"HF_HUB_OFFLINE": "1", "BOT_LOG_LEVEL": "WARNING", **self.extra_env}
        self.workdir.mkdir(parents=True, exist_ok=True)  # no stray .env is read from here
        command = [sys.executable, "-m", "bot", "serve", "--port", str(self.port), "--index", str(self.index_dir)]
        started = time.perf_counter()
        self.process = subprocess.Popen(
            command, cwd=self.workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.to_healthz = self._poll("/healthz", started, 60)
        self.to_readyz = self._poll("/readyz", started, 600)
        return self

    def _poll(self, route: str, started: float, timeout: float) -> float:
        assert self.process is not None
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"bot serve exited with {self.process.returncode}: {err[-2000:]}")
            if _status(self.url + route) == 200:
                return time.perf_counter() - started
            time.sleep(0.01)
        raise RuntimeError(f"{route} not 200 within {timeout} s")

    def peak_rss_mb(self) -> float:
        """VmHWM of the server process and of every process under it (workers), summed.

        The sum counts pages the workers share (the memory-mapped index, libraries) once per
        process, so it overstates what the machine gives them together."""
        assert self.process is not None
        total = 0.0
        for pid in [self.process.pid, *_descendants(self.process.pid)]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        return total or float("nan")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


@dataclass
class Load:
    clients: int
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    server_ms: list[float]  # the answer's own took_ms: the pipeline without HTTP

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else float("nan")


class _Connection:
    """A minimal HTTP/1.1 keep-alive client: the load generator shares the server's two cores, so
    it should cost as little CPU per request as possible (httpx costs about as much as the server)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    async def post_json(self, path: str, payload: dict[str, object]) -> tuple[int, bytes]:
        body = json.dumps(payload).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
        return status, await self.reader.readexactly(length)


async def _load(url: str, questions: list[str], clients: int) -> Load:
    """Each client sends its share of `questions` one after another on its own connection; all at once."""
    latencies: list[float] = []
    server: list[float] = []
    errors = 0
    host, port = url.removeprefix("http://").split(":")
    connections = [
        _Connection(*await asyncio.open_connection(host, int(port)), f"{host}:{port}") for _ in range(clients)
    ]

    async def one_client(connection: _Connection, mine: list[str]) -> None:
        nonlocal errors
        for question in mine:
            sent = time.perf_counter()
            status, body = await connection.post_json("/ask", {"question": question, "k": 3})
            latencies.append((time.perf_counter() - sent) * 1000)
            if status != 200:
                errors += 1
            else:
                server.append(float(json.loads(body)["took_ms"]))

    started = time.perf_counter()
    await asyncio.gather(*(one_client(c, questions[i::clients]) for i, c in enumerate(connections)))
    seconds = time.perf_counter() - started
    for connection in connections:
        connection.writer.close()
    return Load(clients, len(questions), seconds, latencies, errors, server)


def load(url: str, questions: list[str], clients: int) -> Load:
    return asyncio.run(_load(url, questions, clients))
