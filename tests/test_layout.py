"""Dependencies point one way, room by room; heavy libraries have exactly one home each.

A room is a subpackage of `bot/` (models, articles, feeds, indexing, answer, quality, http, slack, cli) or a top-level
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
# models, articles → feeds, indexing → answer → quality → service → edges (http, slack, cli).
BASE = {"errors", "records", "durable", "__init__"}
CORE = BASE | {"models", "articles", "feeds", "indexing", "answer", "quality", "service", "observability"}
ALLOWED: dict[str, set[str]] = {
    "__init__": set(),
    "errors": set(),
    "records": set(),
    "durable": {"errors"},
    "models": BASE,  # every model runtime; it knows no index and no question flow
    "articles": BASE,
    "feeds": BASE | {"articles"},  # subscriptions and the poller; the rebuild is handed to it
    "indexing": BASE | {"articles", "models"},
    "answer": BASE | {"articles", "indexing", "models"},
    "quality": BASE | {"articles", "indexing", "answer", "models"},
    "observability": BASE | {"indexing", "feeds"},  # the metrics read the served index and the feeds' polls
    "service": CORE | {"settings"},
    "settings": BASE | {"models", "articles", "feeds", "indexing", "answer"},  # defaults come from the core's constants
    "slack": CORE | {"settings"},  # never the HTTP app: `bot slack` runs without it
    "http": CORE | {"settings", "slack"},  # mounts the Slack app on /slack/events
    "cli": CORE | {"settings", "http", "slack", "models"},
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
            # `from bot.http import articles` imports the module bot.http.articles; `from bot import x`
            # names a module, or a name of bot/__init__.py.
            found.update(f"{node.module}.{alias.name}" for alias in node.names if not alias.name.startswith("__"))
    return found


@cache
def trees() -> dict[str, ast.Module]:
    return {
        ".".join(path.relative_to(PACKAGE).with_suffix("").parts): ast.parse(path.read_text(encoding="utf-8"))
        for path in PACKAGE.rglob("*.py")
    }


def own_modules(found: set[str]) -> set[str]:
    """The package's modules among imported names (`bot.x.y` → `x.y`; a name imported from a
    module counts as that module)."""
    names = set(modules())
    out = set()
    for name in found:
        if name.startswith("bot."):
            dotted = name[4:]
            while dotted and dotted not in names:
                dotted = dotted.rpartition(".")[0]
            if dotted:
                out.add(dotted)
    return out


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
        ("sentence_transformers", {"models.encoder", "models.training"}),
        (
            "torch",
            {
                "models.encoder",
                "models.export",
                "models.training",
                "models.reader",
                "models.span_training",
                "models.spans",
            },
        ),
        ("datasets", {"models.training", "models.span_training"}),
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


def test_the_package_imports_its_modules_at_the_top() -> None:
    # An import inside a function hides a dependency (often a cycle); heavy third-party
    # libraries stay lazy, and the CLI finds its commands' modules by name (`bot.cli.COMMANDS`).
    inside = [
        f"bot/{name}:{node.lineno} {node.module}"
        for name, tree in trees().items()
        for function in ast.walk(tree)
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(function)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "bot"
    ]
    assert not inside, inside


def test_no_two_modules_depend_on_each_other() -> None:
    graph = {name: own_modules(found) - {name} for name, found in modules().items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles


def test_no_private_name_is_imported_from_another_module() -> None:
    private = [
        f"bot/{name}: {node.module}.{alias.name}"
        for name, tree in trees().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bot")
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert not private, private


BACKENDS = {"indexing.versions", "indexing.milvus_index", "indexing.milvus_store", "indexing.stores"}
BACKEND_NAMES = {"FaissIndex", "MilvusIndex", "FaissStore", "MilvusStore", "MilvusTarget"}


def test_answering_knows_no_search_backend() -> None:
    # Retrieval fuses whatever `Index.candidates` gives; which engine gave it is the index's business.
    for name, tree in trees().items():
        if room(name) != "answer":
            continue
        assert not own_modules(modules()[name]) & BACKENDS, f"bot/{name} imports a backend"
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
            n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
        }
        assert not used & BACKEND_NAMES, f"bot/{name} names {sorted(used & BACKEND_NAMES)}"
