"""`bot eval` and `bot gaps`: how good the answers are, and what the articles miss."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bot.answer.answering import answer_with_vector
from bot.answer.asking import Ask
from bot.errors import BotError, StoreError
from bot.models.encoder import get_embedder, open_embedder
from bot.models.reader import TorchReader
from bot.quality import evaluation, suites
from bot.quality.breakdown import format_by_type, format_table
from bot.quality.calibration import shared_calibration
from bot.quality.followups import evaluate_followups, is_followup_file, load_followups
from bot.quality.gaps import DeclinedLog, format_gaps, group, parse_since, with_nearest
from bot.settings import get_settings, store_of
from bot.slack.feedback import FeedbackStore


def cmd_eval(args: argparse.Namespace) -> int:
    settings = get_settings()
    threshold = settings.threshold if args.threshold is None else args.threshold
    cache = args.cache or Path(tempfile.gettempdir()) / "bot-eval-cache"
    if args.shared is not None and not args.shared.is_dir() and not (args.news and args.news.is_dir()):
        print(f"No evaluation sets in {args.shared}: nothing to report.")
        return 0
    if args.shared is None and args.questions is None:
        raise BotError("Name a question file (bot eval QA.jsonl) or a folder of sets (--shared ../shared/eval).")
    embedder = get_embedder(settings.model)
    # Questions are encoded with torch here, so the reader runs on torch too.
    reader = TorchReader() if (args.reader or settings.reader) == "on" else None
    report: dict[str, object]
    if args.shared is not None and args.calibrate:
        report = shared_calibration(args.shared, settings.corpus_dir, embedder, cache, news=args.news, reader=reader)
        print(json.dumps(report, indent=2))
    elif args.shared is not None:
        encoders = [(name, open_embedder(settings.model, name, cache, export="here")) for name in args.encoder]
        results = suites.report_shared(
            args.shared,
            settings.corpus_dir,
            embedder,
            cache,
            full=args.full,
            threshold=threshold,
            log=sys.stderr,
            news=args.news,
            only=args.set,
            encoders=encoders,
            reader=reader,
        )
        print(format_table(results))
        print()
        print(format_by_type(results))
        report = dict(results)
    else:
        if args.corpus:
            index = evaluation.cached_index(args.corpus, embedder, cache)
        else:
            index = store_of(settings, args.index).open()
            index.check_model(settings.model)
        if is_followup_file(args.questions):
            items = evaluation.subsample(load_followups(args.questions), args.every, args.limit)
            followups, _ = evaluate_followups(index, embedder, items, threshold=threshold)
            report = followups.as_dict()
        else:
            questions = evaluation.subsample(evaluation.load_questions(args.questions), args.every, args.limit)
            result, outcomes = evaluation.evaluate(
                index, embedder, questions, args.baseline or "product", threshold=threshold, reader=reader
            )
            report = result.as_dict() | {"outcomes": [o.as_row() for o in outcomes]}
            if args.encoder and args.baseline is None:
                report["encoders"] = {
                    name: evaluation.compare_encoders(
                        index,
                        outcomes,
                        open_embedder(settings.model, name, cache, export="here"),
                        questions,
                        threshold=threshold,
                        reader=reader,
                    )
                    for name in args.encoder
                }
        print(json.dumps(report, indent=2))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


def cmd_gaps(args: argparse.Namespace) -> int:
    settings = get_settings()
    since = parse_since(args.since)
    data = args.data or settings.data_dir
    misses = DeclinedLog(data).misses(since)
    if (data / "slack.sqlite3").exists():
        misses += FeedbackStore(data / "slack.sqlite3").misses(since)
    embedder = get_embedder(settings.model)
    found = group(misses, lambda texts: embedder.encode(texts))
    try:
        index = store_of(settings, args.index).open()
        index.check_model(settings.model)
    except StoreError as exc:
        print(f"(no nearest articles: {exc})", file=sys.stderr)
    else:

        def nearest(question: str) -> tuple[str, str, bool] | None:
            ask = Ask(question, 1, threshold=settings.threshold)
            result = answer_with_vector(index, ask, embedder.encode([question])[0])
            if not result.quotes:
                return None
            return result.quotes[0].article.id, result.quotes[0].article.title, result.answered

        found = with_nearest(found, nearest)
    if args.json:
        print(json.dumps([g.as_dict() for g in found], indent=2, ensure_ascii=False))
    else:
        print(format_gaps(found), end="")
    return 0
