"""Concurrent changes to the corpus through a real server: the checks that guard a change are made
under the same lock as the change."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from bot.articles.corpus import load_corpus
from bot.http.app import create_app
from bot.indexing.faiss_build import build_index
from bot.settings import Settings
from tests.conftest import FakeEmbedder, ServerThread, write_article

KEY = {"Authorization": "Bearer s3cret"}


def three_article_corpus(folder: Path) -> Path:
    folder.mkdir()
    for n, town in enumerate(("Quillfield", "Brackwater", "Ostmere")):
        write_article(folder, f"{town.lower()}.md", f"{town} opens a ferry", f"The ferry of {town} runs daily {n}.")
    return folder


def test_concurrent_deletes_never_empty_the_corpus(tmp_path: Path) -> None:
    corpus = three_article_corpus(tmp_path / "corpus")
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir, FakeEmbedder())
    ids = [a.id for a in load_corpus(corpus).articles]
    settings = Settings(corpus_dir=corpus, index_dir=index_dir, api_key="s3cret")
    with ServerThread(create_app(settings, embedder=FakeEmbedder())) as server:
        server.wait_ready()
        start = threading.Barrier(len(ids))
        statuses: dict[str, int] = {}

        def delete(article_id: str) -> None:
            start.wait()
            statuses[article_id] = httpx.delete(
                f"{server.url}/articles/{article_id}", headers=KEY, timeout=60
            ).status_code

        threads = [threading.Thread(target=delete, args=(i,)) for i in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
        assert sorted(statuses.values()) == [200, 200, 409], statuses
        left = load_corpus(corpus).articles
        assert len(left) == 1
        ready = httpx.get(server.url + "/readyz").json()
        assert ready["articles"] == 1
        assert [a["id"] for a in httpx.get(server.url + "/articles").json()["articles"]] == [left[0].id]


def test_simultaneous_clicks_of_one_vote_count_once(tmp_path: Path) -> None:
    from bot.records import Answer
    from bot.slack.feedback import FeedbackStore

    store = FeedbackStore(tmp_path / "slack.sqlite3")
    answer_id = store.record_answer(
        Answer(question="Where is Quillfield?", answered=False, quotes=[], message="Not found.", took_ms=1.0),
        "dm",
        "D1",
        "U1",
    )
    for round_ in range(5):  # a race lost once in a while is still a race: several rounds
        vote = "up" if round_ % 2 == 0 else "down"
        start = threading.Barrier(8)
        changed: list[bool] = []

        def click(vote: str = vote, start: threading.Barrier = start, changed: list[bool] = changed) -> None:
            start.wait()
            changed.append(store.record_vote(answer_id, "UVOTER1", vote))

        threads = [threading.Thread(target=click) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert changed.count(True) == 1, (round_, changed)
