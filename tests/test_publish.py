"""Publishing without downtime: new versions reach running servers, and no request fails."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from bot.answer.answering import answer
from bot.answer.asking import Ask
from bot.http.app import create_app
from bot.indexing.faiss_build import build_index
from bot.indexing.versions import collect_garbage, open_index
from bot.settings import Settings
from tests.conftest import FakeEmbedder, ServerThread, served_process, wait_until, write_article
from tests.test_ingest import ABILENE, Site, article_html

NAMES = ["alpha", "bravo", "charlie"]
QUESTION = "Where are the alpha, bravo and charlie campuses being built?"


@pytest.mark.slow
def test_a_stream_of_questions_sees_no_failure_while_three_versions_are_published(
    seed_corpus: Path, fake_index: Path, fake_embedder: FakeEmbedder
) -> None:
    app = create_app(Settings(index_dir=fake_index), embedder=fake_embedder)
    answers: list[set[str]] = []
    failures: list[str] = []
    stop = threading.Event()

    def ask_forever(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                try:
                    response = client.post("/ask", json={"question": QUESTION, "k": 5})
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    failures.append(f"{response.status_code}: {response.text}")
                    continue
                answers.append({q["article"]["id"] for q in response.json()["quotes"]})

    with ServerThread(app) as server:
        server.wait_ready()
        asker = threading.Thread(target=ask_forever, args=(server.url,))
        asker.start()
        try:
            for name in NAMES:
                write_article(
                    seed_corpus, f"{name}.md", f"The {name} campus", f"The {name} campus is built in {name} town."
                )
                build_index(seed_corpus, fake_index, fake_embedder)
                seen = len(answers)
                wait_until(lambda name=name, seen=seen: any(name in ids for ids in answers[seen:]), timeout=30)
        finally:
            stop.set()
            asker.join(timeout=60)
    assert not failures, failures[:5]
    assert len(answers) > 10
    assert {"alpha", "bravo", "charlie"} <= answers[-1]
    assert len(list((fake_index / "versions").iterdir())) == 4  # replaced a moment ago: kept for loaders


def test_collected_versions_keep_serving_requests_already_holding_them(
    seed_corpus: Path, fake_index: Path, fake_embedder: FakeEmbedder
) -> None:
    held = open_index(fake_index)  # a request in flight holds this version
    for name in NAMES:
        write_article(seed_corpus, f"{name}.md", f"The {name} campus", f"The {name} campus is built in {name} town.")
        build_index(seed_corpus, fake_index, fake_embedder)
    assert (fake_index / "versions" / held.version).is_dir(), "replaced seconds ago: kept for servers loading it"
    collect_garbage(fake_index, keep_replaced_seconds=0)
    assert not (fake_index / "versions" / held.version).exists()
    assert len(list((fake_index / "versions").iterdir())) == 3
    result = answer(held, fake_embedder, Ask("Who will chair Stargate?", 2))  # memory-mapped files stay readable
    assert result.quotes and all(q.article.id == held.articles[0].id for q in result.quotes)


def key_headers(key: str = "s3cret") -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def articles_client(seed_corpus: Path, fake_index: Path, fake_embedder: FakeEmbedder) -> Iterator[TestClient]:
    settings = Settings(corpus_dir=seed_corpus, index_dir=fake_index, api_key="s3cret", allow_private_urls=True)
    with TestClient(create_app(settings, embedder=fake_embedder)) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        yield client


def test_post_and_delete_articles(articles_client: TestClient) -> None:
    client = articles_client
    body = {
        "title": "Ohio campus",
        "text": "The Ohio campus opens in 2027.\n\nIt will employ 800 people.",
        "date": "2025-03-01",
    }
    assert client.post("/articles", json=body).status_code == 401
    assert client.post("/articles", json=body, headers=key_headers("wrong")).status_code == 401
    created = client.post("/articles", json=body, headers=key_headers())
    assert created.status_code == 201, created.text
    change = created.json()
    assert change["id"] == "2025-03-01-ohio-campus" and change["status"] == "added" and change["passages"] >= 1
    assert change["index_version"] == client.get("/readyz").json()["index_version"]
    quotes = client.post(
        "/ask", json={"question": "How many people will the Ohio campus employ?"}, headers=key_headers()
    ).json()["quotes"]
    assert quotes[0]["article"]["id"] == change["id"]
    listed = client.get("/articles").json()
    assert set(listed) == {"count", "articles"} and listed["count"] == 2
    assert set(listed["articles"][0]) == {"id", "title", "date", "url", "source", "passages"}
    again = client.post("/articles", json=body, headers=key_headers())
    assert again.status_code == 200 and again.json()["status"] == "duplicate" and again.json()["id"] == change["id"]
    bad = client.post("/articles", json={"title": "No text"}, headers=key_headers())
    assert bad.status_code == 422 and "no text" in bad.json()["error"]
    assert (
        client.post("/articles", json={"title": "T", "text": "x", "date": "soon"}, headers=key_headers()).status_code
        == 422
    )
    deleted = client.delete(f"/articles/{change['id']}", headers=key_headers())
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    assert client.get("/articles").json()["count"] == 1
    assert client.delete(f"/articles/{change['id']}", headers=key_headers()).status_code == 404
    last = client.get("/articles").json()["articles"][0]["id"]
    assert client.delete(f"/articles/{last}", headers=key_headers()).status_code == 409


def test_post_article_by_url(articles_client: TestClient) -> None:
    with Site() as site:
        url = site.page("/abilene", article_html("Stargate breaks ground in Abilene", ABILENE, date="2025-02-03"))
        created = articles_client.post("/articles", json={"url": url}, headers=key_headers())
        pdf = site.page("/paper.pdf", b"%PDF", content_type="application/pdf")
        refused = articles_client.post("/articles", json={"url": pdf}, headers=key_headers())
    assert created.status_code == 201, created.text
    assert created.json()["id"] == "2025-02-03-stargate-breaks-ground-in-abilene"
    assert refused.status_code == 422 and "application/pdf" in refused.json()["error"]


def test_changing_articles_is_refused_without_a_server_key(fake_index: Path, fake_embedder: FakeEmbedder) -> None:
    with TestClient(create_app(Settings(index_dir=fake_index), embedder=fake_embedder)) as client:
        response = client.post("/articles", json={"title": "T", "text": "Text."}, headers=key_headers())
        assert response.status_code == 403 and "set BOT_API_KEY" in response.json()["error"]
        assert client.delete("/articles/x").status_code == 403


@pytest.mark.slow
def test_an_article_posted_to_one_server_is_answered_by_another_process(
    seed_corpus: Path, tmp_path: Path, real_embedder: object
) -> None:
    index_dir = tmp_path / "index"
    build_index(seed_corpus, index_dir, real_embedder)  # type: ignore[arg-type]
    try:
        with served_process({"BOT_INDEX_DIR": str(index_dir), "BOT_CORPUS_DIR": str(seed_corpus)}) as second:
            settings = Settings(corpus_dir=seed_corpus, index_dir=index_dir, api_key="s3cret")
            with ServerThread(create_app(settings, embedder=real_embedder)) as server:  # type: ignore[arg-type]
                server.wait_ready()
                body = {
                    "title": "Ohio campus announced",
                    "text": "The fourth Stargate campus will be built in Lordstown, Ohio.\n\n"
                    "It is expected to open in 2027 and to employ 800 people.",
                    "date": "2025-03-01",
                }
                created = httpx.post(server.url + "/articles", json=body, headers=key_headers(), timeout=120)
                assert created.status_code == 201, created.text
                article_id = created.json()["id"]
            wait_until(lambda: httpx.get(second + "/readyz", timeout=2).status_code == 200, timeout=120)

            def answered() -> bool:
                reply = httpx.post(
                    second + "/ask", json={"question": "Where will the Ohio campus be built?"}, timeout=30
                )
                return reply.json()["quotes"][0]["article"]["id"] == article_id

            wait_until(answered, timeout=30)
            assert httpx.get(second + "/readyz").json()["index_version"] == created.json()["index_version"]
    finally:
        shutil.rmtree(index_dir, ignore_errors=True)


@pytest.mark.slow
def test_concurrent_posts_are_all_searchable(seed_corpus: Path, fake_index: Path, fake_embedder: FakeEmbedder) -> None:
    settings = Settings(corpus_dir=seed_corpus, index_dir=fake_index, api_key="s3cret")
    results: dict[str, httpx.Response] = {}

    def post(name: str, url: str) -> None:
        body = {
            "title": f"The {name} campus",
            "text": f"The {name} campus is built in {name} town.",
            "date": "2025-04-01",
        }
        results[name] = httpx.post(url + "/articles", json=body, headers=key_headers(), timeout=120)

    with ServerThread(create_app(settings, embedder=fake_embedder)) as server:
        server.wait_ready()
        posters = [threading.Thread(target=post, args=(name, server.url)) for name in NAMES]
        for poster in posters:
            poster.start()
        for poster in posters:
            poster.join(timeout=120)
        assert sorted(r.status_code for r in results.values()) == [201, 201, 201], [r.text for r in results.values()]
        listed = {a["id"]: a["passages"] for a in httpx.get(server.url + "/articles").json()["articles"]}
    for name, response in results.items():
        assert listed[response.json()["id"]] == response.json()["passages"] >= 1, name


def test_a_fetched_page_that_is_not_an_article_is_refused_and_nothing_is_added(articles_client: TestClient) -> None:
    before = articles_client.get("/articles").json()["count"]
    with Site() as site:
        links = "".join(f"<li><a href='/story/{n}'>Quenby harbour news {n}</a></li>" for n in range(12))
        front = site.page("/", f"<html><head><title>Quenby Gazette</title></head><body><ul>{links}</ul></body></html>")
        refused = articles_client.post("/articles", json={"url": front}, headers=key_headers())
    assert refused.status_code == 422
    assert refused.json()["error"].startswith(f"{front}: the page is not an article: its main text is ")
    assert "0 sentences" in refused.json()["error"]
    # Sent with a title and text, the same words are the sender's article: no such check.
    fields = {"title": "Quenby Gazette", "text": "Quenby harbour news."}
    assert articles_client.post("/articles", json=fields, headers=key_headers()).status_code == 201
    assert articles_client.get("/articles").json()["count"] == before + 1


@pytest.mark.parametrize(
    ("dates", "newest", "expected"),
    [
        (["2025-02-01", None, "2025-03-05T09:30:00", "2025-01-09"], 2, ["2025-03-05T09:30:00", "2025-02-01"]),
        (["2025-02-01", None, "2025-01-09"], 5, ["2025-02-01", "2025-01-23", "2025-01-09", None]),  # undated last
    ],
)
def test_the_newest_articles_are_listed_first_and_count_stays_the_total(
    dates: list[str | None], newest: int, expected: list[str | None], seed_corpus: Path, tmp_path: Path
) -> None:
    for n, date in enumerate(dates):
        extra = {"date": date} if date else {}
        path = seed_corpus / f"made-up-{n}.md"
        header = "\n".join(["---", f"title: Brackenmoor bulletin {n}", *(f"{k}: {v}" for k, v in extra.items()), "---"])
        path.write_text(f"{header}\nThe Brackenmoor bulletin number {n} was read out.\n", encoding="utf-8")
    build_index(seed_corpus, tmp_path / "index", FakeEmbedder())
    with TestClient(create_app(Settings(index_dir=tmp_path / "index"), embedder=FakeEmbedder())) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        listed = client.get("/articles", params={"newest": newest}).json()
        everything = client.get("/articles").json()
        too_many = client.get("/articles", params={"newest": 101})
        none = client.get("/articles", params={"newest": 0})
    assert listed["count"] == everything["count"] == len(dates) + 1
    assert [a["date"] for a in listed["articles"]] == expected
    assert {a["id"] for a in listed["articles"]} <= {a["id"] for a in everything["articles"]}
    assert too_many.status_code == none.status_code == 422 and "newest" in none.json()["error"]
