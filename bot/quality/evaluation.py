"""Answer quality, measured: run a question set through `answer()` (or a plain baseline) and report.

Question files are JSON lines `{"id", "question", "answers": [...], "evidence"?, "context_id"?,
"answerable"?, "is_impossible"?}` (the formats of `../shared/eval`). The gold article of a question
is its `context_id` (a SQuAD passage is one article) or else every article whose text holds the
`evidence`. Figures: recall@1/@5 of the gold article, the answer (or the evidence) in the top
quote, words per top quote, abstention precision/recall, questions per second.

Baselines answer the same questions on the same index with the plain recipes: `bm25` and `dense`
rank passages and quote the whole top passage, and never decline.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from bot.answer.answering import answer
from bot.answer.asking import THRESHOLD, Ask, parse_day
from bot.answer.reading import Reader
from bot.articles.corpus import Corpus, load_corpus
from bot.errors import BotError, StoreError
from bot.indexing.building import chunker_key
from bot.indexing.faiss_build import build_index
from bot.indexing.index import Index
from bot.indexing.keyword import tokenize
from bot.indexing.versions import FORMAT_VERSION, open_index
from bot.models.encoder import Embedder
from bot.quality import breakdown, support

T = TypeVar("T")
BASELINES = ("bm25", "dense")
MODES = ("product", *BASELINES)
K = 5  # recall@5 needs five quotes
SWEEP = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# Curly quotes and dashes differ between the gold answers and the articles for no reason of meaning.
_TRANSLATE = str.maketrans({"‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"', "„": '"', "–": "-", "—": "-"})
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    """One line of a question file."""

    id: str
    question: str
    answers: tuple[str, ...] = ()
    evidence: str | None = None
    context_id: str | None = None
    answerable: bool = True
    context_ids: tuple[str, ...] = ()  # news sets: every article that holds the answer
    date: str | None = None  # the day the question was asked ("this week" is relative to it)
    support: str | None = None  # whether an article states the answer (`bot.quality.support`)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one question got: the articles of its quotes, best first, and the top quote."""

    question: EvalQuestion
    answered: bool
    articles: tuple[str, ...]
    top_quote: str
    confidence: float | None = None
    top_passage: str = ""
    span: str | None = None  # the top quote's short answer (`Quote.answer.text`), when it has one

    def as_row(self) -> dict[str, Any]:
        """What a report keeps of it, so two runs can be compared question by question."""
        return {
            "id": self.question.id,
            "answered": self.answered,
            "top_quote": self.top_quote,
            "confidence": self.confidence,
            "span": self.span,
            "articles": list(self.articles),
        }


@dataclass
class Report:
    """The figures of one mode on one question set."""

    mode: str
    questions: int
    answerable: int
    unanswerable: int
    recall_at_1: float | None
    recall_at_5: float | None
    answer_in_top_quote: float | None
    answered_with_answer: float | None
    mean_top_quote_words: float | None
    declined_answerable: float | None
    abstention_precision: float | None
    abstention_recall: float | None
    questions_per_second: float
    failures: list[str] = field(default_factory=list)
    span_given: float | None = None
    span_exact_match: float | None = None
    span_f1: float | None = None
    # Over the answerable questions whose answer an article states (`bot.quality.support`), if labelled.
    stated: int | None = None
    stated_answer_in_top_quote: float | None = None
    stated_answered_with_answer: float | None = None
    # Per question type: {n, answer_in_top_quote, answered_with_answer, wrong_passage, wrong_sentence, declined}.
    by_type: dict[str, dict[str, Any]] = field(default_factory=dict)
    # At other thresholds: {threshold: [abstention precision, abstention recall, declined answerable]}.
    threshold_sweep: dict[str, list[float | None]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalize(text: str) -> str:
    """Casefolded, curly quotes and dashes made plain, whitespace collapsed."""
    return _SPACE.sub(" ", text.translate(_TRANSLATE).casefold()).strip()


def contains_answer(quote: str, question: EvalQuestion) -> bool:
    """True when a gold answer or the evidence occurs in the quote (normalized)."""
    haystack = normalize(quote)
    needles = [*question.answers, *([question.evidence] if question.evidence else [])]
    return any(normalize(n) and normalize(n) in haystack for n in needles)


def question_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a question file with their numbers; an unreadable file is a BotError."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BotError(f"cannot read {path}: {exc.strerror or exc}") from None
    return ((number, line) for number, line in enumerate(lines, start=1) if line.strip())


def load_questions(path: Path | str) -> list[EvalQuestion]:
    """Read a question file; a malformed line is a BotError naming it."""
    path = Path(path)
    questions: list[EvalQuestion] = []
    for number, line in question_lines(path):
        try:
            data = json.loads(line)
            answerable = bool(data.get("answerable", True)) and not bool(data.get("is_impossible", False))
            questions.append(
                EvalQuestion(
                    id=str(data.get("id", number)),
                    question=str(data["question"]),
                    answers=tuple(str(a) for a in data.get("answers") or ()),
                    evidence=data.get("evidence") or None,
                    context_id=data.get("context_id") or None,
                    answerable=answerable,
                    context_ids=tuple(str(c) for c in data.get("context_ids") or ()),
                    date=data.get("date") or None,
                    support=support.checked(data.get("support")),
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise BotError(f"{path}:{number}: not a question line ({exc})") from None
    return questions


def subsample(questions: list[T], every: int = 1, limit: int | None = None) -> list[T]:
    """Every `every`-th question, at most `limit` of them: a stable, spread-out sample."""
    picked = questions[:: max(every, 1)]
    return picked[:limit] if limit else picked


def gold_articles(index: Index, questions: Sequence[EvalQuestion]) -> dict[str, frozenset[str]]:
    """The article ids that answer each question: its context_id, else the articles holding its evidence."""
    texts: list[str] | None = None
    gold: dict[str, frozenset[str]] = {}
    for q in questions:
        if q.context_id or q.context_ids:
            gold[q.id] = frozenset({q.context_id} if q.context_id else q.context_ids)
        elif q.evidence:
            texts = texts if texts is not None else [normalize(a.text) for a in index.articles]
            needle = normalize(q.evidence)
            gold[q.id] = frozenset(a.id for a, t in zip(index.articles, texts, strict=True) if needle in t)
    return gold


def _rate(hits: Sequence[bool]) -> float | None:
    return round(sum(hits) / len(hits), 4) if hits else None


def summarize(
    mode: str, outcomes: Sequence[Outcome], seconds: float, gold: dict[str, frozenset[str]] | None = None
) -> Report:
    """Turn outcomes into figures; None where a figure has nothing to count."""
    gold = gold or {}
    answerable = [o for o in outcomes if o.question.answerable]
    unanswerable = [o for o in outcomes if not o.question.answerable]
    with_gold = [o for o in answerable if gold.get(o.question.id)]
    graded = [o for o in answerable if o.question.answers or o.question.evidence]
    declined = [o for o in outcomes if not o.answered]
    top_words = [len(o.top_quote.split()) for o in answerable if o.top_quote]
    in_top = {o.question.id: contains_answer(o.top_quote, o.question) for o in graded}
    stated, stated_in_top, stated_answered = support.stated_figures(outcomes, contains_answer)
    return Report(
        mode=mode,
        questions=len(outcomes),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        recall_at_1=_rate([bool(set(o.articles[:1]) & gold[o.question.id]) for o in with_gold]),
        recall_at_5=_rate([bool(set(o.articles[:5]) & gold[o.question.id]) for o in with_gold]),
        answer_in_top_quote=_rate(list(in_top.values())),
        answered_with_answer=_rate([o.answered and in_top[o.question.id] for o in graded]),
        mean_top_quote_words=round(float(np.mean(top_words)), 1) if top_words else None,
        declined_answerable=_rate([not o.answered for o in answerable]),
        abstention_precision=_rate([not o.question.answerable for o in declined]) if unanswerable else None,
        abstention_recall=_rate([not o.answered for o in unanswerable]),
        questions_per_second=round(len(outcomes) / seconds, 1) if seconds > 0 else 0.0,
        failures=[  # the first few, to look at by hand
            o.question.id
            for o in outcomes
            if (o.question.answerable and not (o.answered and in_top.get(o.question.id, True)))
            or (not o.question.answerable and o.answered)
        ][:30],
        threshold_sweep=_sweep(outcomes) if unanswerable else {},
        by_type=breakdown.by_type(outcomes, contains_answer),
        stated=stated,
        stated_answer_in_top_quote=stated_in_top,
        stated_answered_with_answer=stated_answered,
        **(breakdown.span_figures(outcomes) if mode == "product" else {}),
    )


def _sweep(outcomes: Sequence[Outcome]) -> dict[str, list[float | None]]:
    """Abstention figures had the threshold been elsewhere (the top quote's confidence decides)."""
    if any(o.confidence is None for o in outcomes):
        return {}
    sweep: dict[str, list[float | None]] = {}
    for threshold in SWEEP:
        declined = [o for o in outcomes if (o.confidence or 0.0) < threshold]
        sweep[f"{threshold:.1f}"] = [
            _rate([not o.question.answerable for o in declined]),
            _rate([(o.confidence or 0.0) < threshold for o in outcomes if not o.question.answerable]),
            _rate([(o.confidence or 0.0) < threshold for o in outcomes if o.question.answerable]),
        ]
    return sweep


def _product(
    index: Index, embedder: Embedder, threshold: float, reader: Reader | None
) -> Callable[[EvalQuestion], Outcome]:
    def run(q: EvalQuestion) -> Outcome:
        # A news question is asked on its day: "this week" is relative to it.
        ask = Ask(q.question, K, threshold=threshold, asked_on=parse_day(q.date, "the question's date"))
        result = answer(index, embedder, ask, reader=reader)
        top = result.quotes[0] if result.quotes else None
        return Outcome(
            q,
            result.answered,
            tuple(quote.article.id for quote in result.quotes),
            top.text if top else "",
            top.score if top else None,
            top.passage if top else "",
            top.answer.text if top and top.answer else None,
        )

    return run


def _baseline(index: Index, embedder: Embedder, mode: str) -> Callable[[EvalQuestion], Outcome]:
    def run(q: EvalQuestion) -> Outcome:
        if mode == "bm25":
            order = [int(p) for p in index.keyword_search(tokenize(q.question), K)]
        else:
            ids, _ = index.dense_search(embedder.encode([q.question])[0], K)
            order = [int(p) for p in ids]
        articles = tuple(index.article_of(p).id for p in order)
        top = ""
        if order:
            top = index.span_text(*index.passage_span(order[0]))
        return Outcome(q, True, articles, top, None, top)

    return run


def evaluate(
    index: Index,
    embedder: Embedder,
    questions: Sequence[EvalQuestion],
    mode: str = "product",
    *,
    threshold: float = THRESHOLD,
    reader: Reader | None = None,
) -> tuple[Report, list[Outcome]]:
    """Run every question through `mode` ("product", "bm25" or "dense") and report the figures;
    the product rescores with `reader` when given."""
    if mode not in MODES:
        raise BotError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    run = _product(index, embedder, threshold, reader) if mode == "product" else _baseline(index, embedder, mode)
    # The hand-read support of the news set, by question id (other sets have none of its ids).
    questions = support.with_support(questions, support.packaged_labels())
    embedder.encode(["warm up"])  # the first call pays for lazy initialisation, not the questions
    started = time.perf_counter()
    outcomes = [run(q) for q in questions]
    seconds = time.perf_counter() - started
    return summarize(mode, outcomes, seconds, gold_articles(index, questions)), outcomes


def compare_encoders(
    index: Index,
    reference: list[Outcome],
    other: Embedder,
    questions: Sequence[EvalQuestion],
    *,
    threshold: float = THRESHOLD,
    reader: Reader | None = None,
) -> dict[str, Any]:
    """The bot with `other` encoding the questions, next to `reference` (the same questions with
    the encoder the index was built with): its report, and which top quotes differ."""
    report, outcomes = evaluate(index, other, questions, "product", threshold=threshold, reader=reader)
    differences = [
        {"id": a.question.id, "question": a.question.question, "reference": a.top_quote, "this": b.top_quote}
        for a, b in zip(reference, outcomes, strict=True)
        if a.top_quote != b.top_quote or a.answered != b.answered
    ]
    return report.as_dict() | {"same_top_quote": len(questions) - len(differences), "differences": differences}


def merged_corpus(paths: Sequence[Path]) -> Corpus:
    """The articles of several corpora as one (the first of a repeated id wins)."""
    merged = Corpus()
    seen: set[str] = set()
    for path in paths:
        corpus = load_corpus(path)
        merged.errors.extend(corpus.errors)
        for article in corpus.articles:
            if article.id not in seen:
                seen.add(article.id)
                merged.articles.append(article)
    return merged


def cached_index(paths: Sequence[Path], embedder: Embedder, cache_dir: Path) -> Index:
    """An index of the corpora, built once per corpus content and model under `cache_dir`."""
    corpus = merged_corpus(paths)
    if not corpus.articles:
        raise BotError(f"no readable articles in {', '.join(map(str, paths))}")
    key = hashlib.sha256(f"{corpus.fingerprint()}\0{embedder.name}\0{FORMAT_VERSION}".encode()).hexdigest()[:16]
    folder = cache_dir / key
    try:
        index = open_index(folder / "index")
        if index.manifest.get("chunker") == chunker_key():
            return index
        # Chunked by older rules: rebuilt in place, reusing the embeddings of unchanged texts.
    except StoreError:
        pass
    source = paths[0]
    if len(paths) > 1:
        # build_index reads one path; several corpora become one .jsonl collection.
        folder.mkdir(parents=True, exist_ok=True)
        source = folder / "corpus.jsonl"
        with source.open("w", encoding="utf-8") as handle:
            for article in corpus.articles:
                row = {k: v for k, v in asdict(article).items() if k != "path" and v is not None}
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    build_index(source, folder / "index", embedder)
    return open_index(folder / "index")
