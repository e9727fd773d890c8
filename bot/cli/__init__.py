"""The `bot` command: its arguments, and which module runs each command (`COMMANDS`)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot import __version__
from bot.errors import BotError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bot",
        description="Answer questions about news articles with verbatim, cited quotes.",
        epilog="Settings come from BOT_* environment variables and .env (see .env.example).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    index = commands.add_parser("index", help="build the index from the corpus")
    index.add_argument("--corpus", type=Path, help="folder or .jsonl of articles (BOT_CORPUS_DIR)")
    index.add_argument("--index", type=Path, help="index folder (BOT_INDEX_DIR)")
    index.add_argument("--full", action="store_true", help="rebuild everything, ignoring caches")
    index.add_argument("--if-stale", action="store_true", help="do nothing when the index matches the corpus")
    index.add_argument("--strict", action="store_true", help="exit 1 when any article was skipped as malformed")

    export = commands.add_parser(
        "export-encoder", help="export the model for the onnx/openvino encoders (bot index does it too)"
    )
    export.add_argument("--index", type=Path, help="index folder that holds the export (BOT_INDEX_DIR)")
    export.add_argument("--model", help="model id or folder (BOT_MODEL)")

    export_reader = commands.add_parser(
        "export-reader", help="export the reader for the onnx/openvino runtimes (bot index does it too)"
    )
    export_reader.add_argument("--index", type=Path, help="index folder that holds the export (BOT_INDEX_DIR)")
    export_reader.add_argument("--reader", type=Path, help="a trained reader folder (default: the shipped one)")

    ask = commands.add_parser("ask", help="answer a question from the index")
    ask.add_argument("question", nargs="?", help="the question; omit it for an interactive prompt")
    ask.add_argument("-k", type=int, default=3, help="number of quotes, 1-20 (default 3)")
    ask.add_argument(
        "--history",
        action="append",
        default=[],
        metavar="QUESTION",
        help="an earlier question of the conversation, oldest first (repeatable, at most 10): "
        "a follow-up such as 'When did it begin?' is read with its topic",
    )
    ask.add_argument("--json", action="store_true", help="print the answer object as JSON")
    ask.add_argument("--index", type=Path, help="index folder (BOT_INDEX_DIR)")
    ask.add_argument("--since", help="only articles dated on or after this ISO date")
    ask.add_argument("--until", help="only articles dated on or before this ISO date")
    ask.add_argument(
        "--recent",
        type=float,
        metavar="DAYS",
        help="prefer newer articles: their boost halves every DAYS before the newest article",
    )
    ask.add_argument(
        "--asked-on",
        metavar="DATE",
        help="the ISO day the question is asked ('this week' is relative to it): articles dated near it are preferred",
    )

    evaluate = commands.add_parser("eval", help="measure answer quality on a question set (JSON report)")
    evaluate.add_argument(
        "questions",
        nargs="?",
        type=Path,
        help="question file (.jsonl; lines with a `history` are follow-ups); omit it with --shared",
    )
    evaluate.add_argument(
        "--corpus", type=Path, action="append", help="corpus to answer from, repeatable (indexed once, cached)"
    )
    evaluate.add_argument("--index", type=Path, help="an existing index folder (default: BOT_INDEX_DIR)")
    evaluate.add_argument("--baseline", choices=["bm25", "dense"], help="run a plain recipe instead of the bot")
    evaluate.add_argument("--limit", type=int, help="at most this many questions")
    evaluate.add_argument("--every", type=int, default=1, help="only every Nth question (default 1)")
    evaluate.add_argument("--threshold", type=float, help="confidence below which to decline (BOT_THRESHOLD)")
    evaluate.add_argument("--cache", type=Path, help="where eval indexes are kept (default: <tmp>/bot-eval-cache)")
    evaluate.add_argument("--shared", type=Path, help="report every set of this folder against both baselines")
    evaluate.add_argument("--full", action="store_true", help="with --shared: every question, no subsampling")
    evaluate.add_argument(
        "--news",
        type=Path,
        help="with --shared: also a news set folder (articles.jsonl + qa.jsonl), reported when it exists",
    )
    evaluate.add_argument("--set", action="append", default=[], help="with --shared: only this set, repeatable")
    evaluate.add_argument("--output", type=Path, help="also write the JSON report to this file")
    evaluate.add_argument(
        "--encoder",
        action="append",
        default=[],
        choices=["onnx", "openvino"],
        help="also answer with this runtime encoding the questions, and compare the top quotes with torch's",
    )
    evaluate.add_argument(
        "--calibrate", action="store_true", help="with --shared: refit the confidence calibration and print it"
    )
    evaluate.add_argument(
        "--reader", choices=["on", "off"], help="rescore with the reader, or not (BOT_READER; the reader runs on torch)"
    )

    gaps = commands.add_parser(
        "gaps", help="what the articles miss: declined and 👎 questions (Slack and HTTP), grouped"
    )
    gaps.add_argument("--since", help="only questions asked on or after this ISO date or time (UTC)")
    gaps.add_argument("--json", action="store_true", help="print the groups as JSON")
    gaps.add_argument("--data", type=Path, help="the data folder of the server and the Slack app (BOT_DATA_DIR)")
    gaps.add_argument("--index", type=Path, help="index folder, for each group's nearest article (BOT_INDEX_DIR)")

    ingest = commands.add_parser("ingest", help="add articles from files, folders, .jsonl, URLs or feeds")
    ingest.add_argument("sources", nargs="*", metavar="SOURCE", help="file, folder, .jsonl or http(s) URL")
    ingest.add_argument("--feed", action="append", default=[], metavar="URL", help="an RSS/Atom feed (repeatable)")
    ingest.add_argument("--corpus", type=Path, help="corpus folder to add to (BOT_CORPUS_DIR)")
    ingest.add_argument("--index", type=Path, help="index folder (BOT_INDEX_DIR)")
    ingest.add_argument("--strict", action="store_true", help="exit 1 when any source was rejected")

    watch = commands.add_parser("watch", help="re-index whenever corpus files are added, changed or deleted")
    watch.add_argument("--corpus", type=Path, help="corpus folder to watch (BOT_CORPUS_DIR)")
    watch.add_argument("--index", type=Path, help="index folder (BOT_INDEX_DIR)")

    _feeds_parser(commands)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="address to bind (BOT_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (BOT_PORT, default 8000)")
    serve.add_argument("--index", type=Path, help="index folder (BOT_INDEX_DIR)")

    slack = commands.add_parser("slack", help="answer in Slack over Socket Mode (SLACK_BOT_TOKEN, SLACK_APP_TOKEN)")
    slack.add_argument("--index", type=Path, help="index folder (BOT_INDEX_DIR)")

    _reader_parsers(commands)
    return parser


DEFAULT_NEWS = Path("build/eval/realtimeqa-2023")


def _feeds_parser(commands: Any) -> None:
    """Register `bot feeds add|list|remove|poll` on the `bot` parser's subcommands."""
    feeds = commands.add_parser(
        "feeds", help="subscribe to RSS/Atom feeds; `bot watch` (or BOT_POLL_FEEDS=1 bot serve) polls them"
    )
    actions = feeds.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="subscribe to a feed (checked now; its first poll takes the newest entries)")
    add.add_argument("url", help="the feed's http(s) URL")
    add.add_argument("--every", help="how often to poll it: 30s, 15m, 2h, 1d (BOT_FEED_EVERY, default 15m)")
    add.add_argument(
        "--first", type=int, metavar="N", help="newest entries its first poll takes (BOT_FEED_FIRST_POLL, default 20)"
    )
    listing = actions.add_parser("list", help="each feed's last poll, its outcome and the next poll")
    listing.add_argument("--json", action="store_true", help="print the feeds as JSON")
    remove = actions.add_parser("remove", help="unsubscribe from a feed (its articles stay in the corpus)")
    remove.add_argument("url", help="the feed's URL, as `bot feeds list` shows it")
    poll = actions.add_parser("poll", help="poll the feeds that are due, once, and index what is new")
    poll.add_argument("--corpus", type=Path, help="corpus folder to add to (BOT_CORPUS_DIR)")
    poll.add_argument("--index", type=Path, help="index folder (BOT_INDEX_DIR)")


def _reader_parsers(commands: Any) -> None:
    """Register train-reader and eval-reader on the `bot` parser's subcommands."""
    train = commands.add_parser(
        "train-reader", help="build the reader's training pairs, fine-tune the cross-encoder, measure it"
    )
    train.add_argument(
        "--snapshot", type=Path, help="git directory of a realtimeqa_public snapshot: (re)build the pairs into --data"
    )
    train.add_argument(
        "--shared", type=Path, help="the shared eval folder: SQuAD pairs (with --snapshot) and held-out figures"
    )
    train.add_argument("--data", type=Path, default=Path("build/reader-data"), help="where the pairs are built")
    train.add_argument("--out", type=Path, help="where the reader is written (default bot/models/data/reader)")
    train.add_argument("--layers", type=int, default=6, help="transformer layers kept of the six (default 6)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--epochs", type=float, default=2.0, help="passes over the pairs (default 2, as shipped)")
    train.add_argument("--max-pairs", type=int, default=50_000, help="at most this many pairs (default 50,000)")
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--learning-rate", type=float, default=5e-5)
    train.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    train.add_argument("--no-bf16", action="store_true", help="train in float32 (bf16 autocast is the default)")
    _measure_flags(train)

    evaluate = commands.add_parser("eval-reader", help="measure a trained reader offline (JSON)")
    evaluate.add_argument("--model", type=Path, help="the reader folder (default bot/models/data/reader)")
    evaluate.add_argument("--shared", type=Path, help="the shared eval folder (SQuAD held-out figures)")
    evaluate.add_argument(
        "--cost", default="", metavar="LAYERS", help="also time pairs for these layer counts, e.g. 2,3,6"
    )
    _measure_flags(evaluate)

    spans = commands.add_parser(
        "train-spans",
        help="fine-tune the span head (the short answer in a quote) on SQuAD's train pages (and news weeks), measure it",
    )
    spans.add_argument("--shared", type=Path, required=True, help="the shared eval folder (SQuAD v1.1 and v2 dev)")
    spans.add_argument(
        "--snapshot", type=Path, help="git directory of a realtimeqa_public snapshot: also learn from its news weeks"
    )
    spans.add_argument("--out", type=Path, help="where the span head is written (default bot/models/data/spans)")
    spans.add_argument("--layers", type=int, default=6, help="transformer layers kept of the six (default 6)")
    spans.add_argument("--seed", type=int, default=0)
    spans.add_argument("--epochs", type=float, default=3.0)
    spans.add_argument("--batch-size", type=int, default=32)
    spans.add_argument("--learning-rate", type=float, default=1e-4)
    spans.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    spans.add_argument("--no-bf16", action="store_true", help="train in float32 (slower)")


def _measure_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--news", type=Path, help=f"news dev set folder (articles.jsonl, qa.jsonl; default {DEFAULT_NEWS} if present)"
    )
    parser.add_argument("--cache", type=Path, help="where eval indexes are kept (default: <tmp>/bot-eval-cache)")
    parser.add_argument("--every", type=int, default=10, help="page-wide SQuAD ranking for every Nth question")


# Each command's module is imported when it runs (the way pip finds its commands): `bot --help`
# and a mistyped flag then answer at once, without FastAPI, torch or FAISS.
COMMANDS = {
    "index": ("indexing", "cmd_index"),
    "export-encoder": ("indexing", "cmd_export_encoder"),
    "export-reader": ("indexing", "cmd_export_reader"),
    "ingest": ("indexing", "cmd_ingest"),
    "watch": ("indexing", "cmd_watch"),
    "feeds": ("feeds", "cmd_feeds"),
    "ask": ("asking", "cmd_ask"),
    "serve": ("serving", "cmd_serve"),
    "slack": ("serving", "cmd_slack"),
    "eval": ("quality", "cmd_eval"),
    "gaps": ("quality", "cmd_gaps"),
    "train-reader": ("reader", "cmd_train_reader"),
    "eval-reader": ("reader", "cmd_eval_reader"),
    "train-spans": ("reader", "cmd_train_spans"),
}


def command(name: str) -> Callable[[argparse.Namespace], int]:
    """The function that runs command `name`, from its module."""
    module, function = COMMANDS[name]
    run: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(f"bot.cli.{module}"), function)
    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `bot` console script."""
    args = _parser().parse_args(argv)
    try:
        return command(args.command)(args)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'BOT_' + str(e['loc'][0]).upper() if e['loc'] else 'settings'}: {e['msg']}" for e in exc.errors()
        )
        print(f"error: invalid setting: {problems}", file=sys.stderr)
        return 1
    except BotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
