"""The Milvus backend on Milvus Lite 2.5 (the C++ Milvus core, run from a local .db file).

In-process: index the seed, ask, add and delete one article in place, publish a new version,
restart and reload. Across processes: a Milvus Lite file is locked to the one process that opened
it, so the multi-process test serves that file on a loopback port (milvus-lite's own server mode,
the same engine) and points a real `bot serve` and the indexer at `http://127.0.0.1:PORT`, as
replicas and the indexer would share a Milvus server.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.answer.answering import answer
from bot.answer.asking import Ask
from bot.indexing.stores import MilvusStore
from tests.conftest import SEED_CORPUS, free_port, wait_until, write_article

try:  # the engine ships as a wheel for Linux and macOS only
    import pymilvus  # noqa: F401

    from bot.indexing.milvus_store import MilvusTarget, collect_garbage, read_pointer, release
except ImportError as exc:  # pragma: no cover - exercised where the wheel cannot install
    pytest.skip(f"the Milvus backend's packages cannot be imported here: {exc}", allow_module_level=True)

pytestmark = pytest.mark.slow

QUESTION = "Who will chair Stargate?"
# Made-up text about a made-up company and place.
NEW_TITLE = "Quorvane opens a plant at Lake Ferrowind"
NEW_BODY = (
    "Quorvane Systems opened its third battery plant on the shore of Lake Ferrowind on Monday. "
    "The Lake Ferrowind plant will employ 740 people when it reaches full output next year."
)
NEW_QUESTION = "How many people will the Lake Ferrowind plant employ?"


@pytest.fixture
def target(tmp_path: Path) -> Iterator[MilvusTarget]:
    where = MilvusTarget(str(tmp_path / "bot.db"))
    yield where
    release(where)


def ask(index: Any, embedder: Any, question: str, reader: Any = None) -> Any:
    return answer(index, embedder, Ask(question, 3), reader=reader)


def test_seed_on_milvus_lite_answers_as_faiss_does(
    target: MilvusTarget,
    tmp_path: Path,
    seed_index: Path,
    real_embedder,
    real_reader,
) -> None:
    from bot.indexing.versions import open_index

    report = MilvusStore(target, Path(tmp_path / "index")).build(SEED_CORPUS, real_embedder)
    assert report.version.endswith("+r000000") and report.passages > 0
    assert not (tmp_path / "index" / "CURRENT").exists()  # no FAISS version was written
    index = MilvusStore(target, tmp_path / "index").open()
    on_milvus, on_faiss = ask(index, real_embedder, QUESTION), ask(open_index(seed_index), real_embedder, QUESTION)
    assert on_milvus.answered and "Masayoshi Son" in on_milvus.quotes[0].text
    assert on_milvus.quotes[0].model_dump() == on_faiss.quotes[0].model_dump()
    # The reader rescores Milvus candidates as it does FAISS's: this question is answered only with it.
    years = "Over how many years will the money be invested?"
    read = ask(index, real_embedder, years, real_reader)
    assert read.answered and "over the next four years" in read.quotes[0].text
    assert read.model_dump(exclude={"took_ms"}) == (
        ask(open_index(seed_index), real_embedder, years, real_reader).model_dump(exclude={"took_ms"})
    )
    assert len(index.articles) == 1 and len(index) == report.passages
    # A date filter runs in the engine: nothing before the seed's day.
    assert answer(index, real_embedder, Ask(QUESTION, 3, until=dt.date.fromisoformat("2024-12-31"))).quotes == []


# Made-up articles about made-up places: some questions share rare words with one article
# (a BM25 score far above the rest) and meaning with others, where fusing by rank and fusing by
# score order the candidates differently.
FUSION_ARTICLES = [
    (
        "Harbour pilots of Port Esselin strike",
        "The harbour pilots of Port Esselin walked out on Tuesday over night-shift pay. "
        "Container ships queued outside the breakwater while the port authority looked for relief pilots.",
    ),
    (
        "Esselin ferry line adds a night crossing",
        "The Esselin ferry line will add a night crossing to the island of Marrow Key from June. "
        "Tickets for the crossing go on sale next week, the operator Brinstead Ferries said.",
    ),
    (
        "Brinstead Ferries orders two electric ships",
        "Brinstead Ferries ordered two battery-electric ships from the Ollaby yard for its island routes. "
        "The first ship is due in 2027 and will carry 400 passengers and 60 cars.",
    ),
    (
        "Marrow Key votes on a new harbour wall",
        "Residents of Marrow Key voted to rebuild the harbour wall damaged in the winter storms. "
        "The council will borrow the money over twenty years.",
    ),
    (
        "Ollaby yard hires welders",
        "The Ollaby shipyard is hiring 120 welders after winning orders for ferries and a research vessel. "
        "Training starts in the yard's own school in the autumn.",
    ),
    (
        "Storm closes the Esselin breakwater road",
        "Waves overtopped the Esselin breakwater on Sunday and the road along it was closed. "
        "Engineers said the sea wall held and the road would reopen once debris is cleared.",
    ),
    (
        "Quillsby lighthouse keeper retires",
        "Dorrit Vane, the last keeper of the Quillsby lighthouse, retired after thirty-one years. "
        "The light was automated in 2019 but she stayed on to look after the tower.",
    ),
    (
        "Port Esselin fish market moves indoors",
        "The Port Esselin fish market moved into a converted warehouse on the quay. "
        "Traders said the new hall keeps the catch cooler in summer.",
    ),
    (
        "Tobbering cheese fair returns",
        "The Tobbering cheese fair returns to the market square of Tobbering on Saturday. "
        "Tobbering farmers bring blue and smoked cheeses, and the fair ends with a brass band.",
    ),
    (
        "A warden for the Fennick Point beacon",
        "Ansel Roe has tended the beacon on Fennick Point for twelve years, climbing the tower each evening "
        "to trim the lamp. Fishing crews say the beam guides them home through the reef.",
    ),
    (
        "Sailing race around Marrow Key",
        "The yearly sailing race around Marrow Key starts at dawn on the first Sunday of July. "
        "Forty yachts entered this year, and the course passes the Quillsby lighthouse.",
    ),
]
FUSION_QUESTIONS = [
    "Who kept the Quillsby lighthouse?",
    "Why did ships queue outside Port Esselin?",
    "How many passengers will the electric ferry carry?",
    "When will the breakwater road reopen?",
    "What did Marrow Key residents vote for?",
    "How many welders is the shipyard hiring?",
    "Where did the fish market move?",
    "Which company runs the ferry to Marrow Key?",
    # BM25's best by far (the cheese fair: "Tobbering", "brass", "band") is third by meaning; the
    # lighthouse story is first by meaning and second by BM25. Rank fusion puts the lighthouse
    # first, score fusion the fair.
    "Who kept the lighthouse before the Tobbering brass band?",
    "Who kept the lighthouse before the Tobbering band played?",
]


def _rank_fused(candidates: list[Any]) -> list[int]:
    """The same candidates ordered by reciprocal rank (k = 60) of their two scores, as the
    engine's RRF ranker would order them."""
    by_dense = sorted(candidates, key=lambda c: -c.dense)
    by_keyword = sorted((c for c in candidates if c.keyword > 0), key=lambda c: -c.keyword)
    score = {c.passage: 1 / (61 + by_dense.index(c)) for c in candidates}
    for rank, c in enumerate(by_keyword):
        score[c.passage] += 1 / (61 + rank)
    return sorted(score, key=lambda p: -score[p])


def test_milvus_candidates_are_scored_and_fused_as_on_faiss(
    target: MilvusTarget, tmp_path: Path, real_embedder
) -> None:
    from bot.answer.retrieval import search
    from bot.indexing.faiss_build import build_index
    from bot.indexing.keyword import query_tokens
    from bot.indexing.milvus_index import open_milvus_index
    from bot.indexing.versions import open_index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for n, (title, body) in enumerate(FUSION_ARTICLES):
        write_article(corpus, f"2025-02-{n + 1:02d}-story.md", title, body, date=f"2025-02-{n + 1:02d}")
    build_index(corpus, tmp_path / "faiss", real_embedder)
    MilvusStore(target, Path(tmp_path / "milvus")).build(corpus, real_embedder)
    on_faiss, on_milvus = open_index(tmp_path / "faiss"), open_milvus_index(target)
    assert [a.id for a in on_faiss.articles] == [a.id for a in on_milvus.articles]
    tops_differ = 0
    for question in FUSION_QUESTIONS:
        vector = real_embedder.encode([question])[0]
        tokens = query_tokens(question)
        expected = search(on_faiss, vector, tokens, 8)
        found = search(on_milvus, vector, tokens, 8)
        assert [c.passage for c in found] == [c.passage for c in expected], question
        for f, e in zip(found, expected, strict=True):
            assert f.dense == pytest.approx(e.dense, abs=1e-5) and f.keyword == pytest.approx(e.keyword, rel=1e-4)
            assert f.fused == pytest.approx(e.fused, abs=1e-4)
        tops_differ += _rank_fused(expected)[0] != expected[0].passage
        assert answer(on_milvus, real_embedder, Ask(question, 3)).model_dump(exclude={"took_ms"}) == (
            answer(on_faiss, real_embedder, Ask(question, 3)).model_dump(exclude={"took_ms"})
        ), question
    # The corpus is one where rank fusion would have put another passage first.
    assert tops_differ >= 1


def test_add_and_delete_touch_only_that_articles_rows_and_survive_a_restart(
    target: MilvusTarget,
    seed_corpus: Path,
    tmp_path: Path,
    real_embedder,
) -> None:
    from bot.indexing.milvus_index import open_milvus_index

    index_dir = tmp_path / "index"
    first = MilvusStore(target, Path(index_dir)).build(seed_corpus, real_embedder)
    before = open_milvus_index(target)
    seed_rows = set(before.passage_keys.tolist())

    write_article(seed_corpus, "2025-03-03-quorvane.md", NEW_TITLE, NEW_BODY, date="2025-03-03")
    assert not MilvusStore(target, index_dir).is_current(seed_corpus, real_embedder.name)
    added = MilvusStore(target, Path(index_dir)).build(seed_corpus, real_embedder)
    # In place: the same version, one revision on; only the new article was embedded.
    assert added.version.split("+")[0] == first.version.split("+")[0] and added.version > first.version
    assert 0 < added.embedded <= 6
    assert MilvusStore(target, index_dir).is_current(seed_corpus, real_embedder.name)
    after = open_milvus_index(target)
    assert seed_rows < set(after.passage_keys.tolist())  # the seed's rows untouched, new ones added
    result = ask(after, real_embedder, NEW_QUESTION)
    assert result.quotes[0].article.id == "2025-03-03-quorvane" and "740 people" in result.quotes[0].text

    # Restart: the engine stops with the client, the file keeps everything.
    release(target)
    reopened = open_milvus_index(target)
    assert reopened.version == after.version
    assert ask(reopened, real_embedder, NEW_QUESTION).quotes[0].text == result.quotes[0].text

    (seed_corpus / "2025-03-03-quorvane.md").unlink()
    removed = MilvusStore(target, Path(index_dir)).build(seed_corpus, real_embedder)
    assert removed.embedded == 0 and removed.version > added.version
    final = open_milvus_index(target)
    assert set(final.passage_keys.tolist()) == seed_rows
    assert all(q.article.id != "2025-03-03-quorvane" for q in ask(final, real_embedder, NEW_QUESTION).quotes)


def test_full_build_is_a_new_version_and_old_ones_are_dropped_after_the_grace(
    target: MilvusTarget,
    tmp_path: Path,
    real_embedder,
) -> None:
    from bot.indexing.milvus_store import client

    index_dir = tmp_path / "index"
    versions = [
        MilvusStore(target, Path(index_dir)).build(SEED_CORPUS, real_embedder, full=True).version for _ in range(5)
    ]
    assert len({v.split("+")[0] for v in versions}) == 5
    pointer = read_pointer(target)
    assert pointer is not None and pointer["version"] == versions[-1].split("+")[0]
    names = client(target).list_collections()
    assert len([n for n in names if n.endswith("_p")]) == 5  # within the grace period nothing is dropped
    collect_garbage(target, keep_replaced_seconds=0)
    kept = sorted(n for n in client(target).list_collections() if n.endswith("_p"))
    assert len(kept) == 3 and kept[-1].startswith("bot_" + versions[-1].split("+")[0].replace("-", "_"))


def test_a_lite_file_belongs_to_one_process(target: MilvusTarget, tmp_path: Path) -> None:
    from bot.indexing.milvus_store import client

    client(target)  # this process holds the file
    code = (
        "import sys; from bot.indexing.milvus_store import MilvusTarget, client\n"
        "from bot.errors import StoreError\n"
        f"try:\n    client(MilvusTarget({target.uri!r}))\nexcept StoreError as e:\n    print(e); sys.exit(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "one process at a time" in done.stdout


# --------------------------------------------------------------------------- across processes


@pytest.fixture
def lite_server(tmp_path: Path) -> Iterator[str]:
    """Milvus Lite serving a .db file on a loopback port, in its own process."""
    from milvus_lite.server import Server

    logs = Path(tempfile.gettempdir()) / "bot-milvus-logs"
    logs.mkdir(exist_ok=True)
    os.environ.setdefault("GLOG_log_dir", str(logs))
    port = free_port()
    server = Server(str(tmp_path / "served.db"), f"127.0.0.1:{port}")
    assert server.init() and server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _env(uri: str, index_dir: Path, corpus: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLACK_"))}
    return env | {
        "HF_HUB_OFFLINE": "1",
        "BOT_SEARCH_BACKEND": "milvus",
        "BOT_MILVUS_URI": uri,
        "BOT_INDEX_DIR": str(index_dir),
        "BOT_CORPUS_DIR": str(corpus),
    }


def test_serve_follows_versions_published_by_bot_index_with_no_failed_request(
    lite_server: str,
    seed_corpus: Path,
    tmp_path: Path,
) -> None:
    env = _env(lite_server, tmp_path / "index", seed_corpus)
    bot = [sys.executable, "-m", "bot"]
    done = subprocess.run([*bot, "index"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")  # a pipe nobody reads would fill and block the server
    server = subprocess.Popen([*bot, "serve", "--port", str(port)], env=env, cwd=tmp_path, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        ready = wait_until(lambda: _ready(url), timeout=180)
        first = ready["index_version"]
        answer = httpx.post(url + "/ask", json={"question": QUESTION, "k": 3}, timeout=60).json()
        assert "Masayoshi Son" in answer["quotes"][0]["text"]

        failures: list[str] = []
        asked = [0]
        stop = threading.Event()

        def keep_asking() -> None:
            with httpx.Client(timeout=60) as http:
                while not stop.is_set():
                    response = http.post(url + "/ask", json={"question": QUESTION, "k": 3})
                    asked[0] += 1
                    if response.status_code != 200 or "Masayoshi Son" not in response.json()["quotes"][0]["text"]:
                        failures.append(f"{response.status_code}: {response.text[:200]}")

        asker = threading.Thread(target=keep_asking)
        asker.start()
        try:
            # A whole new version (new collections, pointer switched) from a separate writer process.
            done = subprocess.run(
                [*bot, "index", "--full"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
            )
            assert done.returncode == 0, done.stderr
            published = time.monotonic()
            second = wait_until(lambda: _changed(url, first), timeout=30)
            assert time.monotonic() - published < 10
            # Then one article added in place by the indexer: the server reloads that revision.
            write_article(seed_corpus, "2025-03-03-quorvane.md", NEW_TITLE, NEW_BODY, date="2025-03-03")
            done = subprocess.run([*bot, "index"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr
            wait_until(lambda: _changed(url, second), timeout=30)
        finally:
            stop.set()
            asker.join(timeout=60)
        assert asked[0] > 0 and not failures, failures[:3]
        found = httpx.post(url + "/ask", json={"question": NEW_QUESTION, "k": 1}, timeout=60).json()
        assert found["quotes"][0]["article"]["id"] == "2025-03-03-quorvane"
        articles = httpx.get(url + "/articles", timeout=30).json()
        assert articles["count"] == 2
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _ready(url: str) -> dict[str, Any] | None:
    try:
        response = httpx.get(url + "/readyz", timeout=5)
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


def _changed(url: str, version: str) -> str | None:
    now = (_ready(url) or {}).get("index_version")
    return now if now and now != version else None


def test_post_and_delete_articles_on_a_lite_file(
    target: MilvusTarget,
    seed_corpus: Path,
    tmp_path: Path,
    real_embedder,
) -> None:
    """With a .db file the server is the one process that opens it: it publishes POST /articles itself."""
    from fastapi.testclient import TestClient

    from bot.http.app import create_app
    from bot.settings import Settings

    MilvusStore(target, Path(tmp_path / "index")).build(seed_corpus, real_embedder)
    settings = Settings(
        corpus_dir=seed_corpus,
        index_dir=tmp_path / "index",
        api_key="s3cret",
        search_backend="milvus",
        milvus_uri=target.uri,
    )
    auth = {"Authorization": "Bearer s3cret"}
    with TestClient(create_app(settings, embedder=real_embedder)) as http:
        wait_until(lambda: http.get("/readyz").status_code == 200, timeout=120)
        before = http.get("/readyz").json()["index_version"]
        posted = http.post("/articles", json={"title": NEW_TITLE, "text": NEW_BODY, "date": "2025-03-03"}, headers=auth)
        assert posted.status_code == 201, posted.text
        change = posted.json()
        assert change["passages"] >= 1 and change["index_version"] > before
        assert change["index_version"].split("+")[0] == before.split("+")[0]  # in place, not a rebuild
        asked = http.post("/ask", json={"question": NEW_QUESTION, "k": 1}, headers=auth)
        assert asked.status_code == 200, asked.text
        top = asked.json()["quotes"][0]
        assert top["article"]["id"] == change["id"] and "740 people" in top["text"]
        assert http.delete(f"/articles/{change['id']}", headers=auth).status_code == 200
        quotes = http.post("/ask", json={"question": NEW_QUESTION, "k": 3}, headers=auth).json()["quotes"]
        assert all(q["article"]["id"] != change["id"] for q in quotes)
        assert (
            "Masayoshi Son" in http.post("/ask", json={"question": QUESTION}, headers=auth).json()["quotes"][0]["text"]
        )
