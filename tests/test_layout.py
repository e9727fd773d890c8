"""Dependencies point one way, room by room; heavy libraries have exactly one home each.

A room is a subpackage of `bot/` (models, articles, indexing, answer, quality, http, slack, cli) or a top-level
module (cli, service, observability, settings, errors, records, durable). Every module of the package belongs to
a room in ALLOWED, so a new file or folder cannot slip past the rules.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bot"

# What each room may import from the package (besides itself). The flow reads top to bottom:
# models, articles → indexing → answer → quality → service → edges (http, slack, cli).
BASE = {"errors", "records", "durable", "__init__"}
CORE = BASE | {"models", "articles", "indexing", "answer", "quality", "service", "observability"}
ALLOWED: dict[str, set[str]] = {
    "__init__": set(),
    "errors": set(),
    "records": set(),
    "durable": {"errors"},
    "models": BASE,  # every model runtime; it knows no index and no question flow
    "articles": BASE,
    "indexing": BASE | {"articles", "models"},
    "answer": BASE | {"articles", "indexing", "models"},
    "quality": BASE | {"articles", "indexing", "answer", "models"},
    "observability": BASE | {"indexing", "service"},  # the metrics read the service's index
    "service": CORE | {"settings"},
    "settings": BASE | {"models", "articles", "indexing", "answer"},  # defaults come from the core's constants
    "slack": CORE | {"settings"},  # never the HTTP app: `bot slack` runs without it
    "http": CORE | {"settings", "slack"},  # mounts the Slack app on /slack/events
    "cli": CORE | {"settings", "http", "slack"},
    "__main__": {"cli"},
}
EDGES = {"http", "slack", "cli", "settings", "__main__"}
# Frameworks stay in their edge.
FRAMEWORK_HOMES = {
    "fastapi": {"http"},
    "starlette": {"http"},
    "uvicorn": {"http"},
    "slack_bolt": {"slack"},
    "slack_sdk": {"slack"},
    "argparse": {"cli"},
    "bot.settings": {"http", "slack", "cli", "service"},
}


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "bot":  # `from bot import x` names a module, or a name of bot/__init__.py
                found.update(f"bot.{alias.name}" for alias in node.names if not alias.name.startswith("__"))
    return found


@cache
def modules() -> dict[str, set[str]]:
    """Every module of the package, by dotted name below `bot` (e.g. `indexing.versions`)."""
    return {
        ".".join(path.relative_to(PACKAGE).with_suffix("").parts): imports_of(path) for path in PACKAGE.rglob("*.py")
    }


def room(name: str) -> str:
    return name.split(".")[0]


def users_of(library: str) -> set[str]:
    return {
        name for name, found in modules().items() if any(m == library or m.startswith(library + ".") for m in found)
    }


def test_every_module_belongs_to_a_room() -> None:
    unknown = {name for name in modules() if room(name) not in ALLOWED}
    assert not unknown, f"{sorted(unknown)}: add the room to ALLOWED in tests/test_layout.py"


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_imports_only_rooms_it_may(name: str) -> None:
    own = room(name)
    rooms = {m.split(".")[1] for m in modules()[name] if m.startswith("bot.")}
    rooms |= {"__init__" for m in modules()[name] if m == "bot"}
    assert rooms - {own} <= ALLOWED[own], f"bot/{name} imports {sorted(rooms - {own} - ALLOWED[own])}"


@pytest.mark.parametrize(
    ("library", "home"),
    [
        ("sentence_transformers", {"models.encoder"}),
        ("torch", {"models.encoder", "models.export"}),
        ("onnxruntime", {"models.runtimes"}),
        ("openvino", {"models.runtimes"}),
        ("tokenizers", {"models.runtimes"}),
        ("faiss", {"indexing.dense"}),
        ("bm25s", {"indexing.keyword"}),
        ("pymilvus", {"indexing.milvus_store"}),
        ("milvus_lite", {"indexing.milvus_store"}),
    ],
)
def test_heavy_library_is_imported_by_one_module(library: str, home: set[str]) -> None:
    assert users_of(library) == home


@pytest.mark.parametrize(("library", "homes"), sorted(FRAMEWORK_HOMES.items()))
def test_only_their_edge_imports_frameworks_and_settings(library: str, homes: set[str]) -> None:
    users = {room(name) for name in users_of(library)}
    assert users <= homes, f"{sorted(users - homes)} import {library}"


def test_core_never_imports_an_edge() -> None:
    for name, found in modules().items():
        if room(name) in EDGES:
            continue
        edge_imports = {m for m in found if m.startswith("bot.") and m.split(".")[1] in EDGES - {"settings"}}
        assert not edge_imports, f"bot/{name} imports {sorted(edge_imports)}"


def test_no_grab_bag_modules() -> None:
    paths = list(PACKAGE.rglob("*.py"))
    names = {path.stem for path in paths} | {path.name for path in PACKAGE.rglob("*") if path.is_dir()}
    assert not names & {"utils", "helpers", "misc", "common", "core"}
    for path in paths:
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 450, f"{path} wants splitting"
