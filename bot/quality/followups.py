"""Follow-up quality, measured: question files whose lines carry the conversation before them.

A line is `{"id", "history": [earlier questions, oldest first], "question", "answers": [...],
"standalone": bool}`. A follow-up ("standalone": false) is right when the bot answers and a gold
answer is in the top quote; it is asked twice, after its history (the product) and alone (what
the bot did before it followed conversations). A stand-alone question asked after a history must
be unchanged by it: not read as a follow-up, and the same top quote as when asked alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bot.answer.asking import THRESHOLD, Ask
from bot.answer.conversation import Turn, answer_in_conversation
from bot.errors import BotError
from bot.indexing.index import Index
from bot.models.encoder import Embedder
from bot.quality.evaluation import EvalQuestion, contains_answer, question_lines
from bot.records import Answer


@dataclass(frozen=True, slots=True)
class FollowUp:
    """One line of a follow-up file."""

    id: str
    history: tuple[str, ...]
    question: str
    answers: tuple[str, ...]
    standalone: bool


@dataclass
class FollowUpReport:
    followups: int
    followups_right_with_history: float | None
    followups_right_without_history: float | None
    followups_read_as_followups: float | None
    standalone: int
    standalone_unchanged_by_history: float | None
    standalone_right_with_history: float | None
    standalone_right_without_history: float | None
    seconds: float
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_followup_file(path: Path) -> bool:
    """True when the first question line of `path` carries a `history`."""
    try:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    return "history" in json.loads(line)
    except (OSError, json.JSONDecodeError, TypeError):
        return False
    return False


def load_followups(path: Path) -> list[FollowUp]:
    """Read a follow-up file; a malformed line is a BotError naming it."""
    out: list[FollowUp] = []
    for number, line in question_lines(path):
        try:
            data = json.loads(line)
            history = data["history"]
            if not isinstance(history, list) or not all(isinstance(q, str) for q in history):
                raise TypeError("history must be a list of questions")
            out.append(
                FollowUp(
                    id=str(data.get("id", number)),
                    history=tuple(history),
                    question=str(data["question"]),
                    answers=tuple(str(a) for a in data.get("answers") or ()),
                    standalone=bool(data.get("standalone", False)),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise BotError(f"{path}:{number}: not a follow-up line ({exc})") from None
    return out


def _rate(hits: Sequence[bool]) -> float | None:
    return round(sum(hits) / len(hits), 4) if hits else None


def _right(result: Answer, item: FollowUp) -> bool:
    top = result.quotes[0].text if result.quotes else ""
    return result.answered and contains_answer(top, EvalQuestion(item.id, item.question, item.answers))


def evaluate_followups(
    index: Index, embedder: Embedder, items: Sequence[FollowUp], *, threshold: float = THRESHOLD, k: int = 3
) -> tuple[FollowUpReport, list[dict[str, Any]]]:
    """Ask each question after its history and alone; the figures and one row per question."""

    def encode(text: str) -> Any:
        return embedder.encode([text])[0]

    embedder.encode(["warm up"])
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for item in items:
        turns = [Turn(q) for q in item.history]
        ask = Ask(item.question, k, threshold=threshold)
        after = answer_in_conversation(index, encode, ask, turns)
        alone = answer_in_conversation(index, encode, ask, [])
        same_top = bool(after.quotes and alone.quotes) and (after.quotes[0].article.id, after.quotes[0].start) == (
            alone.quotes[0].article.id,
            alone.quotes[0].start,
        )
        rows.append(
            {
                "id": item.id,
                "standalone": item.standalone,
                "question": item.question,
                "context": after.context,
                "right_with_history": _right(after, item),
                "right_without_history": _right(alone, item),
                "unchanged": after.context is None and same_top,
                "top_quote": after.quotes[0].text if after.quotes else "",
            }
        )
    seconds = time.perf_counter() - started
    follow = [r for r in rows if not r["standalone"]]
    alone_rows = [r for r in rows if r["standalone"]]
    failures = [
        f"{r['id']}: {r['question']!r} read as {r['context']!r}, top quote {r['top_quote'][:80]!r}"
        for r in rows
        if (not r["standalone"] and not r["right_with_history"]) or (r["standalone"] and not r["unchanged"])
    ]
    report = FollowUpReport(
        followups=len(follow),
        followups_right_with_history=_rate([r["right_with_history"] for r in follow]),
        followups_right_without_history=_rate([r["right_without_history"] for r in follow]),
        followups_read_as_followups=_rate([r["context"] is not None for r in follow]),
        standalone=len(alone_rows),
        standalone_unchanged_by_history=_rate([r["unchanged"] for r in alone_rows]),
        standalone_right_with_history=_rate([r["right_with_history"] for r in alone_rows]),
        standalone_right_without_history=_rate([r["right_without_history"] for r in alone_rows]),
        seconds=round(seconds, 2),
        failures=failures,
    )
    return report, rows
