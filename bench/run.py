"""`make bench`: every figure next to its floor, measured in one run on this machine.

Reports, never asserts: prints a table (figure, floor, ratio, goal) and writes JSON so runs can
be compared. See bench/README.md for what each row measures and what is synthetic.

    .venv/bin/python bench/run.py [--shared ../shared] [--output bench/results.json] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import data
import feeds_bench
import http_load
import milvus_bench
import pipeline
import scale

ROOT = Path(__file__).resolve().parent.parent
Row = dict[str, Any]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def row(
    figure: str,
    value: float,
    unit: str,
    floor: float = math.nan,
    floor_name: str = "",
    goal: str = "",
    ratio: float | None = None,
) -> Row:
    if ratio is None:
        ratio = value / floor if floor and not math.isnan(floor) else math.nan
    return {
        "figure": figure,
        "value": value,
        "unit": unit,
        "floor": floor,
        "floor_name": floor_name,
        "ratio": ratio,
        "goal": goal,
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else math.nan


# (runtime, workers, encoder threads per worker, reader) arrangements of `bot serve`, each loaded at
# 1, 8 and 32 clients; 0 threads is the default (half the CPUs). torch with two workers is left out:
# two torch processes need ~1.2 GB and one already keeps the cores busy. The default runtime is
# also served with the reader off, for its cost.
ARRANGEMENTS = [
    ("torch", 1, 0, "on"),
    ("onnx", 1, 0, "on"),
    ("openvino", 1, 0, "on"),
    ("openvino", 1, 0, "off"),
    ("openvino", 1, 2, "on"),
    ("onnx", 2, 0, "on"),
    ("openvino", 2, 0, "on"),
]


def http_section(
    embedder: Any,
    shared: Path | None,
    work: Path,
    results: dict[str, Any],
    arrangements: list[tuple[str, int, int, str]] = ARRANGEMENTS,
) -> list[Row]:
    from bot.answer.reading import DEFAULT_READER
    from bot.indexing.faiss_build import build_index
    from bot.models.encoder import export_onnx, open_embedder
    from bot.models.files import DEFAULT_MODEL
    from bot.models.reader import export_reader
    from bot.models.runtimes import DEFAULT_RUNTIME
    from bot.models.spans import export_spans
    from bot.settings import DEFAULT_WORKERS

    questions, source = data.questions(shared, 48 + 160 + 40 + 96 + 192 + 8)
    floor = pipeline.encode_floor(embedder, questions[:208])
    results["encode_floor"] = floor | {"questions": source}
    log(f"floor: one encode {floor['single_ms']:.1f} ms, batch of 32 {floor['batch32_per_s']:.0f}/s")
    build_index(ROOT / "corpus", work / "seed-index", embedder)
    export_onnx(DEFAULT_MODEL, work / "seed-index")
    export_reader(work / "seed-index")  # as `bot index` leaves it: no server exports at start-up
    export_spans(work / "seed-index")
    rows = [
        row("bare encode, 1 question (torch)", floor["single_ms"], "ms"),
        row("bare encode, batch of 32 (torch)", floor["batch32_per_s"], "q/s"),
    ]
    results["encode_runtimes"] = {}
    for runtime in ("onnx", "openvino"):
        other = open_embedder(DEFAULT_MODEL, runtime, work / "seed-index")
        figures = pipeline.encode_floor(other, questions[:208])
        results["encode_runtimes"][runtime] = figures
        log(f"{runtime}: one encode {figures['single_ms']:.1f} ms, batch of 32 {figures['batch32_per_s']:.0f}/s")
        rows.append(
            row(f"bare encode, 1 question ({runtime})", figures["single_ms"], "ms", floor["single_ms"], "torch")
        )
        rows.append(
            row(
                f"bare encode, batch of 32 ({runtime})",
                figures["batch32_per_s"],
                "q/s",
                floor["batch32_per_s"],
                "torch",
            )
        )
        del other
    rest = questions[208:]
    for runtime, workers, threads, reader in arrangements:
        name = f"{runtime}×{workers}" + (f", {threads} threads" if threads else "") + f", reader {reader}"
        default = (runtime, workers, threads, reader) == (DEFAULT_RUNTIME, DEFAULT_WORKERS, 0, DEFAULT_READER)
        env = {"BOT_ENCODER": runtime, "BOT_WORKERS": str(workers), "BOT_READER": reader}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        rows += serve_arrangement(name, default, env, rest, floor, work, results)
    return rows


def serve_arrangement(
    name: str,
    default: bool,
    env: dict[str, str],
    rest: list[str],
    floor: dict[str, float],
    work: Path,
    results: dict[str, Any],
) -> list[Row]:
    """One `bot serve` arrangement: start-up, /ask at 1/8/32 clients against the torch floor, peak RSS."""
    figures: dict[str, Any] = {}
    results.setdefault("arrangements", {})[name] = figures
    tag = f" [{name}{', default' if default else ''}]"
    rows: list[Row] = []
    with http_load.Server(work / "seed-index", work / f"serve-seed-{name}", env) as server:
        figures["startup"] = {"healthz_s": server.to_healthz, "readyz_s": server.to_readyz}
        rows.append(row("start-up to /healthz" + tag, server.to_healthz, "s", goal="≤ 2 s"))
        rows.append(
            row(
                "start-up to /readyz (model + seed index)" + tag, server.to_readyz, "s", goal="≤ 4 s" if default else ""
            )
        )
        plan = [(1, rest[:40]), (8, rest[40:136]), (32, rest[136:328])]
        http_load.load(server.url, rest[328:], 1)  # warm-up
        for clients, qs in plan:
            result = http_load.load(server.url, qs, clients)
            p50, p99 = _percentile(result.latencies_ms, 0.5), _percentile(result.latencies_ms, 0.99)
            figures[f"http_{clients}"] = {
                "requests": result.requests,
                "errors": result.errors,
                "p50_ms": p50,
                "p99_ms": p99,
                "throughput_per_s": result.throughput,
                "server_took_p50_ms": _percentile(result.server_ms, 0.5),
            }
            log(
                f"{name} /ask x{clients}: p50 {p50:.1f} ms p99 {p99:.1f} ms {result.throughput:.1f}/s ({result.errors} errors); "
                f"took_ms p50 {_percentile(result.server_ms, 0.5):.1f}"
            )
            goal_p50 = "≤ 2.5×" if clients == 1 and default else ""
            rows.append(
                row(f"/ask p50, {clients} client(s){tag}", p50, "ms", floor["single_ms"], "1 torch encode", goal_p50)
            )
            rows.append(row(f"/ask p99, {clients} client(s){tag}", p99, "ms", floor["single_ms"], "1 torch encode"))
            goal_tp = "≥ 0.6×" if clients == 32 and default else ""
            rows.append(
                row(
                    f"/ask throughput, {clients} client(s){tag}",
                    result.throughput,
                    "q/s",
                    floor["batch32_per_s"],
                    "torch batch-32 encode",
                    goal_tp,
                )
            )
        rss = server.peak_rss_mb()
        figures["peak_rss_mb"] = rss
        rows.append(
            row("server peak RSS, seed index (all processes)" + tag, rss, "MB", goal="≤ 450 MB" if default else "")
        )
    return rows


def build_section(embedder: Any, shared: Path | None, work: Path, results: dict[str, Any], n: int) -> list[Row]:
    rows_in, source = data.articles(shared, n)
    build = pipeline.build_vs_encode(embedder, rows_in, work)
    results["build"] = build | {"text": source}
    log(
        f"build: {build['passages']} passages in {build['build_s']:.1f} s; bare passages {build['bare_passages_s']:.1f} s + units {build['bare_units_s']:.1f} s"
    )
    return [
        row(
            f"build, passages/s ({build['articles']} {source.split()[0]} articles)",
            build["build_passages_per_s"],
            "p/s",
            build["bare_passages_per_s"],
            "bare encode of passages",
            "≥ 0.85×",
        ),
        row(
            "build, time vs bare encode of passages + units",
            build["build_s"],
            "s",
            build["bare_all_s"],
            "bare encode, passages + units",
            "",
            ratio=build["bare_all_s"] / build["build_s"],
        ),
    ]


def incremental_section(embedder: Any, work: Path, results: dict[str, Any]) -> list[Row]:
    inc = pipeline.incremental(embedder, work)
    results["incremental"] = inc
    log(
        f"incremental: {inc['texts_added']} texts encoded of {inc['texts_full']}; {inc['added_s']:.1f} s vs {inc['full_s']:.1f} s"
    )
    return [
        row("add 1 article to 10,000 (s, encode costed)", inc["added_s"], "s", inc["full_s"], "full rebuild", "≤ 0.02×")
    ]


def feeds_section(embedder: Any, work: Path, results: dict[str, Any]) -> list[Row]:
    """The feed poller: a 304 poll, 10 new entries, a first poll of 5,000, each beside its baseline."""
    fig = feeds_bench.measure(embedder, work / "feeds")
    results["feeds"] = fig
    log(
        f"feeds: 304 poll {fig['poll_304_ms']:.1f} ms (bare GET {fig['bare_304_ms']:.1f} ms); 10 new "
        f"{fig['poll_10_new_s']:.1f} s (ingest of 10 {fig['ingest_10_s']:.1f} s); first poll of "
        f"{fig['entries']:,} {fig['first_poll_s']:.1f} s ({fig['first_poll_outcome']})"
    )
    return [
        row(
            f"feed poll, unchanged (304), {fig['usual_entries']} entries",
            fig["poll_304_ms"],
            "ms",
            fig["bare_304_ms"],
            "bare conditional GET",
        ),
        row(
            f"feed poll, 10 new of {fig['usual_entries'] + 10} entries (fetch + build)",
            fig["poll_10_new_s"],
            "s",
            fig["ingest_10_s"],
            "bot ingest of 10 pages",
        ),
        row(
            f"feed first poll, {fig['entries']:,} entries, newest {fig['first']}",
            fig["first_poll_s"],
            "s",
            fig["parse_only_s"],
            "feedparser alone",
        ),
    ]


def search_section(cache: Path, results: dict[str, Any]) -> tuple[list[Row], Path]:
    rows: list[Row] = []
    figures = []
    for n in (10_000, 100_000):
        fig = scale.search_figures(n, data.clustered(n), None)
        figures.append(fig)
    folder, timings = scale.million_version(cache, log=log)
    results["million_version"] = timings
    from bot.indexing.versions import open_index

    index = open_index(folder)
    import numpy as np

    vectors = np.load(next(folder.glob("versions/*/passage_vectors.npy")))
    figures.append(scale.search_figures(len(vectors), vectors, index.faiss))
    del vectors, index
    results["search"] = figures
    for fig in figures:
        log(
            f"search {fig['passages']:,}: {fig['index']} p50 {fig['p50_ms']:.2f} ms recall {fig['recall_at_10']:.3f} (exact {fig['exact_p50_ms']:.1f} ms)"
        )
        goal = "≤ 5 ms, recall ≥ 0.95" if fig["passages"] >= 1_000_000 else ""
        rows.append(
            row(
                f"search {fig['passages']:,}: {fig['index']} p50",
                fig["p50_ms"],
                "ms",
                fig["exact_p50_ms"],
                "exact search",
                goal,
            )
        )
        rows.append(
            row(
                f"search {fig['passages']:,}: recall@10 vs exact",
                fig["recall_at_10"],
                "",
                1.0,
                "exact",
                "≥ 0.95" if fig["passages"] >= 1_000_000 else "",
            )
        )
    return rows, folder


def milvus_section(embedder: Any, shared: Path | None, work: Path, results: dict[str, Any]) -> list[Row]:
    """The Milvus backend (Milvus Lite 2.5) next to FAISS, in one run: build, search, /ask."""
    from bot.indexing.faiss_build import build_index

    rows: list[Row] = []
    figures = []
    for n in (10_000, 100_000):
        fig = milvus_bench.search_figures(n, work)
        figures.append(fig)
        log(
            f"milvus {n:,}: build {fig['milvus_build_s']:.1f} s (FAISS + BM25 {fig['faiss_build_s']:.1f} s), dense p50 "
            f"{fig['milvus_dense_p50_ms']:.2f} ms recall {fig['milvus_recall_at_10']:.3f}, hybrid p50 "
            f"{fig['milvus_hybrid_p50_ms']:.2f} ms (FAISS + bm25s {fig['faiss_hybrid_p50_ms']:.2f} ms)"
        )
        label = f"Milvus Lite {n:,}:"
        rows.append(row(f"{label} build", fig["milvus_build_s"], "s", fig["faiss_build_s"], "FAISS + BM25 build"))
        rows.append(row(f"{label} dense p50 (FLAT)", fig["milvus_dense_p50_ms"], "ms"))
        rows.append(row(f"{label} recall@10 vs exact", fig["milvus_recall_at_10"], "", 1.0, "exact"))
        rows.append(
            row(
                f"{label} hybrid p50 (z-score fusion)",
                fig["milvus_hybrid_p50_ms"],
                "ms",
                fig["faiss_hybrid_p50_ms"],
                "FAISS hybrid",
            )
        )
    results["milvus_search"] = figures
    questions, _ = data.questions(shared, 48)
    faiss_dir = work / "seed-faiss-index"
    started = time.perf_counter()
    build_index(ROOT / "corpus", faiss_dir, embedder)
    faiss_build = time.perf_counter() - started
    env, milvus_build = milvus_bench.seed_on_milvus(embedder, ROOT / "corpus", work)
    rows.append(row("Milvus Lite: build the seed", milvus_build, "s", faiss_build, "FAISS build"))
    p50: dict[str, float] = {}
    for backend, extra in (("faiss", {}), ("milvus", env)):
        with http_load.Server(faiss_dir, work / f"serve-{backend}", extra_env=extra) as server:
            http_load.load(server.url, questions[40:], 1)  # warm-up
            result = http_load.load(server.url, questions[:40], 1)
            p50[backend] = _percentile(result.latencies_ms, 0.5)
            results[f"milvus_ask_{backend}"] = {"p50_ms": p50[backend], "errors": result.errors}
    log(f"/ask p50 on the seed: Milvus Lite {p50['milvus']:.1f} ms, FAISS {p50['faiss']:.1f} ms")
    rows.append(row("Milvus Lite: /ask p50, seed, 1 client", p50["milvus"], "ms", p50["faiss"], "FAISS /ask p50"))
    return rows


def million_server_section(folder: Path, work: Path, shared: Path | None, results: dict[str, Any]) -> list[Row]:
    questions, _ = data.questions(shared, 30)
    with http_load.Server(folder, work / "serve-1m") as server:
        result = http_load.load(server.url, questions, 1)
        rss = server.peak_rss_mb()
        p50 = _percentile(result.latencies_ms, 0.5)
        results["million_server"] = {
            "readyz_s": server.to_readyz,
            "peak_rss_mb": rss,
            "ask_p50_ms": p50,
            "errors": result.errors,
        }
    log(f"1M server: ready in {server.to_readyz:.1f} s, /ask p50 {p50:.0f} ms, peak RSS {rss:.0f} MB")
    return [
        row("server peak RSS, 1M passages", rss, "MB"),
        row("start-up to /readyz, 1M passages", server.to_readyz, "s"),
        row("/ask p50, 1 client, 1M passages", p50, "ms"),
    ]


def _arrangement(text: str) -> tuple[str, int, int, str]:
    """`runtime:workers[:threads[:reader]]`, e.g. openvino:1, openvino:1:0:off."""
    runtime, workers, *rest = text.split(":")
    threads = int(rest[0]) if rest else 0
    reader = rest[1] if len(rest) > 1 else "on"
    if reader not in ("on", "off"):
        raise SystemExit(f"--arrangement {text!r}: the reader is on or off")
    return runtime, int(workers), threads, reader


def import_time() -> float:
    code = "import time; t = time.perf_counter(); import bot.http.app; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(out.stdout.strip())


def fmt(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"


def table(rows: list[Row]) -> str:
    header = ["figure", "value", "unit", "floor", "floor is", "ratio", "goal"]
    body = [
        [
            r["figure"],
            fmt(r["value"]),
            r["unit"],
            fmt(r["floor"]),
            r["floor_name"],
            fmt(r["ratio"]) + ("×" if not math.isnan(r["ratio"]) else ""),
            r["goal"],
        ]
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) for line in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, help="folder with eval/ (real questions and text); optional")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bot-bench-cache",
        help="keeps the 1M-passage index between runs",
    )
    parser.add_argument("--build-articles", type=int, default=60)
    parser.add_argument(
        "--arrangement",
        action="append",
        metavar="RUNTIME:WORKERS[:THREADS]",
        help="serve only these arrangements (repeatable), runtime:workers[:threads[:reader]], e.g. openvino:1 or openvino:1:0:off; default: all of ARRANGEMENTS",
    )
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["http", "build", "incremental", "feeds", "search", "million", "milvus"],
    )
    args = parser.parse_args()
    shared = args.shared if args.shared and (args.shared / "eval").is_dir() else None
    started = time.perf_counter()
    import torch

    from bot.models.encoder import get_embedder

    embedder = get_embedder()
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "load_average": os.getloadavg(),
        },
        "import_bot_api_s": import_time(),
    }
    rows: list[Row] = [row("import bot.http.app (fastapi, numpy, bot)", results["import_bot_api_s"], "s")]
    args.cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bot-bench-"))
    try:
        if "http" not in args.skip:
            chosen = [_arrangement(a) for a in args.arrangement] if args.arrangement else ARRANGEMENTS
            rows += http_section(embedder, shared, work, results, chosen)
        if "build" not in args.skip:
            rows += build_section(embedder, shared, work, results, args.build_articles)
        if "incremental" not in args.skip:
            rows += incremental_section(embedder, work, results)
        if "feeds" not in args.skip:
            rows += feeds_section(embedder, work, results)
        if "search" not in args.skip:
            search_rows, folder = search_section(args.cache, results)
            rows += search_rows
            if "million" not in args.skip:
                rows += million_server_section(folder, work, shared, results)
        if "milvus" not in args.skip:
            rows += milvus_section(embedder, shared, work, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["machine"]["load_average_end"] = os.getloadavg()
    results["seconds"] = time.perf_counter() - started
    results["rows"] = rows
    print(table(rows))
    print(
        f"\n{results['seconds']:.0f} s; load average {results['machine']['load_average']} → {results['machine']['load_average_end']} on {os.cpu_count()} CPUs"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
