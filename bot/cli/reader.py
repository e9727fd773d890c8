"""`bot train-reader`, `bot eval-reader` and `bot train-spans`: build the reader's data, train the
reader and its span head, measure them offline.

torch and sentence-transformers are imported inside the functions that train or score: the CLI
loads this module only to run one of these commands.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bot.cli import DEFAULT_NEWS
from bot.errors import BotError
from bot.models import span_training, training
from bot.models.encoder import get_embedder
from bot.models.spans import TorchSpans
from bot.quality import reader_data, reader_eval, span_data
from bot.quality.evaluation import cached_index
from bot.quality.reader_news import Snapshot
from bot.quality.reader_squad import SPLIT_RULE
from bot.quality.reader_text import Parts


def measure(model: Any, args: argparse.Namespace, shared: Path | None) -> dict[str, Any]:
    """SQuAD held-out and news dev figures of `model` (a reader from bot.models.training), each when its data is there."""

    def score(pairs: Any) -> Any:
        return training.scores(model, pairs)

    figures: dict[str, Any] = {}
    embedder = get_embedder()
    if shared is not None:
        print("measuring on SQuAD's held-out pages…", file=sys.stderr, flush=True)
        figures["squad_held_out"] = reader_eval.squad_figures(shared, score, embedder, every=args.every)
    news = args.news or (DEFAULT_NEWS if (DEFAULT_NEWS / "qa.jsonl").is_file() else None)
    if news is not None:
        print(f"measuring on the news dev set {news}…", file=sys.stderr, flush=True)
        cache = args.cache or Path(tempfile.gettempdir()) / "bot-eval-cache"
        index = cached_index([news / "articles.jsonl"], embedder, cache)
        figures["news_dev"] = reader_eval.news_figures(index, embedder, news / "qa.jsonl", score)
    return figures


def hyper_of(args: argparse.Namespace) -> training.Hyper:
    """The training settings `train-reader` and `train-spans` take from their (same) flags."""
    return training.Hyper(
        layers=args.layers,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        bf16=not args.no_bf16,
        threads=args.threads,
    )


def cmd_train_reader(args: argparse.Namespace) -> int:
    # The pairs are built when the news snapshot is named (with SQuAD's train pages when --shared is
    # given too); --shared alone only measures, on the pairs already built: a SQuAD-only build by
    # accident (34,118 pairs) trained a reader that found the news answer less often (0.43).
    if args.snapshot is not None:
        print(f"building the pairs into {args.data}…", file=sys.stderr, flush=True)
        reader_data.build(args.snapshot, args.shared, args.data, args.seed, args.max_pairs)
    pairs, manifest = reader_data.load(args.data)
    hyper = hyper_of(args)
    print(f"training a {args.layers}-layer reader on {len(pairs):,} pairs…", file=sys.stderr, flush=True)
    model = training.new_model(hyper.layers, hyper.max_length, hyper.seed)
    run = training.train(
        model, [p.question for p in pairs], [p.sentence for p in pairs], [p.label for p in pairs], hyper
    )
    out = args.out or training.DEFAULT_OUT
    record: dict[str, Any] = {
        "seed": hyper.seed,
        "hyperparameters": hyper.as_dict(),
        "training": run,
        "data": reader_data.summary(manifest),
        "figures": {},
    }
    # Written before measuring (18-34 minutes on the shared sets), then again with the figures: a
    # failure while measuring does not lose the hour of training.
    training.save_reader(model, out, record)
    print(f"Wrote the reader to {out}, without figures yet.", file=sys.stderr, flush=True)
    record["figures"] = measure(model, args, args.shared)
    written = training.save_reader(model, out, record)
    print(json.dumps({k: written[k] for k in ("weights_sha256", "weights_bytes", "figures")}, indent=2))
    print(f"Wrote the reader to {out} ({written['weights_bytes'] / 1e6:.1f} MB).", file=sys.stderr)
    return 0


def cmd_eval_reader(args: argparse.Namespace) -> int:
    report: dict[str, Any] = {}
    if args.model is not None or args.shared is not None or args.news is not None:
        folder = args.model or training.DEFAULT_OUT
        report["manifest_figures"] = training.read_manifest(folder).get("figures")
        report["measured"] = measure(training.load_reader(folder), args, args.shared)
    if args.cost:
        try:
            layer_counts = [int(x) for x in args.cost.split(",") if x.strip()]
        except ValueError:
            raise BotError(f"--cost takes layer counts such as 2,3,6, got {args.cost!r}") from None
        report["cost"] = {
            f"L{layers}": {
                f"batch{batch}/threads{threads}": training.pair_cost(training.new_model(layers), batch, threads)
                for batch in (8, 32)
                for threads in (1, 2)
            }
            for layers in layer_counts
        }
    if not report:
        raise BotError("Nothing to measure: give --model/--shared/--news, or --cost 2,3,6.")
    print(json.dumps(report, indent=2))
    return 0


def measure_spans(finder: TorchSpans, shared: Path) -> dict[str, Any]:
    """The span head and the pattern baseline on SQuAD's held-out pages, given the right sentence."""
    examples = span_data.span_examples(shared, "held-out")
    return {
        "squad_held_out": {
            "span_head": span_data.measure(examples, finder.spans_of_pairs),
            "patterns": span_data.measure(examples, span_data.pattern_spans),
        }
    }


def cmd_train_spans(args: argparse.Namespace) -> int:
    parts = Parts()
    examples = span_data.span_examples(args.shared, "train", parts)
    hyper = hyper_of(args)
    if args.snapshot is not None:
        print(
            f"reading the news training weeks' answering sentences from {args.snapshot}…", file=sys.stderr, flush=True
        )
        examples += span_data.news_span_examples(Snapshot(args.snapshot), hyper.seed, parts)
    print(f"training a {hyper.layers}-layer span head on {len(examples):,} sentences…", file=sys.stderr, flush=True)
    model = span_training.new_span_model(hyper.max_length, hyper.seed, hyper.layers)
    run = span_training.train_spans(model, examples, hyper)
    print("measuring on SQuAD's held-out pages…", file=sys.stderr, flush=True)
    figures = measure_spans(TorchSpans(model), args.shared)
    out = args.out or span_training.DEFAULT_OUT
    written = span_training.save_spans(
        model,
        out,
        {
            "seed": hyper.seed,
            "hyperparameters": hyper.as_dict(),
            "training": run,
            "data": {
                "split_rule": SPLIT_RULE,
                "files": parts.files,
                "counts": dict(sorted(parts.counts.items())),
            },
            "figures": figures,
        },
    )
    print(json.dumps({k: written[k] for k in ("weights_sha256", "weights_bytes", "figures")}, indent=2))
    print(f"Wrote the span head to {out} ({written['weights_bytes'] / 1e6:.1f} MB).", file=sys.stderr)
    return 0
