from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from bot.articles.corpus import load_corpus, slugify
from bot.errors import CorpusError
from tests.conftest import SEED_CORPUS, write_article

SEED_BODY_SHA256 = "bb14ed5b678eedee53a823550bd62392555675f56b32ac0cf88eac665301b1ea"


def test_seed_article_is_read_with_its_metadata() -> None:
    corpus = load_corpus(SEED_CORPUS)
    assert corpus.errors == []
    seed = corpus.articles[0]
    assert seed.title == "OpenAI, Softbank launch Stargate Project"
    assert seed.date == "2025-01-23"
    assert seed.id == "2025-01-23-openai-softbank-launch-stargate-project"
    assert seed.url is None and seed.author is None
    assert "names no author and gives no URL" in (seed.source or "")
    for chrome in ("Pages", "No comments:", "Post a Comment"):
        assert chrome not in seed.text


def test_seed_article_body_is_the_published_post_byte_for_byte() -> None:
    # The body of the post as published (see the seed's README): 3,530 characters, curly and straight
    # quotes, the en dash, footnote markers and no-break spaces kept as they are.
    seed = load_corpus(SEED_CORPUS).articles[0]
    assert len(seed.text) == 3530
    assert hashlib.sha256(seed.text.encode("utf-8")).hexdigest() == SEED_BODY_SHA256
    raw = (SEED_CORPUS / "2025-01-23-openai-softbank-launch-stargate-project.md").read_text(encoding="utf-8")
    assert seed.text in raw


def test_ids_are_stable_whatever_the_order_of_files(tmp_path: Path) -> None:
    write_article(tmp_path, "b.md", "Bee", "Body of b.")
    write_article(tmp_path, "a.md", "Ay", "Body of a.", id="custom-id")
    first = {a.id for a in load_corpus(tmp_path).articles}
    write_article(tmp_path, "0.md", "Zero", "Body of zero.")
    second = {a.id for a in load_corpus(tmp_path).articles}
    assert first == {"b", "custom-id"}
    assert first < second


def test_jsonl_collection_uses_given_ids(tmp_path: Path) -> None:
    path = tmp_path / "articles.jsonl"
    rows = [
        {"id": "p1", "title": "One", "text": "First text."},
        {"id": 7, "title": "Two", "text": "Second.", "date": "2024-05-01"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    corpus = load_corpus(path)
    assert [a.id for a in corpus.articles] == ["p1", "7"]
    assert corpus.articles[1].date == "2024-05-01"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("no front matter here", "no front-matter header"),
        ("---\ntitle: [unclosed\n---\nbody", "not valid YAML"),
        ("---\ndate: 2025-01-01\n---\nbody", "missing 'title'"),
        ("---\ntitle: T\n---\n   \n", "no text"),
        ("---\ntitle: T\ndate: 23/01/2025\n---\nbody", "not ISO-8601"),
        ("---\ntitle: T\ncolour: red\n---\nbody", "unknown front-matter field"),
        ("---\n- a list\n---\nbody", "key: value"),
    ],
)
def test_malformed_file_is_reported_with_path_and_reason_and_others_still_load(
    tmp_path: Path, content: str, reason: str
) -> None:
    write_article(tmp_path, "good.md", "Good", "Fine text.")
    (tmp_path / "bad.md").write_text(content, encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert [a.id for a in corpus.articles] == ["good"]
    assert len(corpus.errors) == 1
    assert str(tmp_path / "bad.md") in str(corpus.errors[0])
    assert reason in str(corpus.errors[0])


def test_bad_jsonl_lines_are_reported_by_line_number(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(
        '{"id": "ok", "title": "T", "text": "x"}\nnot json\n["list"]\n{"title": "no id", "text": "x"}\n',
        encoding="utf-8",
    )
    corpus = load_corpus(path)
    assert [a.id for a in corpus.articles] == ["ok"]
    assert [str(e).split(": ")[0] for e in corpus.errors] == [f"{path}:2", f"{path}:3", f"{path}:4"]


def test_non_utf8_file_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "latin.md").write_bytes("---\ntitle: Café\n---\ncafé".encode("latin-1"))
    corpus = load_corpus(tmp_path)
    assert "not UTF-8" in str(corpus.errors[0])


def test_duplicate_ids_keep_the_first(tmp_path: Path) -> None:
    write_article(tmp_path, "a.md", "A", "One.", id="same")
    write_article(tmp_path, "b.md", "B", "Two.", id="same")
    corpus = load_corpus(tmp_path)
    assert [a.title for a in corpus.articles] == ["A"]
    assert "duplicate id 'same'" in str(corpus.errors[0])


def test_missing_corpus_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no such file"):
        load_corpus(tmp_path / "nope")


def test_fingerprint_changes_with_text_only(tmp_path: Path) -> None:
    write_article(tmp_path, "a.md", "A", "One.")
    before = load_corpus(tmp_path).fingerprint()
    assert load_corpus(tmp_path).fingerprint() == before
    write_article(tmp_path, "a.md", "A", "One, edited.")
    assert load_corpus(tmp_path).fingerprint() != before


def test_slugify() -> None:
    assert slugify("OpenAI, Softbank launch Stargate Project!") == "openai-softbank-launch-stargate-project"
    assert slugify("——") != ""


def test_jsonl_text_with_unicode_line_separators_is_one_article(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    text = "First line\u2028same paragraph\u2029next\u0085end."
    path.write_text(json.dumps({"id": "u", "title": "T", "text": text}, ensure_ascii=False) + "\n", encoding="utf-8")
    corpus = load_corpus(path)
    assert corpus.errors == [] and corpus.articles[0].text == text


@pytest.mark.parametrize(
    ("given", "stored"),
    [("20250123", "2025-01-23"), ("2025-W04-4", "2025-01-23"), ("2025-01-23T10:00:00Z", "2025-01-23T10:00:00+00:00")],
)
def test_dates_are_stored_in_extended_iso_form(tmp_path: Path, given: str, stored: str) -> None:
    write_article(tmp_path, "a.md", "A", "Text.", date=f"'{given}'")
    assert load_corpus(tmp_path).articles[0].date == stored
