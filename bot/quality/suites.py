"""The sets `make eval` reports on (`../shared/eval`, and the news set when built), each answered
by the bot and by both baselines on an index of its corpora (`evaluation.cached_index`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bot.answer.asking import THRESHOLD
from bot.answer.reading import Reader
from bot.models.encoder import Embedder
from bot.quality.evaluation import (
    MODES,
    EvalQuestion,
    cached_index,
    compare_encoders,
    evaluate,
    load_questions,
    subsample,
)
from bot.quality.reader_squad import read_jsonl, split_of


@dataclass(frozen=True, slots=True)
class EvalSet:
    """A question file of `../shared/eval` and the corpora to answer it from."""

    name: str
    questions: str
    corpora: tuple[str, ...]
    every: int = 1
    # Only the questions of the Wikipedia pages the reader never trained on (reader_squad.SPLIT_RULE);
    # every paragraph stays in the index.
    held_out: bool = False


def shared_sets(repo_corpus: Path, news: Path | None = None) -> list[EvalSet]:
    """The sets `make eval` reports on; paths are relative to the shared eval folder. `news` is a
    folder built by ../shared/eval/build_realtimeqa_2023.py (articles.jsonl, qa.jsonl), if any."""
    squad = "squad-v1.1-dev/passages.jsonl"
    extra = []
    if news is not None:
        # News-quiz questions over the web articles found for them: every question, all articles.
        news = news.resolve()
        extra.append(EvalSet(news.name, str(news / "qa.jsonl"), (str(news / "articles.jsonl"),)))
    return [
        *extra,
        EvalSet("squad-v1.1-dev", "squad-v1.1-dev/qa.jsonl", (squad,), every=5),
        EvalSet("squad-v1.1-held-out", "squad-v1.1-dev/qa.jsonl", (squad,), every=5, held_out=True),
        # The seed article among 2,067 Wikipedia paragraphs: hard negatives for the Stargate questions.
        EvalSet("stargate-dev", "stargate-dev.jsonl", (str(repo_corpus.resolve()), squad)),
        EvalSet(
            "squad-v2.0-dev-half", "squad-v2.0-dev-half/qa.jsonl", ("squad-v2.0-dev-half/passages.jsonl",), every=3
        ),
    ]


def report_shared(
    shared: Path,
    repo_corpus: Path,
    embedder: Embedder,
    cache_dir: Path,
    *,
    full: bool = False,
    threshold: float = THRESHOLD,
    log: TextIO | None = None,
    news: Path | None = None,
    only: Sequence[str] = (),
    encoders: Sequence[tuple[str, Embedder]] = (),
    reader: Reader | None = None,
) -> dict[str, dict[str, Any]]:
    """Every set of `shared` (and the `news` folder) that exists, answered by the bot and by both
    baselines, as report dicts; `only` names the sets to run (default: all). With `encoders`, the
    bot again with each named encoder for the questions (`product/<name>`), and how many top
    quotes stayed the same."""
    results: dict[str, dict[str, Any]] = {}
    for eval_set in shared_sets(repo_corpus, news):
        if only and eval_set.name not in only:
            continue
        qa = shared / eval_set.questions
        corpora = [shared / c for c in eval_set.corpora]
        missing = [p for p in (qa, *corpora) if not p.exists()]
        if missing:
            if log:
                print(f"{eval_set.name}: skipped, {missing[0]} is missing", file=log)
            continue
        questions = load_questions(qa)
        if eval_set.held_out:
            questions = held_out_questions(questions, corpora[0])
        questions = subsample(questions, 1 if full else eval_set.every)
        if log:
            print(f"{eval_set.name}: {len(questions)} questions", file=log, flush=True)
        index = cached_index(corpora, embedder, cache_dir)
        results[eval_set.name] = {}
        for mode in MODES:
            report, outcomes = evaluate(index, embedder, questions, mode, threshold=threshold, reader=reader)
            results[eval_set.name][mode] = report.as_dict() | {"outcomes": [o.as_row() for o in outcomes]}
            if log:
                print(f"  {mode}: done at {report.questions_per_second} q/s", file=log, flush=True)
            if mode != "product":
                continue
            for name, other in encoders:
                compared = compare_encoders(index, outcomes, other, questions, threshold=threshold, reader=reader)
                results[eval_set.name][f"product/{name}"] = compared
                if log:
                    print(
                        f"  product/{name}: {compared['same_top_quote']}/{len(questions)} top quotes the same",
                        file=log,
                        flush=True,
                    )
    return results


def held_out_questions(questions: list[EvalQuestion], passages: Path) -> list[EvalQuestion]:
    """The questions whose paragraph (`context_id`) is on a held-out Wikipedia page of `passages`."""
    page = {str(row["id"]): str(row["article"]) for row in read_jsonl(passages)}
    return [q for q in questions if q.context_id in page and split_of(page[q.context_id]) == "held-out"]
