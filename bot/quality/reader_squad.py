"""Reader training pairs from SQuAD dev, and the split that keeps half of its Wikipedia pages unseen.

SQuAD v1.1 dev has 48 Wikipedia pages (2,067 paragraphs, 10,570 questions). SPLIT_RULE puts each
page, by its name, in `train` or `held-out`; only `train` pages give pairs, and the reader is
measured on `held-out` ones, so no paragraph of a measured question was ever read in training.
Pages, not questions, are split: questions of one page share its paragraphs and vocabulary.

Labels: the unit holding a gold `answer_start` is a positive; the other units of its paragraph and
some of other paragraphs of the page are negatives (a unit that also holds the answer string is
left out). SQuAD v2's unanswerable questions (written to look answerable from their paragraph)
make every unit of their paragraph a negative, the one naming the plausible answer too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import BotError
from bot.indexing.chunking import split_units
from bot.quality.reader_text import Pair, Parts, Unit, overlap, pattern, words

V1 = Path("squad-v1.1-dev")
V2 = Path("squad-v2.0-dev-half")
SPLIT_RULE = "a page is `train` when the first byte of sha256(its `article` name, UTF-8) is even, else `held-out`"
# Per question: the paragraph's other units (it has ~5), and units of other paragraphs of the page
# (the hardest by shared words, then one at random). SQuAD questions copy the paragraph's words,
# so it teaches less than news: kept to about a third of the pairs.
MAX_PARAGRAPH_NEGATIVES = 3
MAX_PAGE_NEGATIVES = 2


def split_of(article: str) -> str:
    """`train` or `held-out` for a Wikipedia page name (SPLIT_RULE)."""
    return "train" if hashlib.sha256(article.encode("utf-8")).digest()[0] % 2 == 0 else "held-out"


@dataclass(frozen=True, slots=True)
class Paragraph:
    id: str
    article: str
    text: str
    units: tuple[tuple[int, int], ...]  # (start, end) of each sentence unit


def read_jsonl(path: Path, parts: Parts | None = None, role: str = "train") -> list[dict[str, Any]]:
    """The JSON lines of `path`, recorded in `parts` with their sha256."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BotError(f"cannot read {path}: {exc.strerror or exc}; is --shared the shared eval folder?") from None
    rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    if parts is not None:
        parts.files.append(
            {"path": str(path), "role": role, "sha256": hashlib.sha256(data).hexdigest(), "rows": len(rows)}
        )
    return rows


def paragraphs(shared: Path, parts: Parts | None = None) -> dict[str, Paragraph]:
    """SQuAD v1.1 dev paragraphs by id, with their units as the bot's chunker cuts them."""
    found: dict[str, Paragraph] = {}
    for row in read_jsonl(shared / V1 / "passages.jsonl", parts, "train and held-out"):
        text = str(row["text"])
        spans = tuple((s.start, s.end) for s in split_units(text))
        found[str(row["id"])] = Paragraph(str(row["id"]), str(row["article"]), text, spans)
    return found


def unit_at(paragraph: Paragraph, offset: int) -> int | None:
    """The unit holding character `offset` (None when it falls between units)."""
    for number, (start, end) in enumerate(paragraph.units):
        if start <= offset < end:
            return number
    return None


def _rng(seed: int, group: str) -> np.random.Generator:
    return np.random.default_rng([seed, int(hashlib.sha256(group.encode()).hexdigest()[:12], 16)])


def _hardest(question: str, candidates: list[Unit], rng: np.random.Generator, cap: int) -> list[Unit]:
    """Up to `cap`: the one sharing most of the question's words, then the rest at random."""
    if len(candidates) <= cap or cap <= 0:
        return candidates[: max(cap, 0)]
    asked = words(question)
    order = [int(i) for i in rng.permutation(len(candidates))]
    first = max(order, key=lambda i: overlap(candidates[i].words, asked))
    return [candidates[first], *[candidates[i] for i in order if i != first][: cap - 1]]


def squad_pairs(shared: Path, seed: int, parts: Parts) -> Iterator[Pair]:
    """The pairs of the `train` pages: v1.1 answerable questions, then v2's unanswerable ones."""
    by_id = paragraphs(shared, parts)
    by_page: dict[str, list[Paragraph]] = {}
    for p in by_id.values():
        by_page.setdefault(p.article, []).append(p)
    units = {p.id: [Unit.of(p.text[s:e]) for s, e in p.units] for p in by_id.values()}
    for page in sorted(by_page):
        parts.count(f"squad pages {split_of(page)}")
    for row in read_jsonl(shared / V1 / "qa.jsonl", parts):
        paragraph = by_id.get(str(row.get("context_id")))
        if paragraph is None or split_of(paragraph.article) != "train":
            continue
        group, question = str(row["id"]), " ".join(str(row["question"]).split())
        gold = {n for a in row.get("answer_starts") or [] if (n := unit_at(paragraph, int(a["start"]))) is not None}
        if not gold:
            parts.count("squad questions without an answer offset")
            continue
        parts.count("squad questions with pairs")
        rng = _rng(seed, group)
        found = [p for p in (pattern(str(a)) for a in row.get("answers") or []) if p is not None]
        own = units[paragraph.id]
        for number in sorted(gold):
            yield Pair(question, own[number].text, 1, "squad", "positive", group)
        others = [u for n, u in enumerate(own) if n not in gold and not any(f.search(u.normed) for f in found)]
        for unit in _hardest(question, others, rng, MAX_PARAGRAPH_NEGATIVES):
            yield Pair(question, unit.text, 0, "squad", "paragraph", group)
        page_units = [u for p in by_page[paragraph.article] if p.id != paragraph.id for u in units[p.id]]
        elsewhere = [u for u in page_units if not any(f.search(u.normed) for f in found)]
        for unit in _hardest(question, elsewhere, rng, MAX_PAGE_NEGATIVES):
            yield Pair(question, unit.text, 0, "squad", "page", group)
    for row in read_jsonl(shared / V2 / "qa.jsonl", parts):
        paragraph = by_id.get(str(row.get("context_id")))
        if not row.get("is_impossible") or paragraph is None or split_of(paragraph.article) != "train":
            continue
        parts.count("squad-v2 unanswerable questions with pairs")
        group, question = str(row["id"]), " ".join(str(row["question"]).split())
        for unit in units[paragraph.id]:
            yield Pair(question, unit.text, 0, "squad-v2", "unanswerable", group)


@dataclass(frozen=True, slots=True)
class HeldOut:
    """A held-out question: its paragraph, every unit of its page, and which of them hold an answer offset."""

    id: str
    question: str
    answers: tuple[str, ...]
    paragraph: Paragraph
    gold: frozenset[int]


def held_out(shared: Path) -> tuple[list[HeldOut], dict[str, list[Paragraph]]]:
    """The v1.1 questions of the held-out pages, and those pages' paragraphs (for page-wide ranking)."""
    by_id = paragraphs(shared)
    pages: dict[str, list[Paragraph]] = {}
    for p in by_id.values():
        if split_of(p.article) == "held-out":
            pages.setdefault(p.article, []).append(p)
    questions: list[HeldOut] = []
    for row in read_jsonl(shared / V1 / "qa.jsonl"):
        paragraph = by_id.get(str(row.get("context_id")))
        if paragraph is None or split_of(paragraph.article) != "held-out":
            continue
        gold = frozenset(
            n for a in row.get("answer_starts") or [] if (n := unit_at(paragraph, int(a["start"]))) is not None
        )
        if gold:
            answers = tuple(str(a) for a in row.get("answers") or [])
            questions.append(HeldOut(str(row["id"]), " ".join(str(row["question"]).split()), answers, paragraph, gold))
    return questions, pages
