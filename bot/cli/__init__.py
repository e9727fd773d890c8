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
from bot.cli.quality import cmd_eval, cmd_gaps
from bot.errors import BotError

if TYPE_CHECKING:
    from bot.indexing.milvus_store import MilvusTarget
    from bot.records import Answer
    from bot.settings import Settings


def _settings() -> Settings:
    from bot.settings import get_settings

    return get_settings()


def milvus_target(settings: Settings) -> MilvusTarget | None:
    from bot.settings import milvus_target as target

    return target(settings)


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
    from bot.indexing.build import build_index, is_current
    from bot.models.encoder import get_embedder

    settings = _settings()
    corpus = args.corpus or settings.corpus_dir
    index_dir = args.index or settings.index_dir
    milvus = milvus_target(settings)
    where = milvus.describe() if milvus else str(index_dir)
    if settings.encoder != "torch":
        _export(settings.model, index_dir)
    if args.if_stale and not args.full and is_current(corpus, index_dir, settings.model, milvus):
        print(f"The index in {where} is up to date with {corpus}.")
        return 0
    report = build_index(
        corpus,
        index_dir,
        get_embedder(settings.model),
        progress=sys.stderr.isatty(),
        approximate_above=settings.approximate_above,
        full=args.full,
        milvus=milvus,
    )
    print(
        f"Indexed {report.articles} articles into {report.passages} passages "
        f"({report.units} sentences) in {report.seconds:.1f}s: "
        + (f"Milvus {where}, version {report.version}" if milvus else f"{index_dir}/versions/{report.version}")
    )
    for error in report.errors:
        print(f"skipped {error}", file=sys.stderr)
    if report.errors:
        print(f"{len(report.errors)} file(s) or line(s) skipped; the rest is indexed.", file=sys.stderr)
    return 1 if report.errors and args.strict else 0


def _export(model: str, index_dir: Path) -> None:
    import json

    from bot.models.encoder import export_folder, export_onnx

    folder = export_folder(model, index_dir)
    if (folder / "export.json").is_file():
        return
    folder = export_onnx(model, index_dir)
    cosines = json.loads((folder / "export.json").read_text(encoding="utf-8"))["probe_min_cosine"]
    shown = ", ".join(f"{k} {v:.6f}" if v is not None else f"{k} refused" for k, v in cosines.items())
    print(f"Exported the encoder to {folder} (lowest probe cosine to torch: {shown}).")


def cmd_export_encoder(args: argparse.Namespace) -> int:
    settings = _settings()
    _export(args.model or settings.model, args.index or settings.index_dir)
    return 0


def format_answer(answer: Answer) -> str:
    """Human output: each quote in quotation marks, then '— Title (date) url'."""
    lines: list[str] = [f"(read as a follow-up: {answer.context})", ""] if answer.context else []
    if not answer.answered:
        lines += [answer.message or "Not found.", "", "Nearest passages:" if answer.quotes else ""]
    for quote in answer.quotes:
        ref = quote.article
        cite = f"— {ref.title} ({ref.date or 'undated'})" + (f" {ref.url}" if ref.url else "")
        if ref.also_reported_by:  # near-duplicate copies of the article elsewhere
            cite += "\n  also reported by " + "; ".join(
                (c.source or c.title) + (f" {c.url}" if c.url else "") for c in ref.also_reported_by
            )
        lines += [f"“{quote.text}”", cite, ""]
    return "\n".join(lines).rstrip() + "\n"


NEW_CONVERSATION = "/new"


def cmd_ask(args: argparse.Namespace) -> int:
    from bot.answer.answering import validate_question
    from bot.answer.conversation import MAX_HISTORY, Turn, validate_history
    from bot.indexing.live import open_search_index
    from bot.models.encoder import open_embedder
    from bot.service import Filters, Service

    settings = _settings()
    since, until = _iso_date(args.since, "--since"), _iso_date(args.until, "--until")
    asked_on = _iso_date(args.asked_on, "--asked-on")
    if args.question is not None:
        validate_question(args.question, args.k, settings.max_question_chars)
    history = [Turn(q) for q in validate_history(args.history, settings.max_question_chars)]
    index_dir = args.index or settings.index_dir
    index = open_search_index(index_dir, milvus_target(settings))
    index.check_model(settings.model)
    service = Service(settings, open_embedder(settings.model, settings.encoder, index_dir, export="here"), index=index)

    def respond(question: str) -> None:
        result = service.answer(question, args.k, Filters(since, until, args.recent, asked_on), history)
        print(
            result.model_dump_json(indent=2) if args.json else format_answer(result), end="" if not args.json else "\n"
        )
        # The prompt follows the conversation: this question is the next one's history.
        history.append(Turn(result.question, result.quotes[0].article.id if result.quotes else None))
        del history[:-MAX_HISTORY]

    if args.question is not None:
        respond(args.question)
        return 0
    # Interactive: one question a line until EOF; a bad question is reported, not fatal.
    print(f"Follow-up questions follow the conversation; type {NEW_CONVERSATION} to start a new one.", file=sys.stderr)
    while True:
        try:
            question = input("question> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not question.strip():
            continue
        if question.strip() == NEW_CONVERSATION:
            history.clear()
            print("(new conversation)", file=sys.stderr)
            continue
        try:
            respond(question)
        except BotError as exc:
            print(f"error: {exc}", file=sys.stderr)


def cmd_ingest(args: argparse.Namespace) -> int:
    from bot.models.encoder import get_embedder
    from bot.service import ingest

    settings = _settings()
    if not args.sources and not args.feed:
        raise BotError("Name something to ingest: a file, folder, .jsonl, http(s) URL, or --feed URL.")
    report, build = ingest(
        args.sources,
        args.feed,
        args.corpus or settings.corpus_dir,
        args.index or settings.index_dir,
        get_embedder(settings.model),
        allow_private=settings.allow_private_urls,
        progress=sys.stderr.isatty(),
        approximate_above=settings.approximate_above,
        milvus=milvus_target(settings),
    )
    for outcome in report.outcomes:
        print(outcome.line(), file=sys.stderr if outcome.status == "rejected" else sys.stdout)
    print(report.summary() + ".")
    if build is not None:
        print(
            f"Indexed {build.articles} articles ({build.passages} passages; {build.embedded} texts embedded, "
            f"the rest cached) in {build.seconds:.1f}s: version {build.version}"
        )
    return 1 if args.strict and report.count("rejected") else 0


def cmd_watch(args: argparse.Namespace) -> int:
    from bot.indexing.watcher import watch
    from bot.models.encoder import get_embedder

    settings = _settings()
    corpus, index_dir = args.corpus or settings.corpus_dir, args.index or settings.index_dir
    print(f"Watching {corpus} (Ctrl-C to stop); the index in {index_dir} follows it.", flush=True)
    watch(
        corpus,
        index_dir,
        get_embedder(settings.model),
        on_build=lambda r: print(
            f"Indexed {r.articles} articles ({r.embedded} texts embedded) in {r.seconds:.1f}s: {r.version}", flush=True
        ),
        on_error=lambda e: print(f"error: {e}", file=sys.stderr, flush=True),
        approximate_above=settings.approximate_above,
        milvus=milvus_target(settings),
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.http.app import serve

    settings = _settings()
    if args.index:
        settings.index_dir = args.index
    serve(settings, host=args.host or settings.host, port=args.port or settings.port)
    return 0


def cmd_slack(args: argparse.Namespace) -> int:
    from bot.slack.socket_mode import run_socket_mode

    settings = _settings()
    if args.index:
        settings.index_dir = args.index
    run_socket_mode(settings)
    return 0


COMMANDS = {
    "index": cmd_index,
    "export-encoder": cmd_export_encoder,
    "ingest": cmd_ingest,
    "watch": cmd_watch,
    "ask": cmd_ask,
    "serve": cmd_serve,
    "eval": cmd_eval,
    "gaps": cmd_gaps,
    "slack": cmd_slack,
}


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
