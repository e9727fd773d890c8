"""Article files someone else wrote: whatever their nesting, one bad file is skipped with its reason
and the rest is indexed."""

from __future__ import annotations

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
