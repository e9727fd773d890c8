"""Two `bot eval --output` reports side by side: which figures moved and which top quotes changed.

A change that should not move answers (a refactor, another runtime) is checked with it: every
figure equal and every question's top quote, decision and confidence the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Figures that measure the machine, not the answers.
_TIMINGS = frozenset({"questions_per_second"})


@dataclass
class Comparison:
    """What differs between two reports, per set and mode."""

    figures: list[tuple[str, str, str, Any, Any]] = field(default_factory=list)  # set, mode, figure, before, after
    questions: list[tuple[str, str, str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    compared: int = 0  # questions present in both
    missing: list[str] = field(default_factory=list)  # set/mode present in only one report

    @property
    def same(self) -> bool:
        return not (self.figures or self.questions or self.missing)

    def format(self) -> str:
        lines = [f"{self.compared} questions compared"]
        lines += [f"only in one report: {name}" for name in self.missing]
        lines += [f"{s} {m} {name}: {a} -> {b}" for s, m, name, a, b in self.figures]
        for s, m, qid, a, b in self.questions:
            lines.append(f"{s} {m} {qid}:")
            lines.append(f"  before: {a}")
            lines.append(f"  after:  {b}")
        lines.append("identical" if self.same else "different")
        return "\n".join(lines)


def _reports(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    # `bot eval --shared` writes {set: {mode: report}}; `bot eval QA.jsonl` one report.
    if "outcomes" in report or "mode" in report:
        return {("-", str(report.get("mode", "product"))): report}
    return {
        (name, mode): r
        for name, by_mode in report.items()
        if isinstance(by_mode, dict)
        for mode, r in by_mode.items()
        if isinstance(r, dict)
    }


def compare(before: dict[str, Any], after: dict[str, Any], *, confidence_places: int = 6) -> Comparison:
    """Every figure and every question's outcome of `before` against `after`."""
    result = Comparison()
    old, new = _reports(before), _reports(after)
    result.missing = [f"{s}/{m}" for s, m in sorted(old.keys() ^ new.keys())]
    for key in sorted(old.keys() & new.keys()):
        a, b = old[key], new[key]
        for name in sorted((a.keys() | b.keys()) - _TIMINGS - {"outcomes"}):
            if a.get(name) != b.get(name):
                result.figures.append((*key, name, a.get(name), b.get(name)))
        rows_a = {r["id"]: r for r in a.get("outcomes", [])}
        rows_b = {r["id"]: r for r in b.get("outcomes", [])}
        for qid in sorted(rows_a.keys() | rows_b.keys()):
            ra, rb = rows_a.get(qid, {}), rows_b.get(qid, {})
            if ra and rb:
                result.compared += 1
            if _rounded(ra, confidence_places) != _rounded(rb, confidence_places):
                result.questions.append((*key, qid, ra, rb))
    return result


def _rounded(row: dict[str, Any], places: int) -> dict[str, Any]:
    confidence = row.get("confidence")
    return row | {"confidence": None if confidence is None else round(float(confidence), places)}
