"""The reader's training data: (question, sentence, label) pairs, built reproducibly into a folder.

    build(snapshot, shared, out, seed) → out/pairs.jsonl + out/manifest.json

Sources (their rules in their modules): RealTime QA news quizzes of March 2023 on
(bot.quality.reader_news) and the `train` half of SQuAD dev's Wikipedia pages
(bot.quality.reader_squad, SPLIT_RULE). The same inputs and seed give the same bytes. The pairs
hold article text, so `out` belongs in build/ (git-ignored), never in git; the manifest records
each source file's sha256 and counts, the split rule and the mix, and is what a trained reader's
own manifest cites.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bot.durable import write_atomically
from bot.errors import BotError
from bot.quality import reader_news, reader_squad
from bot.quality.reader_text import Pair, Parts

FORMAT = 1
DEFAULT_OUT = Path("build/reader-data")
# News share of the pairs when --max-pairs cuts: news questions paraphrase their articles, SQuAD's
# copy the paragraph's words, and news is what the bot serves.
NEWS_SHARE = 0.6


def _cut(pairs: list[Pair], limit: int, seed: int) -> list[Pair]:
    """At most `limit` pairs, whole questions kept or dropped (chosen by seed)."""
    groups: dict[str, list[Pair]] = {}
    for pair in pairs:
        groups.setdefault(pair.group, []).append(pair)
    order = np.random.default_rng(seed).permutation(len(groups))
    names = sorted(groups)
    kept: set[str] = set()
    total = 0
    for i in order:
        size = len(groups[names[int(i)]])
        if total + size > limit:
            continue
        kept.add(names[int(i)])
        total += size
    return [p for p in pairs if p.group in kept]


def mix(pairs: Iterable[Pair]) -> dict[str, Any]:
    """Counts per source, label and kind."""
    pairs = list(pairs)
    return {
        "pairs": len(pairs),
        "positives": sum(p.label for p in pairs),
        "questions": len({p.group for p in pairs}),
        "by_source": dict(sorted(Counter(p.source for p in pairs).items())),
        "by_kind": dict(sorted(Counter(f"{p.source}/{p.kind}/{p.label}" for p in pairs).items())),
    }


def build(
    snapshot: Path | None,
    shared: Path | None,
    out: Path = DEFAULT_OUT,
    seed: int = 0,
    max_pairs: int | None = None,
    commit: str = reader_news.COMMIT,
) -> dict[str, Any]:
    """Write out/pairs.jsonl and out/manifest.json from the sources given; returns the manifest."""
    if snapshot is None and shared is None:
        raise BotError("No training source: give --snapshot (RealTime QA git dir) and/or --shared (eval folder).")
    parts = Parts()
    news = list(reader_news.news_pairs(reader_news.Snapshot(snapshot, commit), seed, parts)) if snapshot else []
    squad = list(reader_squad.squad_pairs(shared, seed, parts)) if shared else []
    if max_pairs is not None and len(news) + len(squad) > max_pairs:
        news_limit = min(len(news), int(max_pairs * NEWS_SHARE) if squad else max_pairs)
        news = _cut(news, news_limit, seed)
        squad = _cut(squad, max_pairs - len(news), seed)
    rules = {
        "news_snapshot_commit": commit if snapshot else None,
        "news_weeks": f"past/{{{','.join(reader_news.YEARS)}}}/ weeks from {reader_news.TRAIN_FROM} on",
        "news_off_limits": list(reader_news.OFF_LIMITS),
        "squad_split": reader_squad.SPLIT_RULE,
        "news_share_when_cut": NEWS_SHARE,
    }
    return write(out, news + squad, seed, max_pairs, rules, parts)


def write(
    out: Path, pairs: list[Pair], seed: int, max_pairs: int | None, rules: dict[str, Any], parts: Parts
) -> dict[str, Any]:
    """Write `pairs` to out/pairs.jsonl and their manifest (sha256, mix, the rules and files they
    came from) to out/manifest.json, as `load` reads them; returns the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    body = "".join(json.dumps(asdict(p), ensure_ascii=False, sort_keys=True) + "\n" for p in pairs)
    write_atomically(out / "pairs.jsonl", body)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "seed": seed,
        "max_pairs": max_pairs,
        "pairs_sha256": hashlib.sha256(body.encode("utf-8")).hexdigest(),
        "mix": mix(pairs),
        "rules": rules,
        "counts": dict(sorted(parts.counts.items())),
        "files": parts.files,
    }
    write_atomically(out / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def load(folder: Path) -> tuple[list[Pair], dict[str, Any]]:
    """The pairs and manifest of a built folder, the pairs checked against the manifest's sha256."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        data = (folder / "pairs.jsonl").read_bytes()
    except (OSError, ValueError) as exc:
        raise BotError(
            f"no reader data in {folder} ({exc}): run `bot train-reader --snapshot ... --shared ...`"
        ) from None
    if hashlib.sha256(data).hexdigest() != manifest.get("pairs_sha256"):
        raise BotError(f"{folder / 'pairs.jsonl'} does not match its manifest: build the reader data again")
    pairs = [Pair(**json.loads(line)) for line in data.decode("utf-8").splitlines() if line.strip()]
    return pairs, manifest


def summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a trained reader's manifest keeps of its data's: hashes of every file, the mix, the rules."""
    return {
        "pairs_sha256": manifest["pairs_sha256"],
        "seed": manifest["seed"],
        "mix": manifest["mix"],
        "rules": manifest["rules"],
        "files_sha256": hashlib.sha256(json.dumps(manifest["files"], sort_keys=True).encode("utf-8")).hexdigest(),
        "files": len(manifest["files"]),
    }
