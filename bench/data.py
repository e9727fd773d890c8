"""Inputs for the benchmark: questions, article texts and synthetic vectors.

Real text comes from `<shared>/eval` when it is there (SQuAD v1.1 dev paragraphs and questions,
the Stargate dev questions); otherwise sentences are generated from a fixed vocabulary, so the
benchmark runs anywhere. Vectors for the search-at-scale figures are synthetic (see `clustered`).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

WORDS = (
    "market energy project data centre compute partner investment chairman company government "
    "policy model research network power grid site build operate contract billion million plan "
    "announce launch report growth capacity training chip cloud service customer region country "
    "city state fund capital technology team leader board statement agreement deal share price "
    "quarter year month week today deploy expand supply demand factory worker job economy trade"
).split()


def _jsonl(path: Path, limit: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    if not path.is_file():
        return rows
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) >= limit:
                break
    return rows


def generated_sentence(rng: random.Random, words: int = 14) -> str:
    body = " ".join(rng.choice(WORDS) for _ in range(words))
    return body[0].upper() + body[1:] + "."


def generated_article(rng: random.Random, sentences: int) -> str:
    return " ".join(generated_sentence(rng, rng.randint(8, 22)) for _ in range(sentences))


def questions(shared: Path | None, n: int) -> tuple[list[str], str]:
    """`n` distinct questions (so the server's vector cache never answers) and where they came from."""
    found: list[str] = []
    if shared is not None:
        for row in _jsonl(shared / "eval" / "stargate-dev.jsonl", n):
            found.append(str(row["question"]))
        for row in _jsonl(shared / "eval" / "squad-v1.1-dev" / "qa.jsonl", 4 * n):
            found.append(str(row["question"]))
    distinct = list(dict.fromkeys(found))[:n]
    source = "stargate-dev + SQuAD v1.1 dev questions"
    if len(distinct) < n:
        rng = random.Random(7)
        while len(distinct) < n:
            distinct.append(f"What did the {rng.choice(WORDS)} {rng.choice(WORDS)} say about the {rng.choice(WORDS)}?")
            distinct = list(dict.fromkeys(distinct))
        source = "generated questions" if not found else source + " + generated"
    return distinct, source


def articles(shared: Path | None, n: int) -> tuple[list[dict[str, str]], str]:
    """`n` articles as {"id", "title", "text"}: SQuAD paragraphs when available, else generated."""
    rows = _jsonl(shared / "eval" / "squad-v1.1-dev" / "passages.jsonl", n) if shared is not None else []
    out = [{"id": str(r["id"]), "title": str(r.get("title", r["id"])), "text": str(r["text"])} for r in rows]
    source = "SQuAD v1.1 dev paragraphs" if out else "generated text"
    rng = random.Random(11)
    while len(out) < n:
        out.append(
            {"id": f"gen-{len(out):06d}", "title": generated_sentence(rng, 5)[:-1], "text": generated_article(rng, 8)}
        )
    return out[:n], source


def write_jsonl(rows: list[dict[str, str]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def clustered(n: int, dimension: int = 384, seed: int = 0, per_cluster: int = 100) -> np.ndarray:
    """`n` L2-normalised vectors in clusters of about `per_cluster` around random centres.

    Uniform random vectors in 384-d have no neighbours worth finding (every pair is at cosine ~0),
    which no embedding model produces; clusters give each point near neighbours, as topics do.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // per_cluster), dimension), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dimension), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        size = min(step, n - start)
        rows = centres[rng.integers(0, len(centres), size)]
        rows += rng.standard_normal((size, dimension), dtype=np.float32) / np.sqrt(dimension)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        out[start : start + size] = rows
    return out


def queries_near(vectors: np.ndarray, n: int, seed: int = 1, noise: float = 0.6) -> np.ndarray:
    """`n` queries, each a stored vector moved by noise (a question near its passage)."""
    rng = np.random.default_rng(seed)
    picked = vectors[rng.integers(0, len(vectors), n)].astype(np.float32)
    picked += noise * rng.standard_normal(picked.shape, dtype=np.float32) / np.sqrt(vectors.shape[1])
    picked /= np.linalg.norm(picked, axis=1, keepdims=True)
    return np.ascontiguousarray(picked)
