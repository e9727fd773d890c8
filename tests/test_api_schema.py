"""Fuzz the OpenAPI schema: no 5xx, every response matches the schema (schemathesis)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Err

from bot.http.app import create_app
from bot.settings import Settings
from tests.conftest import FakeEmbedder, ServerThread


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    from bot.indexing.faiss_build import build_index
    from tests.conftest import SEED_CORPUS

    index_dir = tmp_path_factory.mktemp("schema") / "index"
    build_index(SEED_CORPUS, index_dir, FakeEmbedder())
    with ServerThread(create_app(Settings(index_dir=index_dir), embedder=FakeEmbedder())) as running:
        running.wait_ready()
        yield running


def schema_from(server: ServerThread) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_url(server.url + "/openapi.json")


@pytest.mark.slow
def test_schema_fuzz_finds_no_server_error_and_no_schema_violation(server: ServerThread) -> None:
    schema = schema_from(server)
    failures: list[str] = []
    for operation in schema.get_all_operations():
        if isinstance(operation, Err):
            raise operation.err()
        op = operation.ok()

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=op.as_strategy())
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=server.url)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{op.method.upper()} {op.path}: {exc}")
    assert not failures, "\n\n".join(failures)
