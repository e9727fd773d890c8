"""The web page, driven in headless Chromium (Debian's package) against real servers on loopback.

One browser per module, a fresh context (cookies, sessionStorage) per test. Skipped with the reason
when /usr/bin/chromium is missing, unless BOT_REQUIRE_BROWSER=1 (CI), where that is a failure.
`UPDATE_SCREENSHOTS=1` rewrites docs/screenshot-web.png from the answering test.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import httpx
import pytest
from playwright.sync_api import expect

from bot.http.app import create_app
from bot.settings import Settings
from tests.conftest import (
    FERRY_QUESTION,
    ROOT,
    SEED_CORPUS,
    FakeEmbedder,
    ServerThread,
    wait_until,
    write_article,
    write_ferry_reports,
)

CHROMIUM = Path("/usr/bin/chromium")
# Read at import: the autouse fixture clears BOT_* variables before each test.
REQUIRE_BROWSER = os.environ.get("BOT_REQUIRE_BROWSER") == "1"
UPDATE_SCREENSHOTS = os.environ.get("UPDATE_SCREENSHOTS") == "1"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE_DIR = Path(__file__).resolve().parent / "web_axe"
SCREENSHOT = ROOT / "docs" / "screenshot-web.png"
TIMEOUT_MS = 20_000
CHAIR = "Who will chair Stargate?"
OFF_TOPIC = "What is the best recipe for banana bread?"

pytestmark = pytest.mark.slow


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if REQUIRE_BROWSER:
            pytest.fail(f"{CHROMIUM} is missing and BOT_REQUIRE_BROWSER=1: apt-get install chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); set BOT_REQUIRE_BROWSER=1 to fail instead")
    from playwright.sync_api import sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


class Page:
    """A Playwright page plus what went wrong in it (script errors, CSP violations).

    Waits use locators and `expect`: `wait_for_function` with a string needs eval, which the
    page's CSP rightly forbids.
    """

    def __init__(self, browser: Any, **context: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1200, "height": 900}, **context)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("pageerror", lambda exc: self.problems.append(f"script error: {exc}"))
        self.page.on(
            "console",
            lambda msg: (
                self.problems.append(f"console: {msg.text}")
                if msg.type == "error" and "Content Security Policy" in msg.text
                else None
            ),
        )


@pytest.fixture
def web(browser: Any) -> Iterator[Page]:
    opened = Page(browser)
    yield opened
    opened.context.close()
    assert not opened.problems, opened.problems


@pytest.fixture(scope="module")
def real_server(seed_index: Path, real_embedder: Any) -> Iterator[ServerThread]:
    """The seed corpus with the bundled model: what `make run` serves."""
    with ServerThread(create_app(Settings(index_dir=seed_index), embedder=real_embedder)) as server:
        server.wait_ready()
        yield server


@pytest.fixture(scope="module")
def fake_seed_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bot.indexing.faiss_build import build_index

    index_dir = tmp_path_factory.mktemp("web-fake") / "index"
    build_index(SEED_CORPUS, index_dir, FakeEmbedder())
    return index_dir


def fake_server(index_dir: Path, **settings: Any) -> ServerThread:
    return ServerThread(create_app(Settings(index_dir=index_dir, **settings), embedder=FakeEmbedder()))


def ask(web: Page, server: ServerThread, question: str) -> None:
    """Open the page, type the question and press Enter, like a person."""
    web.page.goto(server.url + "/")
    box = web.page.get_by_label("Your question")
    box.fill(question)
    box.press("Enter")


# ---- the page itself ------------------------------------------------------------------------------


def test_page_and_assets_are_served_by_the_app_with_a_strict_csp(fake_seed_index: Path) -> None:
    with fake_server(fake_seed_index) as server:
        page = httpx.get(server.url + "/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assets = re.findall(r'(?:src|href)="(static/[^"]+)"', page.text)
        assert len(assets) == 2, assets
        for src in assets:
            asset = httpx.get(f"{server.url}/{src}")
            assert asset.status_code == 200, src
            assert asset.headers["x-content-type-options"] == "nosniff"
        assert not re.search(r"https?://", page.text), "the page must not load anything from elsewhere"
        assert httpx.get(server.url + "/static/../app.py").status_code == 404
        assert httpx.get(server.url + "/static/nothing.js").status_code == 404
        metrics = httpx.get(server.url + "/metrics").text
        assert 'route="/static",status="200"' in metrics and 'route="/",status="200"' in metrics


def test_asking_shows_the_highlighted_quote_and_its_source(web: Page, real_server: ServerThread) -> None:
    page = web.page
    ask(web, real_server, CHAIR)
    card = page.locator("#results .card").first
    mark = card.locator("mark").first
    mark.wait_for()
    assert mark.inner_text().startswith("Masayoshi Son")
    # The marked quote sits inside its passage, exactly as the API cut them from the article.
    best = httpx.post(real_server.url + "/ask", json={"question": CHAIR, "k": 3}).json()["quotes"][0]
    assert card.locator(".quote").inner_text() == best["text"]
    assert card.locator("blockquote").inner_text() == best["passage"]
    # The post gives no URL of its own: the citation is its title and date, with no invented link.
    assert card.locator(".source-title").inner_text() == "OpenAI, Softbank launch Stargate Project"
    assert card.locator("a.source-title").count() == 0
    assert card.locator("time").get_attribute("datetime") == "2025-01-23"
    assert re.fullmatch(r"\d{1,3}% confidence", card.locator(".score").inner_text().strip())
    width = card.locator(".bar-fill").evaluate("el => el.getBoundingClientRect().width")
    assert width > 0
    assert "best first" in page.locator("#status").inner_text()
    # Asking updated the address, so it can be shared; the box keeps focus for the next question.
    assert parse_qs(urlparse(page.url).query) == {"q": [CHAIR]}
    assert page.evaluate("document.activeElement.id") == "q"
    assert CHAIR in page.title()

    shot = page.screenshot(type="png")
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", shot[16:24]) == (1200, 900)
    if UPDATE_SCREENSHOTS:
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.write_bytes(shot)


def test_the_short_answer_is_marked_inside_the_highlighted_sentence(web: Page, real_server: ServerThread) -> None:
    question = "How much money will Stargate invest?"
    best = httpx.post(real_server.url + "/ask", json={"question": question, "k": 3}).json()["quotes"][0]
    assert best["answer"]["text"] == "US$500 B"
    ask(web, real_server, question)
    card = web.page.locator("#results .card").first
    span = card.locator("mark strong.answer-span")
    span.wait_for()
    assert span.count() == 1
    assert span.inner_text() == "US$500 B"
    # The sentence around it is still the whole quote, marked, and the span does not alter the text.
    assert card.locator(".quote").inner_text() == best["text"]
    weight = span.evaluate("el => getComputedStyle(el).fontWeight")
    assert int(weight) >= 700


def test_off_topic_question_says_not_found_and_shows_the_nearest_passages(web: Page, real_server: ServerThread) -> None:
    page = web.page
    ask(web, real_server, OFF_TOPIC)
    page.locator(".not-found").wait_for()
    assert "Not found in the articles" in page.locator(".not-found h2").inner_text()
    assert "couldn't find that" in page.locator(".not-found p").inner_text()
    nearest = page.locator(".nearest .card")
    assert nearest.count() >= 1
    assert nearest.first.locator(".source-title").inner_text() == "OpenAI, Softbank launch Stargate Project"
    assert page.locator("#status").inner_text() == "Not found in the articles."


def test_a_shared_link_runs_its_question_and_history_goes_back(web: Page, real_server: ServerThread) -> None:
    page = web.page
    page.goto(real_server.url + "/?q=" + quote(CHAIR))
    page.locator("#results mark").first.wait_for()
    assert page.get_by_label("Your question").input_value() == CHAIR
    assert "Masayoshi Son" in page.locator("#results mark").first.inner_text()
    page.get_by_role("button", name="How much will the Stargate Project invest?").click()
    page.wait_for_url(re.compile(r"q=How"))
    expect(page.get_by_label("Your question")).to_have_value("How much will the Stargate Project invest?")
    page.locator("#results mark").first.wait_for()
    page.go_back()
    expect(page.get_by_label("Your question")).to_have_value(CHAIR)
    expect(page.locator("#results mark").first).to_contain_text("Masayoshi Son")


def test_back_to_the_empty_page_clears_the_answer(web: Page, real_server: ServerThread) -> None:
    page = web.page
    page.goto(real_server.url + "/")
    page.get_by_role("button", name=CHAIR).click()
    expect(page.locator("#results mark").first).to_contain_text("Masayoshi Son")
    page.go_back()
    expect(page.locator("#results > *")).to_have_count(0)
    expect(page.get_by_label("Your question")).to_have_value("")
    page.go_forward()
    expect(page.locator("#results mark").first).to_contain_text("Masayoshi Son")


def test_keyboard_slash_focuses_the_box_and_tab_order_follows_the_page(web: Page, real_server: ServerThread) -> None:
    page = web.page
    page.goto(real_server.url + "/")
    page.locator("body").click(position={"x": 5, "y": 600})
    assert page.evaluate("document.activeElement.id") != "q"
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    assert page.get_by_label("Your question").input_value() == "", "'/' must not be typed into the box"
    page.keyboard.type("a/b")
    assert page.get_by_label("Your question").input_value() == "a/b", "in the box, '/' is a character"
    # Focus order follows the page: from the box, forwards to Ask and the examples, backwards to the nav.
    page.goto(real_server.url + "/")
    assert page.evaluate("document.activeElement.id") == "q", "the box has focus on arrival"
    focused = "document.activeElement.id || document.activeElement.textContent.trim()"
    forwards, backwards = [], []
    for _ in range(2):
        page.keyboard.press("Tab")
        forwards.append(page.evaluate(focused))
    page.get_by_label("Your question").focus()
    for _ in range(4):
        page.keyboard.press("Shift+Tab")
        backwards.append(page.evaluate(focused))
    assert forwards == ["ask-button", "Who will chair Stargate?"]
    assert backwards == ["nav-articles", "nav-ask", "Stargate Q&A", "Skip to the question"]


def test_invalid_question_shows_the_servers_reason(web: Page, real_server: ServerThread) -> None:
    page = web.page
    ask(web, real_server, "x" * 1001)
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "The server could not take that question" in alert.inner_text()
    assert "the limit is 1000" in alert.inner_text()
    ask(web, real_server, "   ")
    page.get_by_role("alert").wait_for()
    assert "Type a question first." in page.get_by_role("alert").inner_text()


def test_loading_state_is_shown_while_the_server_works(web: Page, fake_seed_index: Path) -> None:
    page = web.page
    held: list[Any] = []
    with fake_server(fake_seed_index) as server:
        server.wait_ready()
        page.route("**/ask", lambda route: held.append(route))
        ask(web, server, CHAIR)
        # Playwright's sync API delivers the route callback only while it is called into, so poll
        # through it (a plain sleeping poll would never see the request).
        deadline = time.monotonic() + 10
        while not held and time.monotonic() < deadline:
            page.wait_for_timeout(20)
        assert held, "the page never sent /ask"
        assert page.locator("#results").get_attribute("aria-busy") == "true"
        assert "Searching the articles" in page.locator("#status").inner_text()
        held[0].continue_()
        page.wait_for_selector("#results[aria-busy='false']")
        page.locator("#results .card").first.wait_for()


def test_rate_limit_says_when_to_try_again(web: Page, fake_seed_index: Path) -> None:
    page = web.page
    with fake_server(fake_seed_index, rate_limit="1/minute") as server:
        server.wait_ready()
        ask(web, server, CHAIR)
        page.locator("#results .card").first.wait_for()
        page.get_by_label("Your question").fill("Who are the technology partners?")
        page.get_by_label("Your question").press("Enter")
        alert = page.get_by_role("alert")
        alert.wait_for()
        text = alert.inner_text()
        assert "Rate limited" in text
        seconds = int(re.search(r"Try again in (\d+) seconds", text).group(1))  # type: ignore[union-attr]
        assert 1 <= seconds <= 61
        assert page.get_by_role("button", name="Try again").is_visible()


def test_index_not_loaded_says_so_and_what_to_run(web: Page, tmp_path: Path) -> None:
    page = web.page
    with fake_server(tmp_path / "no-index") as server:
        wait_until(lambda: "No index" in httpx.get(server.url + "/readyz").text, timeout=30)
        ask(web, server, CHAIR)
        alert = page.get_by_role("alert")
        alert.wait_for()
        assert "The server is not ready to answer yet" in alert.inner_text()
        assert "bot index" in alert.inner_text()
        expect(page.locator("#freshness")).to_be_hidden()  # nothing to tell about; the alert says why
        page.get_by_role("link", name="Articles").click()
        expect(page.locator("#articles-status")).to_contain_text("bot index")


def test_server_down_is_a_clear_error(web: Page, fake_seed_index: Path) -> None:
    page = web.page
    server = fake_server(fake_seed_index)
    with server:
        server.wait_ready()
        page.goto(server.url + "/")
    wait_until(lambda: not server.thread.is_alive(), timeout=30)
    box = page.get_by_label("Your question")
    box.fill(CHAIR)
    box.press("Enter")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Could not reach the server" in alert.inner_text()
    assert page.get_by_role("button", name="Try again").is_visible()


def test_api_key_is_asked_once_and_kept_for_the_session(web: Page, fake_seed_index: Path) -> None:
    page = web.page
    with fake_server(fake_seed_index, api_key="s3cret") as server:
        server.wait_ready()
        sent: list[str | None] = []
        page.on("request", lambda r: sent.append(r.headers.get("authorization")) if r.url.endswith("/ask") else None)
        ask(web, server, CHAIR)
        dialog = page.get_by_role("dialog", name="API key needed")
        dialog.wait_for()
        assert page.evaluate("document.activeElement.id") == "key-input"
        page.get_by_label("API key", exact=True).fill("wrong")
        page.get_by_label("API key", exact=True).press("Enter")
        page.get_by_text("That key was not accepted").wait_for()
        page.get_by_label("API key", exact=True).fill("s3cret")
        page.get_by_role("button", name="Use this key").click()
        page.locator("#results .card").first.wait_for()
        assert page.evaluate("sessionStorage.getItem('bot-api-key')") == "s3cret"
        assert sent == [None, "Bearer wrong", "Bearer s3cret"]
        # Later questions, and a reload of the tab, reuse the key without asking.
        page.reload()
        page.locator("#results .card").first.wait_for()
        box = page.get_by_label("Your question")
        box.fill("Who are the technology partners?")
        box.press("Enter")
        expect(page.locator("#status")).to_contain_text("best first")
        assert not dialog.is_visible()
        assert sent[3:] == ["Bearer s3cret", "Bearer s3cret"]


def test_cancelling_the_key_prompt_says_a_key_is_needed(web: Page, fake_seed_index: Path) -> None:
    page = web.page
    with fake_server(fake_seed_index, api_key="s3cret") as server:
        server.wait_ready()
        ask(web, server, CHAIR)
        page.get_by_role("dialog", name="API key needed").wait_for()
        page.keyboard.press("Escape")
        page.get_by_role("alert").wait_for()
        assert "needs an API key" in page.get_by_role("alert").inner_text()


def test_articles_view_lists_the_corpus(web: Page, real_server: ServerThread) -> None:
    page = web.page
    listed = httpx.get(real_server.url + "/articles").json()
    page.goto(real_server.url + "/")
    page.get_by_role("link", name="Articles").click()
    page.wait_for_url(re.compile(r"view=articles"))
    items = page.locator("#articles-list li")
    items.first.wait_for()
    assert items.count() == listed["count"] == 1
    article = listed["articles"][0]
    assert items.first.locator(".article-title").inner_text() == article["title"]
    # An article without a URL is listed with its source and no link at all.
    assert article["url"] is None and items.first.locator("a").count() == 0
    assert items.first.locator(".source").inner_text() == article["source"]
    assert items.first.locator("time").inner_text() == article["date"]
    assert f"{article['passages']} passages" in items.first.inner_text()
    assert f"1 article, {article['passages']} passages." == page.locator("#articles-status").inner_text()
    # `/` comes back to the question box from the articles.
    page.keyboard.press("/")
    assert page.locator("#ask-view").is_visible() and page.evaluate("document.activeElement.id") == "q"


def test_the_page_shows_how_many_articles_and_the_newest_with_their_dates(web: Page, tmp_path: Path) -> None:
    """Under the question box: the count, and the most recently dated articles first (made-up
    ones beside the seed), so a reader can tell how fresh the bot is; an article added over
    POST /articles shows at the top after a reload."""
    from bot.indexing.faiss_build import build_index

    corpus = tmp_path / "corpus"
    shutil.copytree(SEED_CORPUS, corpus)
    write_article(
        corpus,
        "dredging.md",
        "Quenby harbour dredging begins",
        "Dredgers arrived in Quenby.",
        date="2025-02-10",
        url="https://quenby.example/dredging",
    )
    write_article(corpus, "viaduct.md", "Skelling Viaduct reopens", "The Skelling Viaduct reopened.", date="2025-03-02")
    (corpus / "note.md").write_text("---\ntitle: A note from Brackenmoor\n---\nBrackenmoor sent a note.\n", "utf-8")
    build_index(corpus, tmp_path / "index", FakeEmbedder())
    page = web.page
    with fake_server(tmp_path / "index", corpus_dir=corpus, api_key="s3cret") as server:
        server.wait_ready()
        page.goto(server.url + "/")
        items = page.locator("#freshness li")
        expect(items).to_have_count(4)
        expect(page.locator("#freshness-count")).to_have_text("The bot knows 4 articles. The newest:")
        assert items.all_inner_texts() == [
            "2025-03-02 Skelling Viaduct reopens",
            "2025-02-10 Quenby harbour dredging begins",
            "2025-01-23 OpenAI, Softbank launch Stargate Project",
            "no date A note from Brackenmoor",
        ]
        assert items.nth(0).locator("time").get_attribute("datetime") == "2025-03-02"
        assert items.nth(1).locator("a").get_attribute("href") == "https://quenby.example/dredging"
        assert items.nth(3).locator("time").count() == 0
        added = {"title": "Marrowdene ferry named", "text": "The new ferry is named Marrowdene.", "date": "2025-04-01"}
        created = httpx.post(server.url + "/articles", json=added, headers={"Authorization": "Bearer s3cret"})
        assert created.status_code == 201, created.text
        page.reload()
        expect(page.locator("#freshness-count")).to_have_text("The bot knows 5 articles. The newest:")
        expect(items.first).to_have_text("2025-04-01 Marrowdene ferry named")
        expect(items).to_have_count(5)


def test_article_text_is_never_markup(web: Page, tmp_path: Path) -> None:
    """Titles, passages and urls from articles are shown as text; offsets count code points."""
    from bot.indexing.faiss_build import build_index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_article(
        corpus,
        "evil.md",
        '<img src=x onerror="window.pwned=1">Rocket news',
        "🚀🚀 Launch day is near.\n\n<script>window.pwned=1</script>\n\nThe rocket named Zephyr will launch from Kourou in March.",
        url="javascript:window.pwned=1",
    )
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir, FakeEmbedder())
    page = web.page
    with fake_server(index_dir) as server:
        server.wait_ready()
        ask(web, server, "Where will the rocket named Zephyr launch from?")
        page.locator("#results .card").first.wait_for()
        card = page.locator("#results .card").first
        answer = httpx.post(server.url + "/ask", json={"question": "Where will the rocket named Zephyr launch from?"})
        quote_text = answer.json()["quotes"][0]["text"]
        assert quote_text.startswith("The rocket named Zephyr"), "the quote must sit after the emoji"
        assert card.locator(".quote").inner_text() == quote_text
        assert card.locator("mark").first.inner_text().startswith("The rocket named Zephyr")
        assert "<script>" in card.locator("blockquote").inner_text()
        assert card.locator("img, script").count() == 0
        assert card.locator(".source-title").inner_text().startswith("<img src=x")
        assert card.locator("a.source-title").count() == 0, "a javascript: url must not become a link"
        page.get_by_role("link", name="Articles").click()
        page.locator("#articles-list li").first.wait_for()
        assert page.locator("#articles-list img, #articles-list a").count() == 0
        assert page.evaluate("window.pwned") is None


class Prefixed:
    """What a reverse proxy serving the app under /qa does: strip the prefix before the app sees it."""

    def __init__(self, app: Any, prefix: str) -> None:
        self.app, self.prefix = app, prefix

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if scope["path"].startswith(self.prefix + "/"):
                scope = {**scope, "path": scope["path"][len(self.prefix) :], "raw_path": None}
            elif scope["path"] not in ("/healthz", "/readyz"):  # ServerThread polls these
                await send({"type": "http.response.start", "status": 404, "headers": []})
                await send({"type": "http.response.body", "body": b"outside the prefix"})
                return
        await self.app(scope, receive, send)


def test_page_works_under_a_proxy_path_prefix(web: Page, fake_seed_index: Path) -> None:
    page = web.page
    app = create_app(Settings(index_dir=fake_seed_index), embedder=FakeEmbedder())
    with ServerThread(Prefixed(app, "/qa")) as server:
        server.wait_ready()
        page.goto(server.url + "/qa/")
        page.get_by_label("Your question").fill(CHAIR)
        page.get_by_label("Your question").press("Enter")
        page.locator("#results .card").first.wait_for()
        assert urlparse(page.url).path == "/qa/"
        page.get_by_role("link", name="Articles").click()
        page.locator("#articles-list li").first.wait_for()
        assert page.url.endswith("/qa/?view=articles")


def test_phone_layout_has_no_sideways_scroll(browser: Any, real_server: ServerThread) -> None:
    phone = Page(browser, is_mobile=True, has_touch=True, device_scale_factor=2)
    try:
        page = phone.page
        page.set_viewport_size({"width": 360, "height": 740})
        page.goto(real_server.url + "/?q=" + quote(CHAIR))
        page.locator("#results mark").first.wait_for()
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        box = page.get_by_label("Your question").bounding_box()
        assert box is not None and box["width"] >= 300
        assert not phone.problems, phone.problems
    finally:
        phone.context.close()


def test_dark_scheme_follows_the_system(browser: Any, real_server: ServerThread) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        opened = Page(browser, color_scheme=scheme)
        try:
            opened.page.goto(real_server.url + "/?q=" + quote(CHAIR))
            opened.page.locator("#results mark").first.wait_for()
            colours[scheme] = opened.page.evaluate(
                "[getComputedStyle(document.documentElement).backgroundColor,"
                " getComputedStyle(document.querySelector('.card')).color]"
            )
        finally:
            opened.context.close()
    assert colours["light"] != colours["dark"]
    assert colours["dark"][0] == "rgb(18, 19, 22)"


# ---- accessibility ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe-core from npm (tests/web_axe), installed on first use; skipped when npm cannot get it."""
    script = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists() and shutil.which("npm"):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=AXE_DIR, timeout=180, check=False)
    if not script.exists():
        pytest.skip("axe-core is not installed: run `npm ci` in tests/web_axe")
    return script.read_text(encoding="utf-8")


def axe_violations(page: Any, source: str) -> list[str]:
    page.add_script_tag(content=source)
    result = page.evaluate(
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa', 'best-practice']}})"
    )
    return [
        f"{v['id']}: {v['help']} ({len(v['nodes'])}x, e.g. {v['nodes'][0]['target']})" for v in result["violations"]
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_accessibility_violations(
    browser: Any, real_server: ServerThread, axe_source: str, scheme: str
) -> None:
    # The page's CSP forbids inline scripts; axe is injected inline, so this context bypasses it.
    opened = Page(browser, color_scheme=scheme, bypass_csp=True)
    try:
        page = opened.page
        page.goto(real_server.url + "/?q=" + quote(CHAIR))
        page.locator("#results mark").first.wait_for()
        page.locator("#freshness li").first.wait_for()
        found = axe_violations(page, axe_source)
        page.goto(real_server.url + "/?q=" + quote(OFF_TOPIC))
        page.locator(".not-found").wait_for()
        found += axe_violations(page, axe_source)
        page.goto(real_server.url + "/?view=articles")
        page.locator("#articles-list li").first.wait_for()
        found += axe_violations(page, axe_source)
        assert not found, "\n".join(found)
    finally:
        opened.context.close()


def test_this_week_reads_against_the_readers_day(browser: Any, tmp_path: Path) -> None:
    from bot.indexing.faiss_build import build_index

    write_ferry_reports(tmp_path / "corpus", {"Port Quill": "2031-03-03", "Harrow Bay": "2031-05-05"})
    build_index(tmp_path / "corpus", tmp_path / "index", FakeEmbedder())
    with fake_server(tmp_path / "index") as server:
        for day, harbour in [("2031-03-04", "Port Quill"), ("2031-05-06", "Harrow Bay")]:
            opened = Page(browser)
            # The browser's calendar says `day` (timers still run): the page sends it as the day asked.
            opened.page.clock.set_fixed_time(f"{day}T10:00:00")
            sent: list[dict[str, Any]] = []
            opened.page.on(
                "request", lambda r, sent=sent: sent.append(r.post_data_json) if r.url.endswith("/ask") else None
            )
            ask(opened, server, FERRY_QUESTION)
            expect(opened.page.locator("#results .card").first.locator("mark").first).to_contain_text(harbour)
            assert sent == [{"question": FERRY_QUESTION, "k": 3, "asked_on": day}]
            opened.context.close()
            assert not opened.problems, opened.problems


def test_a_follow_up_is_sent_with_the_conversation_and_start_over_forgets_it(
    web: Page, real_server: ServerThread
) -> None:
    page = web.page
    sent: list[dict[str, Any]] = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/ask") else None)
    first = "What did Microsoft say about its partnership with OpenAI?"
    ask(web, real_server, first)
    page.locator("#results mark").first.wait_for()
    conversation = page.locator("#conversation")
    expect(conversation).to_be_visible()
    expect(page.locator("#followup-to")).to_have_text(first)
    box = page.get_by_label("Your question")
    box.fill("When did it begin?")
    box.press("Enter")
    expect(page.locator(".read-as")).to_contain_text("When did it begin? (about Microsoft, partnership, OpenAI)")
    expect(page.locator("#results mark").first).to_contain_text("which began in 2019")
    today = page.evaluate("new Date().toLocaleDateString('en-CA')")  # the reader's own day, YYYY-MM-DD
    assert sent[-1] == {"question": "When did it begin?", "k": 3, "asked_on": today, "history": [first]}
    expect(page.locator("#followup-to")).to_have_text("When did it begin?")
    # Start over: the next question goes alone, and is answered as asked.
    page.get_by_role("button", name="Start over").click()
    expect(conversation).to_be_hidden()
    assert page.evaluate("document.activeElement.id") == "q"
    box.fill("When did it begin?")
    box.press("Enter")
    expect(page.locator("#status")).not_to_have_text("")
    wait_until(lambda: len(sent) >= 3)
    assert sent[-1] == {"question": "When did it begin?", "k": 3, "asked_on": today}
    expect(page.locator(".read-as")).to_have_count(0)  # the new answer replaced the follow-up's
    page.locator("#results .card").first.wait_for()


def test_the_conversation_box_has_no_accessibility_violations(
    browser: Any, real_server: ServerThread, axe_source: str
) -> None:
    opened = Page(browser, bypass_csp=True)
    try:
        page = opened.page
        page.goto(real_server.url + "/")
        box = page.get_by_label("Your question")
        box.fill(CHAIR)
        box.press("Enter")
        page.locator("#results mark").first.wait_for()
        box.fill("How much will it invest?")
        box.press("Enter")
        page.locator(".read-as").wait_for()
        expect(page.locator("#conversation")).to_be_visible()
        found = axe_violations(page, axe_source)
        assert not found, "\n".join(found)
    finally:
        opened.context.close()
