"""The `bot` command: its arguments, and which module runs each command (`COMMANDS`)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

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

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="address to bind (BOT_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (BOT_PORT, default 8000)")
    serve.add_argument("--index", type=Path, help="index folder (BOT_INDEX_DIR)")

    slack = commands.add_parser("slack", help="answer in Slack over Socket Mode (SLACK_BOT_TOKEN, SLACK_APP_TOKEN)")
    slack.add_argument("--index", type=Path, help="index folder (BOT_INDEX_DIR)")
    return parser


# Each command's module is imported when it runs (the way pip finds its commands): `bot --help`
# and a mistyped flag then answer at once, without FastAPI, torch or FAISS.
COMMANDS = {
    "index": ("indexing", "cmd_index"),
    "export-encoder": ("indexing", "cmd_export_encoder"),
    "ingest": ("indexing", "cmd_ingest"),
    "watch": ("indexing", "cmd_watch"),
    "ask": ("asking", "cmd_ask"),
    "serve": ("serving", "cmd_serve"),
    "slack": ("serving", "cmd_slack"),
    "eval": ("quality", "cmd_eval"),
    "gaps": ("quality", "cmd_gaps"),
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
