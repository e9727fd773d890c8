"""The `bot` command: index the corpus, ask questions, serve HTTP.

Heavy modules (torch, FAISS, FastAPI) are imported inside the commands that need them, so
`bot --help` and flag errors answer at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot import __version__
from bot.errors import BotError

if TYPE_CHECKING:
    from bot.records import Answer
    from bot.settings import Settings


def _settings() -> Settings:
    from bot.settings import get_settings

    return get_settings()


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

    ask = commands.add_parser("ask", help="answer a question from the index")
    ask.add_argument("question", nargs="?", help="the question; omit it for an interactive prompt")
    ask.add_argument("-k", type=int, default=3, help="number of quotes, 1-20 (default 3)")
    ask.add_argument("--json", action="store_true", help="print the answer object as JSON")
    ask.add_argument("--index", type=Path, help="index folder (BOT_INDEX_DIR)")
    ask.add_argument("--since", help="only articles dated on or after this ISO date")
    ask.add_argument("--until", help="only articles dated on or before this ISO date")

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="address to bind (BOT_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (BOT_PORT, default 8000)")
    serve.add_argument("--index", type=Path, help="index folder (BOT_INDEX_DIR)")
    return parser


def _iso_date(value: str | None, flag: str) -> str | None:
    import datetime as dt

    if value is None:
        return None
    try:
        dt.date.fromisoformat(value[:10])
    except ValueError:
        raise BotError(f"{flag} {value!r} is not an ISO date such as 2025-01-23.") from None
    return value


def cmd_index(args: argparse.Namespace) -> int:
    from bot.embedding import get_embedder
    from bot.indexer import build_index, is_current

    settings = _settings()
    corpus = args.corpus or settings.corpus_dir
    index_dir = args.index or settings.index_dir
    if args.if_stale and not args.full and is_current(corpus, index_dir, settings.model):
        print(f"The index in {index_dir} is up to date with {corpus}.")
        return 0
    report = build_index(
        corpus,
        index_dir,
        get_embedder(settings.model),
        progress=sys.stderr.isatty(),
        approximate_above=settings.approximate_above,
    )
    print(
        f"Indexed {report.articles} articles into {report.passages} passages "
        f"({report.units} sentences) in {report.seconds:.1f}s: {index_dir}/versions/{report.version}"
    )
    for error in report.errors:
        print(f"skipped {error}", file=sys.stderr)
    if report.errors:
        print(f"{len(report.errors)} file(s) or line(s) skipped; the rest is indexed.", file=sys.stderr)
    return 1 if report.errors and args.strict else 0


def format_answer(answer: Answer) -> str:
    """Human output: each quote in quotation marks, then '— Title (date) url'."""
    lines: list[str] = []
    if not answer.answered:
        lines += [answer.message or "Not found.", "", "Nearest passages:" if answer.quotes else ""]
    for quote in answer.quotes:
        ref = quote.article
        cite = f"— {ref.title}" + (f" ({ref.date})" if ref.date else "") + (f" {ref.url}" if ref.url else "")
        lines += [f"“{quote.text}”", cite, ""]
    return "\n".join(lines).rstrip() + "\n"


def cmd_ask(args: argparse.Namespace) -> int:
    from bot.answering import answer, validate_question
    from bot.embedding import get_embedder
    from bot.store import open_index

    settings = _settings()
    since, until = _iso_date(args.since, "--since"), _iso_date(args.until, "--until")
    if args.question is not None:
        validate_question(args.question, args.k, settings.max_question_chars)
    index = open_index(args.index or settings.index_dir)
    index.check_model(settings.model)
    embedder = get_embedder(settings.model)

    def respond(question: str) -> None:
        result = answer(
            index,
            embedder,
            question,
            args.k,
            since=since,
            until=until,
            threshold=settings.threshold,
            max_chars=settings.max_question_chars,
        )
        print(
            result.model_dump_json(indent=2) if args.json else format_answer(result), end="" if not args.json else "\n"
        )

    if args.question is not None:
        respond(args.question)
        return 0
    # Interactive: one question a line until EOF; a bad question is reported, not fatal.
    while True:
        try:
            question = input("question> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not question.strip():
            continue
        try:
            respond(question)
        except BotError as exc:
            print(f"error: {exc}", file=sys.stderr)


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.api import serve

    settings = _settings()
    if args.index:
        settings.index_dir = args.index
    serve(settings, host=args.host or settings.host, port=args.port or settings.port)
    return 0


COMMANDS = {"index": cmd_index, "ask": cmd_ask, "serve": cmd_serve}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `bot` console script."""
    from pydantic import ValidationError

    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
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
