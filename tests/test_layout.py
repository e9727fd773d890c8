"""Dependencies point one way; heavy libraries have exactly one home each."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bot"
EDGES = {"cli", "http", "slack", "settings", "__main__", "indexing.watcher"}


def is_edge(name: str) -> bool:
    return name in EDGES or name.split(".")[0] in EDGES


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def modules() -> dict[str, set[str]]:
    return {
        ".".join(path.relative_to(PACKAGE).with_suffix("").parts): imports_of(path) for path in PACKAGE.rglob("*.py")
    }


@pytest.mark.parametrize(
    ("library", "home"),
    [
        ("sentence_transformers", {"indexing.embedding"}),
        ("faiss", {"indexing.versions"}),
        ("bm25s", {"indexing.keyword"}),
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
    assert all(is_edge(name) for name in users), f"{sorted(users)} import {library}"


def test_core_never_imports_an_edge() -> None:
    for name, found in modules().items():
        if is_edge(name):
            continue
        edge_imports = {m for m in found if m.startswith("bot.") and is_edge(m.removeprefix("bot."))}
        assert not edge_imports, f"bot/{name}.py imports {sorted(edge_imports)}"


def test_no_grab_bag_modules() -> None:
    names = {path.stem for path in PACKAGE.rglob("*.py")}
    assert not names & {"utils", "helpers", "misc", "common"}
    for path in PACKAGE.rglob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 450, f"{path.name} wants splitting"
