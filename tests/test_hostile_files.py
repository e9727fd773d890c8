"""Article files someone else wrote: whatever their nesting, one bad file is skipped with its reason
and the rest is indexed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.articles.corpus import load_corpus
from tests.conftest import write_article

DEPTH = 5000  # well past Python's default recursion limit of 1000


def test_deeply_nested_front_matter_is_skipped_with_its_reason_and_the_rest_is_indexed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_article(corpus, "good.md", "Quillfield opens a library", "The library of Quillfield opened today.")
    (corpus / "deep.md").write_text(f"---\ntitle: {'[' * DEPTH}{']' * DEPTH}\n---\nText.\n", encoding="utf-8")
    (corpus / "more.jsonl").write_text(
        '{"id": "deep", "title": "x", "text": ' + "[" * DEPTH + "]" * DEPTH + "}\n"
        '{"id": "ok", "title": "Brackwater mill", "text": "The mill of Brackwater reopened."}\n'
        '{"id": ' + "1" * 5000 + ', "title": "Big", "text": "An id past the integer digit limit."}\n',
        encoding="utf-8",
    )
    corpus_read = load_corpus(corpus)
    assert sorted(a.id for a in corpus_read.articles) == ["good", "ok"]
    code = main(["index", "--corpus", str(corpus), "--index", str(tmp_path / "index")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Indexed 2 articles" in captured.out
    assert "deep.md: front matter is nested too deeply" in captured.err
    assert "more.jsonl:1: invalid JSON (nested too deeply)" in captured.err
    assert "more.jsonl:3: invalid JSON (Exceeds the limit" in captured.err


def test_ingesting_a_deeply_nested_file_rejects_it_and_keeps_the_batch(tmp_path: Path) -> None:
    from bot.articles.ingest import CorpusWriter
    from bot.articles.sources import read_path

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    write_article(incoming, "good.md", "Ostmere harbour", "The harbour of Ostmere was dredged.")
    (incoming / "deep.md").write_text(f"---\ntitle: {'{a: ' * DEPTH}{'}' * DEPTH}\n---\nText.\n", encoding="utf-8")
    report = CorpusWriter(tmp_path / "corpus", tmp_path / ".lock").accept(read_path(incoming))
    statuses = {Path(o.origin).name: (o.status, o.detail) for o in report.outcomes}
    assert statuses["good.md"][0] == "added"
    assert statuses["deep.md"][0] == "rejected" and "nested too deeply" in (statuses["deep.md"][1] or "")


@pytest.mark.parametrize("value", ["0000-01-01", "2025-02-30", "2025-01-01T25:00:00", "99999-01-01"])
def test_an_impossible_date_in_front_matter_is_skipped_with_its_reason(tmp_path: Path, value: str) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_article(corpus, "good.md", "Quillfield opens a library", "The library of Quillfield opened today.")
    (corpus / "bad.md").write_text(f"---\ntitle: Ostmere fair\ndate: {value}\n---\nThe fair of Ostmere.\n", "utf-8")
    read = load_corpus(corpus)
    assert [a.id for a in read.articles] == ["good"]
    assert len(read.errors) == 1 and "bad.md" in str(read.errors[0])


@pytest.mark.parametrize("field", ["title", "text", "author"])
def test_a_lone_surrogate_in_an_ingested_article_is_rejected_by_field_and_the_batch_kept(
    tmp_path: Path, field: str
) -> None:
    from bot.articles.ingest import CorpusWriter
    from bot.articles.sources import read_path

    # "\ud800" is valid JSON, but decodes to a lone surrogate, which cannot be written as UTF-8.
    fields = {"title": "Ostmere harbour", "text": "The harbour of Ostmere was dredged.", "author": "A. Vell"}
    bad = json.dumps(fields | {field: fields[field] + " \ud800"})
    good = json.dumps({"title": "Brackwater mill", "text": "The mill of Brackwater reopened."})
    incoming = tmp_path / "incoming.jsonl"
    incoming.write_text(f"{bad}\n{good}\n", encoding="utf-8")
    corpus = tmp_path / "corpus"
    report = CorpusWriter(corpus, tmp_path / ".lock").accept(read_path(incoming))
    assert [o.status for o in report.outcomes] == ["rejected", "added"]
    assert f"'{field}' is not valid Unicode" in (report.outcomes[0].detail or "")
    assert [p.name for p in corpus.iterdir()] == ["brackwater-mill.md"]


def test_the_corpus_writer_refuses_a_draft_it_cannot_write_as_utf8(tmp_path: Path) -> None:
    from bot.articles.ingest import CorpusWriter
    from bot.articles.sources import Draft

    writer = CorpusWriter(tmp_path / "corpus", tmp_path / ".lock")
    report = writer.accept([Draft(title="\ud800", text="The quay of Tessary was rebuilt.", origin="test")])
    assert report.outcomes[0].status == "rejected"
    assert "'title' is not valid Unicode" in (report.outcomes[0].detail or "")
    assert not list((tmp_path / "corpus").iterdir())


def test_a_corpus_line_with_a_lone_surrogate_is_skipped_with_its_reason_and_the_rest_indexed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "lines.jsonl").write_text(
        '{"id": "bad", "title": "Quillfield \\ud800", "text": "The library of Quillfield opened."}\n'
        '{"id": "ok", "title": "Brackwater mill", "text": "The mill of Brackwater reopened."}\n',
        encoding="utf-8",
    )
    assert [a.id for a in load_corpus(corpus).articles] == ["ok"]
    code = main(["index", "--corpus", str(corpus), "--index", str(tmp_path / "index")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "lines.jsonl:1: 'title' is not valid Unicode" in captured.err
