"""A published version that is corrupt or half-copied is refused with its reason; a server keeps
answering from the version it has and picks up the next good one."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from bot.errors import IndexCorruptError
from bot.http.app import create_app
from bot.indexing.versions import FaissIndex, current_version, publish
from bot.settings import Settings
from tests.conftest import FakeEmbedder, ServerThread, wait_until


def copy_version(
    index_dir: Path, name: str, damage: Callable[[Path], None] | None = None, source_version: str | None = None
) -> str:
    """A copy of the current (or `source_version`) version under a new name, damaged by `damage`, published."""
    source = index_dir / "versions" / (source_version or current_version(index_dir))
    target = index_dir / "versions" / name
    shutil.copytree(source, target)
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    (target / "manifest.json").write_text(json.dumps({**manifest, "version": name}), encoding="utf-8")
    if damage is not None:
        damage(target)
    publish(index_dir, name)
    return name


def drop_a_title(folder: Path) -> None:
    lines = (folder / "articles.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    del first["title"]
    (folder / "articles.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n", encoding="utf-8")


def cut_passages_short(folder: Path) -> None:
    passages = np.load(folder / "passages.npy")
    np.save(folder / "passages.npy", passages[: len(passages) // 2])


def half_copied(folder: Path) -> None:
    (folder / "passages.faiss").unlink()
    shutil.rmtree(folder / "keyword")


def shrink_units(folder: Path) -> None:
    units = np.load(folder / "units.npy")
    units[:, 2] = units[:, 2] + 10**6  # spans past the article's end
    np.save(folder / "units.npy", units)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (drop_a_title, "articles.jsonl line 1"),
        (cut_passages_short, "rows of passages.npy"),
        (half_copied, "passages.faiss"),
        (shrink_units, "span outside its article's text"),
    ],
)
def test_a_corrupt_version_is_refused_with_its_reason(
    fake_index: Path, damage: Callable[[Path], None], reason: str
) -> None:
    name = copy_version(fake_index, "29990101T000000000000Z-damaged", damage)
    with pytest.raises(IndexCorruptError, match=reason):
        FaissIndex(fake_index / "versions" / name)


def test_a_server_keeps_serving_through_bad_versions_and_picks_up_the_next_good_one(
    fake_index: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    good = current_version(fake_index)
    app = create_app(Settings(index_dir=fake_index), embedder=FakeEmbedder())
    with ServerThread(app) as server:
        server.wait_ready()

        def ask() -> httpx.Response:
            return httpx.post(server.url + "/ask", json={"question": "Who will chair Stargate?"}, timeout=10)

        for n, damage in enumerate((drop_a_title, cut_passages_short, half_copied)):
            bad = copy_version(fake_index, f"2999010{n + 1}T000000000000Z-bad", damage, source_version=good)
            wait_until(lambda bad=bad: bad in caplog.text, timeout=10)
            assert httpx.get(server.url + "/readyz").json()["index_version"] == good
            assert ask().status_code == 200
        assert "index not loaded (keeping index " + good in caplog.text
        assert "articles.jsonl line 1" in caplog.text and "rows of passages.npy" in caplog.text
        fixed = copy_version(fake_index, "29990201T000000000000Z-good", source_version=good)
        wait_until(lambda: httpx.get(server.url + "/readyz").json()["index_version"] == fixed, timeout=10)
        assert ask().status_code == 200


def test_a_manifest_without_its_build_time_is_refused(fake_index: Path) -> None:
    def drop_built_at(folder: Path) -> None:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        del manifest["built_at"]
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")

    name = copy_version(fake_index, "29990101T000000000000Z-no-time", drop_built_at)
    with pytest.raises(IndexCorruptError, match="built_at"):
        FaissIndex(fake_index / "versions" / name)
