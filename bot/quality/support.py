"""Which answerable questions the articles actually answer, and the figures on those alone.

A news set built from web-search results marks a question answerable when its answer string
occurs in some article, and a short answer often occurs by chance ("Noma" inside "Nomadland").
A support file, read by hand, says for each question id whether an article states the answer
(`stated`), gives it only for another year or without the question's detail (`partly`), or not at
all (`absent`). Figures over the `stated` questions tell how much of what the articles hold the
bot finds; figures over every answerable question mix that with questions no quote can answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from bot.errors import BotError

SUPPORT = ("stated", "partly", "absent")
# The hand-read support of realtimeqa-2023 (../shared/eval/build_realtimeqa_2023.py, 8 weeks).
SUPPORT_FILE = Path(__file__).parent / "data" / "realtimeqa-2023-support.tsv"


def checked(value: object) -> str | None:
    """A question line's own `support` (None when it has none); ValueError for anything else."""
    if value is None or (isinstance(value, str) and value in SUPPORT):
        return value
    raise ValueError(f"support must be one of {', '.join(SUPPORT)}, got {value!r}")


def load_support(path: Path = SUPPORT_FILE) -> dict[str, str]:
    """Question id → support, from a `id<TAB>support` file ('#' lines are comments)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BotError(f"cannot read {path}: {exc.strerror or exc}") from None
    labels: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#") or line == "id\tsupport":
            continue
        fields = line.split("\t")
        if len(fields) != 2 or fields[1] not in SUPPORT or not fields[0]:
            raise BotError(f"{path}:{number}: expected 'id<TAB>{'|'.join(SUPPORT)}', got {line!r}")
        if fields[0] in labels:
            raise BotError(f"{path}:{number}: question {fields[0]!r} is listed twice")
        labels[fields[0]] = fields[1]
    return labels


@cache
def packaged_labels() -> dict[str, str]:
    """The labels of SUPPORT_FILE, read once."""
    return load_support(SUPPORT_FILE)


def with_support(questions: Sequence[Any], labels: dict[str, str]) -> list[Any]:
    """The questions (frozen dataclasses with `id` and `support`), each with its label when it has one."""
    return [
        dataclasses.replace(q, support=labels[q.id]) if q.id in labels and q.support is None else q for q in questions
    ]


def stated_figures(
    outcomes: Sequence[Any], contains: Callable[[str, Any], bool]
) -> tuple[int | None, float | None, float | None]:
    """Over the answerable questions labelled `stated`: how many, the answer in the top quote, and
    the answer in the top quote of an answered question; all None when no question is labelled."""
    stated = [o for o in outcomes if o.question.answerable and o.question.support == "stated"]
    if not stated:
        return None, None, None
    hits = [contains(o.top_quote, o.question) for o in stated]
    answered = [hit and o.answered for hit, o in zip(hits, stated, strict=True)]
    return len(stated), round(sum(hits) / len(stated), 4), round(sum(answered) / len(stated), 4)
