"""The Milvus backend next to the FAISS backend on the same corpus and questions.

    .venv/bin/python bench/agreement.py --shared ../shared [--news DIR] [--output build/agreement.json]

For each set: the FAISS index (built once, cached by `bot.evaluation.cached_index`) and a Milvus
Lite index of the same corpus, built from the same embedding cache (nothing is embedded twice);
every question answered by both. Reported: how often the top quote is the same (article and
text), answer-in-top-quote and recall@1 of each backend, and the questions where they differ.
Sets: stargate-dev (the seed among the SQuAD paragraphs), SQuAD v1.1 dev (every 10th question),
and a news set (`articles.jsonl` + `qa.jsonl`, e.g. RealTimeQA 2023) when `--news` names one.
Reports; never asserts.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.indexing.milvus_build import build_milvus  # noqa: E402
from bot.indexing.milvus_index import open_milvus_index  # noqa: E402
from bot.indexing.milvus_store import MilvusTarget, release  # noqa: E402
from bot.models.encoder import get_embedder  # noqa: E402
from bot.quality import evaluation  # noqa: E402


def sets(shared: Path, news: Path | None) -> list[tuple[str, Path, list[Path], int]]:
    squad = shared / "eval/squad-v1.1-dev/passages.jsonl"
    out = [
        ("stargate-dev", shared / "eval/stargate-dev.jsonl", [ROOT / "corpus", squad], 1),
        ("squad-v1.1-dev /10", shared / "eval/squad-v1.1-dev/qa.jsonl", [squad], 10),
    ]
    if news is not None:
        out.append((f"news ({news.name})", news / "qa.jsonl", [news / "articles.jsonl"], 1))
    return [s for s in out if s[1].exists() and all(p.exists() for p in s[2])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--news", type=Path, help="a folder with articles.jsonl and qa.jsonl")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bot-eval-cache")
    parser.add_argument("--output", type=Path, default=ROOT / "build/agreement.json")
    args = parser.parse_args()
    embedder = get_embedder("sentence-transformers/all-MiniLM-L6-v2")
    results: dict[str, dict[str, object]] = {}
    work = Path(tempfile.mkdtemp(prefix="bot-agreement-"))
    for name, qa, corpora, every in sets(args.shared, args.news):
        questions = evaluation.subsample(evaluation.load_questions(qa), every)
        print(f"{name}: {len(questions)} questions", file=sys.stderr, flush=True)
        faiss_index = evaluation.cached_index(corpora, embedder, args.cache)
        # The same articles, from the FAISS index's own corpus file: same order, same embeddings cache.
        source = work / f"{len(results)}.jsonl"
        with source.open("w", encoding="utf-8") as handle:
            for article in faiss_index.articles:
                row = {k: v for k, v in asdict(article).items() if k not in ("path", "copies") and v is not None}
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        target = MilvusTarget(str(work / f"set{len(results)}.db"))
        started = time.perf_counter()
        build_milvus(target, source, faiss_index.folder.parent.parent, embedder)
        build_seconds = time.perf_counter() - started
        milvus_index = open_milvus_index(target)
        row: dict[str, object] = {"questions": len(questions), "milvus_build_s": round(build_seconds, 1)}
        outcomes = {}
        for backend, index in (("faiss", faiss_index), ("milvus", milvus_index)):
            report, outcome = evaluation.evaluate(index, embedder, questions, "product")
            outcomes[backend] = outcome
            row[backend] = {
                "answer_in_top_quote": report.answer_in_top_quote,
                "recall_at_1": report.recall_at_1,
                "questions_per_second": report.questions_per_second,
            }
        same = [
            (a.articles[:1], a.top_quote) == (b.articles[:1], b.top_quote)
            for a, b in zip(outcomes["faiss"], outcomes["milvus"], strict=True)
        ]
        row["top_quote_agreement"] = round(sum(same) / max(1, len(same)), 3)
        row["differ"] = [
            {"question": a.question.question, "faiss": a.top_quote[:160], "milvus": b.top_quote[:160]}
            for a, b, s in zip(outcomes["faiss"], outcomes["milvus"], same, strict=True)
            if not s
        ]
        results[name] = row
        release(target)
        print(f"  agreement {row['top_quote_agreement']}", file=sys.stderr, flush=True)
    print(
        f"{'set':<24} {'n':>5} {'top quote same':>15} {'ans@top FAISS':>14} {'ans@top Milvus':>15} {'R@1 FAISS':>10} {'R@1 Milvus':>11}"
    )
    for name, row in results.items():
        f, m = row["faiss"], row["milvus"]
        assert isinstance(f, dict) and isinstance(m, dict)
        print(
            f"{name:<24} {row['questions']:>5} {row['top_quote_agreement']:>15.3f} {f['answer_in_top_quote']:>14} "
            f"{m['answer_in_top_quote']:>15} {f['recall_at_1']!s:>10} {m['recall_at_1']!s:>11}"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
