"""`bot index`, `bot export-encoder`, `bot ingest` and `bot watch`: the corpus into the index."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

from bot.cli.feeds import follow_feeds
from bot.errors import BotError
from bot.indexing.watcher import watch
from bot.models import reader, spans
from bot.models.encoder import export_folder, export_onnx, get_embedder
from bot.service import ingest
from bot.settings import get_settings, store_of


def export_encoder(model: str, index_dir: Path) -> None:
    """Export the encoder for the onnx/openvino runtimes once, and say how close it came to torch."""
    folder = export_folder(model, index_dir)
    if (folder / "export.json").is_file():
        return
    folder = export_onnx(model, index_dir)
    cosines = json.loads((folder / "export.json").read_text(encoding="utf-8"))["probe_min_cosine"]
    shown = ", ".join(f"{k} {v:.6f}" if v is not None else f"{k} refused" for k, v in cosines.items())
    print(f"Exported the encoder to {folder} (lowest probe cosine to torch: {shown}).")


def export_reader(index_dir: Path, shipped: Path = reader.SHIPPED) -> None:
    """Export the reader and its span head for the onnx/openvino runtimes once, and say how close
    each came to torch."""
    reader.check_shipped(shipped)
    if not (reader.export_folder(index_dir, shipped) / "export.json").is_file():
        _exported("reader", reader.export_reader(index_dir, shipped))
    if not (spans.export_folder(index_dir) / "export.json").is_file():
        _exported("span head", spans.export_spans(index_dir))


def _exported(what: str, folder: Path) -> None:
    drift = json.loads((folder / "export.json").read_text(encoding="utf-8"))["probe_max_drift"]
    shown = ", ".join(f"{k} {v:.4f}" if v is not None else f"{k} refused" for k, v in drift.items())
    print(f"Exported the {what} to {folder} (largest probe logit drift from torch: {shown}).")


def cmd_index(args: argparse.Namespace) -> int:
    settings = get_settings()
    corpus = args.corpus or settings.corpus_dir
    index_dir = args.index or settings.index_dir
    store = store_of(settings, index_dir)
    if settings.encoder != "torch":
        export_encoder(settings.model, index_dir)
        if settings.reader == "on":
            export_reader(index_dir)
    if args.if_stale and not args.full and store.is_current(corpus, settings.model):
        print(f"The index in {store.describe()} is up to date with {corpus}.")
        return 0
    report = store.build(corpus, get_embedder(settings.model), progress=sys.stderr.isatty(), full=args.full)
    print(
        f"Indexed {report.articles} articles into {report.passages} passages "
        f"({report.units} sentences) in {report.seconds:.1f}s: {store.describe()}, version {report.version}"
    )
    for error in report.errors:
        print(f"skipped {error}", file=sys.stderr)
    if report.errors:
        print(f"{len(report.errors)} file(s) or line(s) skipped; the rest is indexed.", file=sys.stderr)
    return 1 if report.errors and args.strict else 0


def cmd_export_encoder(args: argparse.Namespace) -> int:
    settings = get_settings()
    export_encoder(args.model or settings.model, args.index or settings.index_dir)
    return 0


def cmd_export_reader(args: argparse.Namespace) -> int:
    settings = get_settings()
    export_reader(args.index or settings.index_dir, args.reader or reader.SHIPPED)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    settings = get_settings()
    if not args.sources and not args.feed:
        raise BotError("Name something to ingest: a file, folder, .jsonl, http(s) URL, or --feed URL.")
    report, build = ingest(
        args.sources,
        args.feed,
        args.corpus or settings.corpus_dir,
        store_of(settings, args.index),
        get_embedder(settings.model),
        allow_private=settings.allow_private_urls,
        progress=sys.stderr.isatty(),
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
    settings = get_settings()
    corpus, store = args.corpus or settings.corpus_dir, store_of(settings, args.index)
    print(
        f"Watching {corpus} and the subscribed feeds (Ctrl-C to stop); the index in {store.describe()} follows them.",
        flush=True,
    )
    embedder = get_embedder(settings.model)
    building = threading.Lock()  # the folder watch and the feed poller: one build at a time, none twice
    stop_feeds = follow_feeds(settings, corpus, args.index, embedder, building)
    try:
        watch(
            corpus,
            store,
            embedder,
            on_build=lambda r: print(
                f"Indexed {r.articles} articles ({r.embedded} texts embedded) in {r.seconds:.1f}s: {r.version}",
                flush=True,
            ),
            on_error=lambda e: print(f"error: {e}", file=sys.stderr, flush=True),
            building=building,
        )
    finally:
        stop_feeds.set()
    return 0
