"""Reader training pairs from RealTime QA: weekly news-quiz questions and the web articles found for them.

The snapshot is a git directory of github.com/realtimeqa/realtimeqa_public, read at COMMIT with
`git show` (never a work tree): `past/<year>/<week>_qa.jsonl` holds the questions
(`question_sentence`, `choices`, `answer` as a list of choice indexes, `evidence` from the quiz's
source, `question_date`) and `<week>_gcs.jsonl` the search results per question (`text`, `url`,
`title`, `publish_date`).

Which weeks: past/2023 from March on, past/2024, past/2025, past/2026 (TRAIN_FROM). Never: the
weeks of January and February 2023 (the news dev set of `make eval`), past/2022 (kept for an
independent check) and latest/ (its answers are not public). Those off-limits weeks are read only
for their article URLs, texts and questions, which are then left out of training too: a March
question's search may find a February article that the dev set also holds.

Labels, per question (bot.quality.reader_text decides each unit):
- positive: a unit of its articles that holds the answer and shares the question's or the
  evidence's words; also the evidence's own sentence that holds the answer (a journalist's
  sentence, as the quiz wrote it).
- negatives: units that hold the answer by chance (the hardest: a country or a year mentioned
  in passing), units naming a wrong choice, other units of an answering article, units of the
  question's other articles, units of other questions' articles of the same week.
- left out: units with part of the answer ("Lilibet" for "Princess Lilibet Diana") or with the
  answer and middling overlap, and questions whose answer is no string of the text: TRUE/FALSE and
  yes/no (17 of ~4,000), "not"/"except" questions (the sentence naming the answer does not say
  it is the exception), "all/none of the above".
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import BotError
from bot.indexing.chunking import split_units
from bot.quality.reader_text import Pair, Parts, Support, Unit, norm, pattern, strip_html, support, words

COMMIT = "bc15fba7f45535fbdb2674d03de7b65a2a9e065f"
YEARS = ("2023", "2024", "2025", "2026")
TRAIN_FROM = "20230301"  # January-February 2023 is the dev set of `make eval`
TRAIN_FROM_DAY = "2023-03-01"
OFF_LIMITS = ("past/2022/", "past/2023/ before 20230301", "latest/")
# As ../shared/eval/build_realtimeqa_2023.py keeps articles: longer "articles" are mostly index
# pages and live blogs, shorter ones snippets.
MIN_WORDS, MAX_WORDS = 80, 4000
MIN_UNIT_WORDS = 4  # bylines and headings ("CNN —") answer nothing
# Per question, at most: positives, then each kind of negative (hardest first where a kind has an
# order). About 15 pairs a question with an answering article, 9 with the evidence alone.
MAX_POSITIVES = 6
CAPS = {"chance": 5, "choice": 3, "article": 5, "search": 4, "week": 3}
_NO_STRING = re.compile(r"^(?:true|false|yes|no|all of the above|none of the above)$", re.I)
_NEGATED = re.compile(r"\b(?:not|never|except)\b|n[’']t\b", re.I)


class Snapshot:
    """The files of a git directory at one commit, read without a work tree."""

    def __init__(self, git_dir: Path, commit: str = COMMIT) -> None:
        self.git_dir, self.commit = git_dir, commit
        try:
            self._git("cat-file", "-e", f"{commit}^{{commit}}")
        except BotError:
            raise BotError(
                f"{git_dir} is not a git directory holding commit {commit}: point --snapshot at a snapshot "
                "of github.com/realtimeqa/realtimeqa_public"
            ) from None

    def _git(self, *args: str) -> bytes:
        try:
            done = subprocess.run(["git", "--git-dir", str(self.git_dir), *args], capture_output=True, check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise BotError(f"git {' '.join(args)} failed in {self.git_dir}: {exc}") from None
        return done.stdout

    def paths(self, folder: str) -> list[str]:
        """The file paths directly under `folder` (e.g. "past/2023/")."""
        return sorted(self._git("ls-tree", "--name-only", self.commit, folder).decode().split())

    def read(self, path: str, parts: Parts, role: str) -> list[dict[str, Any]]:
        """The JSON lines of `path`, recorded in `parts` with their sha256."""
        data = self._git("show", f"{self.commit}:{path}")
        rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
        parts.files.append({"path": path, "role": role, "sha256": hashlib.sha256(data).hexdigest(), "rows": len(rows)})
        return rows


# A training question: its row, the units of each of its articles, and its week's other units.
Question = tuple[dict[str, Any], list[list[Unit]], list[Unit]]


def week_of(path: str) -> str:
    return Path(path).name[:8]


def is_training_week(path: str) -> bool:
    """past/2023 from March on, past/2024-2026; never past/2022, January-February 2023 or latest/."""
    parts = path.split("/")
    return len(parts) == 3 and parts[0] == "past" and parts[1] in YEARS and week_of(path) >= TRAIN_FROM


def iso_day(value: str) -> str:
    """'2023/03/09' or '2026-01-08' as an ISO date."""
    return dt.date.fromisoformat(value.strip().replace("/", "-")[:10]).isoformat()


def clean(text: str) -> str:
    """As the news dev set's build cleans article text (so training sentences match served ones)."""
    return re.sub(r"[ \t]+\n", "\n", text).strip()


def search_results(row: dict[str, Any]) -> list[dict[str, Any]]:
    found = row.get("search_result") or []
    results = ast.literal_eval(found) if isinstance(found, str) else found
    return [r for r in results if isinstance(r, dict)]


@dataclass(frozen=True, slots=True)
class Excluded:
    """Off-limits articles (by URL and by normalised-text hash) and questions."""

    urls: frozenset[str]
    texts: frozenset[str]
    questions: frozenset[str]


def text_key(text: str) -> str:
    return hashlib.sha256(norm(text).encode()).hexdigest()


def off_limits(snapshot: Snapshot, parts: Parts) -> Excluded:
    """What the dev set and the independent check hold: read only to keep it out of training."""
    urls: set[str] = set()
    texts: set[str] = set()
    questions: set[str] = set()
    paths = [*snapshot.paths("past/2022/"), *[p for p in snapshot.paths("past/2023/") if week_of(p) < TRAIN_FROM]]
    for path in paths:
        if path.endswith("_gcs.jsonl"):
            for row in snapshot.read(path, parts, "excluded"):
                for result in search_results(row):
                    urls.add(str(result.get("url")))
                    texts.add(text_key(clean(result.get("text") or "")))
        elif path.endswith("_qa.jsonl"):
            questions.update(norm(str(r.get("question_sentence", ""))) for r in snapshot.read(path, parts, "excluded"))
    return Excluded(frozenset(urls), frozenset(texts), frozenset(questions))


def answer_of(row: dict[str, Any]) -> tuple[str, list[str]] | None:
    """The right choice and the wrong ones, or None when the question cannot be labelled by string."""
    try:
        choices = [str(c).strip() for c in row["choices"]]
        answer = choices[int(row["answer"][0])]
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    if not answer or _NO_STRING.match(answer) or _NEGATED.search(str(row.get("question_sentence", ""))):
        return None
    return answer, [c for c in choices if c != answer and c and not _NO_STRING.match(c)]


def article_units(results: list[dict[str, Any]], excluded: Excluded) -> list[list[Unit]]:
    """The sentence units of each usable article (one per URL), as the bot's chunker cuts them."""
    seen: set[str] = set()
    articles: list[list[Unit]] = []
    for result in results:
        url, text = str(result.get("url")), clean(result.get("text") or "")
        if url in seen or url in excluded.urls or not MIN_WORDS <= len(text.split()) <= MAX_WORDS:
            continue
        if text_key(text) in excluded.texts:
            continue
        seen.add(url)
        spans = split_units(text)
        articles.append(
            [Unit.of(text[s.start : s.end]) for s in spans if len(text[s.start : s.end].split()) >= MIN_UNIT_WORDS]
        )
    return articles


def _rng(seed: int, group: str) -> np.random.Generator:
    """A generator per question: its pairs do not depend on which other questions were read."""
    return np.random.default_rng([seed, int(hashlib.sha256(group.encode()).hexdigest()[:12], 16)])


def _pick(
    candidates: list[tuple[Unit, Support]], cap: int, rng: np.random.Generator, hard: bool
) -> list[tuple[Unit, Support]]:
    """Up to `cap`: with `hard`, the half most like the question first, the rest at random."""
    if len(candidates) <= cap:
        return candidates
    order = list(rng.permutation(len(candidates)))
    if not hard:
        return [candidates[i] for i in order[:cap]]
    by_overlap = sorted(order, key=lambda i: -max(candidates[i][1].question, candidates[i][1].evidence))
    chosen = by_overlap[: (cap + 1) // 2]
    chosen += [i for i in order if i not in chosen][: cap - len(chosen)]
    return [candidates[i] for i in chosen]


def question_pairs(
    row: dict[str, Any],
    articles: list[list[Unit]],
    week: list[Unit],
    seed: int,
) -> list[Pair]:
    """The labelled pairs of one question (empty when no positive is found)."""
    labelled = answer_of(row)
    if labelled is None:
        return []
    answer, wrong = labelled
    found = pattern(answer)
    if found is None:
        return []
    group = str(row["question_id"])
    question = " ".join(str(row["question_sentence"]).split())
    rng = _rng(seed, group)
    evidence = strip_html(str(row.get("evidence") or ""))
    evidence_units = [Unit.of(evidence[s.start : s.end]) for s in split_units(evidence)] if evidence else []
    answering = [u for u in evidence_units if found.search(u.normed)]
    evidence_words = set(answering[0].words if answering else words(evidence))
    question_words, answer_words = words(question), words(answer)
    wrong_patterns = [p for p in (pattern(c) for c in wrong) if p is not None]

    positives: list[tuple[Unit, Support]] = []
    negatives: dict[str, list[tuple[Unit, Support]]] = {kind: [] for kind in CAPS}
    answered: list[bool] = []
    verdicts: list[list[tuple[Unit, Support]]] = []
    for units in articles:
        judged = [(u, support(u, found, question_words, evidence_words, answer_words)) for u in units]
        verdicts.append(judged)
        answered.append(any(s.verdict == "positive" for _, s in judged))
        positives += [(u, s) for u, s in judged if s.verdict == "positive"]
        negatives["chance"] += [(u, s) for u, s in judged if s.verdict == "chance"]
    if not positives and not answering:
        return []
    for judged_units, has_answer in zip(verdicts, answered, strict=True):
        for u, s in judged_units:
            if s.verdict != "negative":
                continue
            if any(p.search(u.normed) for p in wrong_patterns):
                negatives["choice"].append((u, s))
            else:  # not even one of the answer's words: it cannot quote the answer
                negatives["article" if has_answer else "search"].append((u, s))
    for u in week:
        if not (u.words & answer_words) and not found.search(u.normed):
            negatives["week"].append((u, Support("negative", 0.0, 0.0)))

    pairs: list[Pair] = []
    seen: set[str] = set()

    def add(unit: Unit, label: int, kind: str) -> None:
        if unit.normed not in seen:
            seen.add(unit.normed)
            pairs.append(Pair(question, unit.text, label, "realtimeqa", kind, group))

    for u in answering[:1]:
        add(u, 1, "evidence")
    strongest = sorted(range(len(positives)), key=lambda i: -max(positives[i][1].question, positives[i][1].evidence))
    for i in strongest[:MAX_POSITIVES]:
        add(positives[i][0], 1, "positive")
    for kind, cap in CAPS.items():
        for u, _ in _pick(negatives[kind], cap, rng, hard=kind in {"article", "search", "choice"}):
            add(u, 0, kind)
    return pairs


def week_sample(articles: list[list[list[Unit]]], rng: np.random.Generator, size: int = 200) -> list[list[Unit]]:
    """Per question of a week, up to `size` units of the week's other questions' articles."""
    pools: list[list[Unit]] = []
    flat = [[u for a in question for u in a] for question in articles]
    for number in range(len(articles)):
        others = [u for j, units in enumerate(flat) if j != number for u in units]
        picks: list[int] = (
            [int(i) for i in rng.choice(len(others), size=min(size, len(others)), replace=False)] if others else []
        )
        pools.append([others[i] for i in picks])
    return pools


def training_questions(snapshot: Snapshot, seed: int, parts: Parts) -> Iterator[Question]:
    """Every question of the training weeks, week by week, with its articles' units and its week's pool."""
    excluded = off_limits(snapshot, parts)
    for year in YEARS:
        listed = snapshot.paths(f"past/{year}/")
        for path in listed:
            if not (path.endswith("_qa.jsonl") and is_training_week(path)):
                continue
            gcs_path = path.replace("_qa.jsonl", "_gcs.jsonl")
            if gcs_path not in listed:
                parts.count("weeks without search results")
                continue
            questions = snapshot.read(path, parts, "train")
            results = {str(r["question_id"]): search_results(r) for r in snapshot.read(gcs_path, parts, "train")}
            kept = []
            for row in questions:
                parts.count("questions read")
                try:
                    day = iso_day(str(row["question_date"]))
                except (KeyError, ValueError):
                    parts.count("questions without a date")
                    continue
                if day < TRAIN_FROM_DAY:
                    parts.count("questions dated before the training weeks")
                elif norm(str(row.get("question_sentence", ""))) in excluded.questions:
                    parts.count("questions also asked in off-limits weeks")
                else:
                    kept.append(row)
            articles = [article_units(results.get(str(r["question_id"]), []), excluded) for r in kept]
            pools = week_sample(articles, _rng(seed, week_of(path)))
            yield from zip(kept, articles, pools, strict=True)


def news_pairs(snapshot: Snapshot, seed: int, parts: Parts) -> Iterator[Pair]:
    """Every training pair of the training weeks, week by week."""
    for row, units, pool in training_questions(snapshot, seed, parts):
        pairs = question_pairs(row, units, pool, seed)
        parts.count("questions with pairs" if pairs else "questions without a positive")
        yield from pairs
