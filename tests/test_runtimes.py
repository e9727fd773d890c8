"""The encoder on ONNX Runtime and OpenVINO: same vectors as torch, checked exports, no torch in serving."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from bot.errors import ModelError
from bot.models import runtimes
from bot.models.encoder import MIN_COSINE, export_folder, open_embedder
from bot.models.files import DEFAULT_MODEL
from bot.models.runtimes import Runtime, batch_sizes, min_cosine
from tests.conftest import ROOT, free_port, wait_until

pytestmark = pytest.mark.slow

TEXTS = [
    "Who is going to lead the Korvath Energy venture?",
    "The Pellingham Gazette reported that the new port at Dunmere will open in 2031, two years late.",
    "short",
    "How much did the Ostrava Tram Company pay for its forty-two new carriages, and who paid for them? " * 6,
]


@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_an_exported_runtime_gives_torchs_vectors(runtime: Runtime, seed_index: Path, real_embedder) -> None:
    embedder = open_embedder(DEFAULT_MODEL, runtime, seed_index)
    assert (embedder.name, embedder.dimension) == (real_embedder.name, real_embedder.dimension)
    together = embedder.encode(TEXTS)  # one padded batch
    alone = np.vstack([embedder.encode([t]) for t in TEXTS])
    reference = real_embedder.encode(TEXTS)
    assert min_cosine(reference, together) >= MIN_COSINE
    assert min_cosine(reference, alone) >= MIN_COSINE
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)


@pytest.mark.parametrize(
    ("count", "largest", "sizes"),
    [(23, 64, [16, 4, 2, 1]), (64, 64, [64]), (100, 64, [64, 32, 4]), (5, 3, [2, 2, 1]), (0, 64, []), (2, 0, [1, 1])],
)
def test_batches_are_powers_of_two(count: int, largest: int, sizes: list[int]) -> None:
    assert batch_sizes(count, largest) == sizes


def test_openvino_runs_a_batch_as_powers_of_two_with_torchs_vectors(seed_index: Path, real_embedder) -> None:
    # Every input shape OpenVINO runs costs memory for the life of the process; 23 questions run
    # as 16 + 4 + 2 + 1 rows, never as a shape of 23, and each still gets its own vector.
    embedder = open_embedder(DEFAULT_MODEL, "openvino", seed_index)
    shapes: list[tuple[int, ...]] = []
    run = embedder.transformer._run  # type: ignore[attr-defined]

    def recording(ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        shapes.append(ids.shape)
        return run(ids, mask, types)

    embedder.transformer._run = recording  # type: ignore[attr-defined]
    texts = [f"When will the Korvath Energy plant number {n} open{' near Dunmere' * (n % 4)}?" for n in range(23)]
    vectors = embedder.encode(texts, batch_size=64)
    assert [rows for rows, _ in shapes] == [16, 4, 2, 1]
    assert all(tokens % 16 == 0 for _, tokens in shapes)
    assert min_cosine(real_embedder.encode(texts), vectors) >= MIN_COSINE


def test_openvino_reads_its_own_ir_with_float16_weights(seed_index: Path) -> None:
    # float32 weights cost a server ~65 MB for nothing: OpenVINO computes in bfloat16 here.
    folder = export_folder(DEFAULT_MODEL, seed_index)
    assert (folder / "openvino.bin").stat().st_size < 0.55 * (folder / "model.onnx").stat().st_size
    xml = (folder / "openvino.xml").read_text(encoding="utf-8")
    assert xml.count('element_type="f16"') > 100


def _copy_export(seed_index: Path, tmp_path: Path) -> tuple[Path, Path]:
    source = export_folder(DEFAULT_MODEL, seed_index)
    index_dir = tmp_path / "index"
    target = export_folder(DEFAULT_MODEL, index_dir)
    shutil.copytree(source, target)
    return index_dir, target


def test_an_export_of_an_older_format_is_removed_and_other_models_stay(seed_index: Path, tmp_path: Path) -> None:
    import json

    from bot.models.encoder import export_onnx

    index_dir, folder = _copy_export(seed_index, tmp_path)
    record = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    older, other, unknown = (folder.parent / n for n in ("onnx-0123456789ab", "onnx-ba9876543210", "onnx-notanexport"))
    for path, fields in ((older, {"format": 1}), (other, {"model": "someone/another-model"})):
        path.mkdir()
        (path / "model.onnx").write_bytes(b"\0" * 1024)
        (path / "export.json").write_text(json.dumps({**record, **fields}), encoding="utf-8")
    unknown.mkdir()
    assert export_onnx(DEFAULT_MODEL, index_dir) == folder  # the current export is kept, not redone
    assert not older.exists()
    assert other.exists() and unknown.exists() and (folder / "export.json").is_file()


@pytest.mark.parametrize(("runtime", "changed"), [("onnx", "model.onnx"), ("openvino", "openvino.bin")])
def test_a_changed_model_file_is_refused_by_its_hash(
    seed_index: Path, tmp_path: Path, runtime: Runtime, changed: str
) -> None:
    index_dir, folder = _copy_export(seed_index, tmp_path)
    with (folder / changed).open("r+b") as handle:
        handle.seek(-4096, os.SEEK_END)
        handle.write(b"\0" * 16)
    with pytest.raises(ModelError, match=rf"{re.escape(changed)} has sha256 .* corrupt or was replaced"):
        open_embedder(DEFAULT_MODEL, runtime, index_dir)


def test_vectors_that_drift_from_torchs_are_refused_with_the_figure(seed_index: Path, tmp_path: Path) -> None:
    # The reference vectors stand in for a runtime whose output drifted a little (cosine ~0.998):
    # the same check from the other side.
    index_dir, folder = _copy_export(seed_index, tmp_path)
    probes = np.load(folder / "probes.npy")
    rng = np.random.default_rng(0)
    drifted = probes + 0.003 * rng.standard_normal(probes.shape).astype(np.float32)
    np.save(folder / "probes.npy", drifted / np.linalg.norm(drifted, axis=1, keepdims=True))
    with pytest.raises(ModelError, match=r"openvino encoder .* cosine 0\.99[0-8]\d+ to torch's .* below the 0\.9999"):
        open_embedder(DEFAULT_MODEL, "openvino", index_dir)


def test_a_missing_export_is_refused_unless_asked_to_export(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="run `bot export-encoder`"):
        open_embedder(DEFAULT_MODEL, "onnx", tmp_path / "index")


# Installed in every Python process the server starts (its workers too) through PYTHONPATH:
# importing torch writes where from and fails.
NO_TORCH = """
import sys, traceback

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            with open({marker!r}, "a") as handle:
                handle.write("".join(traceback.format_stack()) + "\\n")
            raise ImportError("torch imported by the server")
        return None

sys.meta_path.insert(0, NoTorch())
"""


def _start_guarded(seed_index: Path, tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, Path]:
    """`python -m bot serve` with the torch guard in every process it starts; its URL and marker file."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    marker = tmp_path / "torch-imports.txt"
    (hooks / "sitecustomize.py").write_text(textwrap.dedent(NO_TORCH.format(marker=str(marker))), encoding="utf-8")
    port = free_port()
    full_env = {
        "PATH": "/usr/bin:/bin",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(hooks),
        "BOT_INDEX_DIR": str(seed_index),
        "BOT_PORT": str(port),
        "BOT_DATA_DIR": str(tmp_path / "data"),
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"],
        cwd=tmp_path,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return process, f"http://127.0.0.1:{port}", marker


# Four ways to ask who chairs Stargate. (With a number appended, "Who will chair Stargate? (3)",
# the reader prefers the post's first sentence, the one with the figures: 1 of 12 such questions
# is quoted right with it, 12 of 12 without it.)
CHAIR_QUESTIONS = [
    "Who will chair Stargate?",
    "Who chairs Stargate?",
    "Who will be the chairman of Stargate?",
    "Who is the chairman of Stargate?",
]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_bot_serve_with_the_default_runtime_never_imports_torch(seed_index: Path, tmp_path: Path, workers: str) -> None:
    process, url, marker = _start_guarded(seed_index, tmp_path, {"BOT_WORKERS": workers})
    try:
        wait_until(lambda: httpx.get(url + "/readyz", timeout=2).status_code == 200, timeout=120)
        # New connections, so that every worker gets some of the questions.
        for n in range(12):
            response = httpx.post(url + "/ask", json={"question": CHAIR_QUESTIONS[n % 4]}, timeout=60)
            assert response.status_code == 200, response.text
            assert "Masayoshi Son" in response.json()["quotes"][0]["text"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    # uvicorn re-raises SIGTERM once it has shut down cleanly (one process); a supervisor exits 0.
    assert process.returncode in (0, -signal.SIGTERM), err.decode()[-3000:]
    assert "Application shutdown complete" in err.decode()
    assert not marker.exists(), marker.read_text()


def test_the_torch_guard_catches_a_torch_server(seed_index: Path, tmp_path: Path) -> None:
    # The same guard around a torch server must see the import, so the test above can fail.
    process, _, marker = _start_guarded(seed_index, tmp_path, {"BOT_ENCODER": "torch"})
    try:
        # Written, not just created: the file exists from the guard's open(), before its write.
        wait_until(lambda: marker.is_file() and bool(marker.read_text()), timeout=120)
    finally:
        process.kill()
        process.communicate(timeout=60)
    assert "bot/models/encoder.py" in marker.read_text()


def test_an_unknown_runtime_is_a_clear_settings_error(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    from bot.cli import main

    monkeypatch.setenv("BOT_ENCODER", "tensorflow")
    assert main(["ask", "Who?", "--index", str(ROOT / "no-index")]) == 1
    assert "BOT_ENCODER" in capsys.readouterr().err


def test_exports_in_children_for_one_index_run_one_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    first_inside, finish_first = threading.Event(), threading.Event()

    def child(line: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        events.append(f"start {line[3]}")
        if line[3] == "first":
            first_inside.set()
            assert finish_first.wait(30)
        events.append(f"end {line[3]}")
        return subprocess.CompletedProcess(line, 0, "", "")

    monkeypatch.setattr(subprocess, "run", child)  # the one runtimes.export_in_child calls
    first = threading.Thread(target=runtimes.export_in_child, args=("first", tmp_path))
    second = threading.Thread(target=runtimes.export_in_child, args=("second", tmp_path))
    first.start()
    assert first_inside.wait(30)
    second.start()
    second.join(timeout=0.5)  # it waits for the lock, not in a child of its own
    assert second.is_alive() and events == ["start first"]
    finish_first.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert events == ["start first", "end first", "start second", "end second"]


@pytest.mark.slow
def test_one_openvino_compile_at_a_time_per_export_and_the_second_reads_the_cache(
    seed_index: Path, tmp_path: Path
) -> None:
    from filelock import FileLock

    folder = tmp_path / "export"
    shutil.copytree(export_folder(DEFAULT_MODEL, seed_index), folder, ignore=shutil.ignore_patterns("openvino-cache"))
    opened: list[runtimes.Session] = []
    with FileLock(str(folder / ".compile.lock")):  # another process compiling this export
        second = threading.Thread(target=lambda: opened.append(runtimes.OpenVinoSession(folder, 1)))
        second.start()
        second.join(timeout=1.0)
        assert second.is_alive() and not opened  # it waits, rather than writing the same blob at once
    second.join(timeout=120)
    assert len(opened) == 1 and list((folder / "openvino-cache").glob("*.blob"))
