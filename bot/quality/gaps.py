"""What the articles miss: the questions the bot declined or that people voted 👎, grouped.

HTTP records each declined question in `declined.jsonl` in the data folder (the question, how a
follow-up was read, when, the nearest article; never a user, an address or a key). Slack's store
already holds every answer shown and every vote (bot/feedback.py); `bot gaps` reads both.

Questions are grouped when they are near-duplicates: a question joins the first group whose
first question is within GROUP_COSINE of it (embedding cosine), most asked first. Each group
says how often it was asked, when last, why (declined, 👎), and the article nearest to it in the
current index, and whether that index now answers it (someone may have added the article since).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import BotError
from bot.records import Answer

log = logging.getLogger("bot.quality.gaps")

DECLINED_FILE = "declined.jsonl"
# Near-duplicates: all-MiniLM-L6-v2 puts rephrasings of one question ("When will the Saltmarsh
# tram line open?" / "When does the Saltmarsh tram start running?" / "Which city is the capital
# of Australia?") at 0.84-0.96 of each other, another question on the same topic ("How much will
# the Saltmarsh tram cost?") at 0.62-0.68, other topics below 0.25 (tests/test_gaps.py).
GROUP_COSINE = 0.75
REASONS = ("declined", "down")


@dataclass(frozen=True, slots=True)
class Miss:
    """One question the articles did not serve: declined, or voted 👎."""

    question: str
    time: float  # Unix time
    surface: str  # "http", "slack"
    reason: str  # "declined" or "down"
    nearest: str | None = None  # article id of the nearest quote shown


@dataclass
class Gap:
    """Near-duplicate missed questions, most asked first."""

    question: str  # the most asked wording
    count: int
    last_asked: str  # ISO time, UTC
    questions: list[str]
    reasons: dict[str, int]
    surfaces: dict[str, int]
    nearest_article: dict[str, str | None] | None = None
    answered_now: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        return data


class DeclinedLog:
    """Declined HTTP questions, one JSON line each, appended under a lock (no personal data)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / DECLINED_FILE
        self._lock = threading.Lock()

    def record(self, answer: Answer, surface: str = "http") -> None:
        """Append a declined answer's question; a write failure is logged, never raised."""
        line = {
            "question": answer.question,
            "context": answer.context,
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "surface": surface,
            "nearest": answer.quotes[0].article.id if answer.quotes else None,
        }
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(line, ensure_ascii=False) + "\n")
        except OSError as exc:
            log.warning("cannot record a declined question in %s: %s", self.path, exc)

    def misses(self, since: float | None = None) -> list[Miss]:
        """The recorded declined questions (at or after `since`, Unix time); bad lines are skipped."""
        if not self.path.exists():
            return []
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise BotError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        out: list[Miss] = []
        for number, line in enumerate(lines, start=1):
            try:
                data = json.loads(line)
                when = dt.datetime.fromisoformat(data["time"]).timestamp()
                miss = Miss(
                    str(data["question"]), when, str(data.get("surface", "http")), "declined", data.get("nearest")
                )
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                log.warning("%s:%d: not a declined-question line; skipped", self.path, number)
                continue
            if since is None or miss.time >= since:
                out.append(miss)
        return out


def parse_since(value: str | None) -> float | None:
    """An ISO date or time (UTC unless it says otherwise) as Unix time; BotError when it is not one."""
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BotError(f"--since {value!r} is not an ISO date such as 2025-01-23.") from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def group(
    misses: Sequence[Miss], encode: Callable[[list[str]], np.ndarray], threshold: float = GROUP_COSINE
) -> list[Gap]:
    """Near-duplicate misses grouped, the most asked group first (ties: the latest first)."""
    if not misses:
        return []
    wordings = Counter(" ".join(m.question.split()) for m in misses)
    distinct = sorted(wordings, key=lambda q: (-wordings[q], q))
    vectors = np.asarray(encode(distinct), dtype=np.float32)
    heads: list[int] = []
    member_of: dict[str, int] = {}
    for n, question in enumerate(distinct):
        similar = [h for h in heads if float(vectors[h] @ vectors[n]) >= threshold]
        if similar:
            member_of[question] = similar[0]
        else:
            heads.append(n)
            member_of[question] = n
    groups: dict[int, list[Miss]] = {h: [] for h in heads}
    for miss in misses:
        groups[member_of[" ".join(miss.question.split())]].append(miss)
    gaps: list[Gap] = []
    for head, members in groups.items():
        last = max(m.time for m in members)
        nearest = Counter(m.nearest for m in members if m.nearest).most_common(1)
        gaps.append(
            Gap(
                question=distinct[head],
                count=len(members),
                last_asked=dt.datetime.fromtimestamp(last, dt.UTC).isoformat(timespec="seconds"),
                questions=list(dict.fromkeys(" ".join(m.question.split()) for m in members)),
                reasons=dict(Counter(m.reason for m in members)),
                surfaces=dict(Counter(m.surface for m in members)),
                nearest_article={"id": nearest[0][0], "title": None} if nearest else None,
                extra={"last": last},
            )
        )
    gaps.sort(key=lambda g: (-g.count, -float(g.extra["last"])))
    return gaps


def with_nearest(gaps: Iterable[Gap], nearest: Callable[[str], tuple[str, str, bool] | None]) -> list[Gap]:
    """Each gap with the article nearest to its question in the current index (`nearest(question)`
    gives the article's id, title and whether it answers now)."""
    out = []
    for gap in gaps:
        found = nearest(gap.question)
        if found is not None:
            gap.nearest_article = {"id": found[0], "title": found[1]}
            gap.answered_now = found[2]
        out.append(gap)
    return out


def format_gaps(gaps: Sequence[Gap]) -> str:
    """Human output: one paragraph per group, most asked first."""
    if not gaps:
        return "No declined or 👎 questions recorded.\n"
    lines: list[str] = []
    for gap in gaps:
        why = ", ".join(f"{'declined' if r == 'declined' else '👎'} {n}" for r, n in sorted(gap.reasons.items()))
        lines.append(f"{gap.count}× “{gap.question}”  ({why}; last {gap.last_asked[:16].replace('T', ' ')} UTC)")
        for other in gap.questions:
            if other != gap.question:
                lines.append(f"    also: “{other}”")
        if gap.nearest_article is not None:
            title = gap.nearest_article.get("title") or gap.nearest_article.get("id")
            now = " — answered now" if gap.answered_now else ""
            lines.append(f"    nearest article: {title}{now}")
        lines.append("")
    return "\n".join(lines)
