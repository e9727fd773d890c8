"""Dependencies point one way; heavy libraries have exactly one home each."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bot"
EDGES = {"cli", "api", "http_ops", "slack_app", "slack_socket", "web", "settings", "__main__", "ingest_http", "watcher"}


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def modules() -> dict[str, set[str]]:
    return {path.stem: imports_of(path) for path in PACKAGE.glob("*.py")}


@pytest.mark.parametrize(
    ("library", "home"),
    [
        ("sentence_transformers", {"embedding"}),
        ("faiss", {"store"}),
        ("bm25s", {"keyword"}),
        ("pymilvus", {"milvus_store"}),
        ("milvus_lite", {"milvus_store"}),
    ],
)
def test_heavy_library_is_imported_by_one_module(library: str, home: set[str]) -> None:
    users = {
        name for name, found in modules().items() if any(m == library or m.startswith(library + ".") for m in found)
    }
    assert users == home


@pytest.mark.parametrize("library", ["fastapi", "starlette", "slack_bolt", "uvicorn", "bot.settings", "argparse"])
def test_only_edges_import_frameworks_and_settings(library: str) -> None:
    users = {
        name for name, found in modules().items() if any(m == library or m.startswith(library + ".") for m in found)
    }
    assert users <= EDGES, f"{sorted(users - EDGES)} import {library}"


def test_core_never_imports_an_edge() -> None:
    for name, found in modules().items():
        if name in EDGES:
            continue
        edge_imports = {m for m in found if m.startswith("bot.") and m.split(".")[1] in EDGES}
        assert not edge_imports, f"bot/{name}.py imports {sorted(edge_imports)}"


def test_no_grab_bag_modules() -> None:
    names = {path.stem for path in PACKAGE.glob("*.py")}
    assert not names & {"utils", "helpers", "misc", "common"}
    for path in PACKAGE.glob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 450, f"{path.name} wants splitting"
