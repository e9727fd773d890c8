"""What the reader's labels are decided on: a normalised text, the answer as whole words, content words.

A sentence *holds* a short answer when the answer occurs in it as whole words after the same
normalisation `bot eval` uses (casefold, curly quotes and dashes straightened, whitespace
collapsed), so "Noma" is not found in "Nomadland" and "Apple" not in "pineapple". Content words
drop stopwords and quiz wording ("which", "this week") and are cut to a five-letter prefix, a
crude stem that joins "elected" and "election" without a stemmer library.
"""

from __future__ import annotations

import html
import re
from collections.abc import Set
from dataclasses import dataclass, field
from typing import Any

from bot.quality.evaluation import normalize

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
_TAG = re.compile(r"<[^>]*>")
PREFIX = 5
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having he
    her here hers herself him himself his how i if in into is it its itself just me more most my no nor not now of
    off on once only or other our ours out over own same she should so some such than that the their theirs them
    then there these they this those through to too under until up very was we were what when where which while
    who whom whose why will with would you your yours s t
    week weeks year years day days month months time times new recently reportedly according said says following
    one two first last latest many much per true false name named called known""".split()
)

# Overlap (share of the question's content words, answer words left out, or of the evidence
# sentence's) that makes a sentence holding the answer a positive, and below which it holds the
# answer by chance. Read on a March 2023 week (15 questions, every labelled sentence) and on three
# later weeks (the sentences left out): a positive needs 0.35 of the question's words (at 0.4 "The
# New Hampshire House passed a bill to ban child marriage" was left out for "Which US state is
# poised to become the 13th to ban child marriage?"), or half of the evidence sentence's with 0.2 of the question's
# (half a short evidence sentence alone took "Some, like China and Japan, remain sealed off to
# foreign visitors" as saying China reopens). Chance means next to nothing in common: at 0.15 of
# the question's words "Jamie Lee Curtis achieved a career milestone with her first Oscar win"
# (one word of eight shared) was a negative; at 0.1 it is left out. In between, left out: not sure
# enough either way.
POSITIVE_QUESTION = 0.35
POSITIVE_EVIDENCE = 0.5
POSITIVE_EVIDENCE_QUESTION = 0.2
CHANCE_QUESTION = 0.1
CHANCE_EVIDENCE = 0.15


def norm(text: str) -> str:
    """The normalisation of `bot eval` (bot.quality.evaluation.normalize)."""
    return normalize(text)


def pattern(needle: str) -> re.Pattern[str] | None:
    """A search for `needle` (normalised) as whole words; None for an empty needle."""
    needle = norm(needle)
    if not needle:
        return None
    # Word edges only where the needle itself begins or ends with a word character: "$5 billion"
    # and "U.S." still match inside a sentence.
    before = r"(?<!\w)" if needle[0].isalnum() else ""
    after = r"(?!\w)" if needle[-1].isalnum() else ""
    return re.compile(before + re.escape(needle) + after)


def raw_span(text: str, found: re.Pattern[str]) -> tuple[int, int] | None:
    """The offsets in `text` itself of `found`'s first match (a `pattern`, which searches the
    normalised text); None when it does not match."""
    normed: list[str] = []
    where: list[int] = []  # the offset in `text` of each normalised character
    for at, char in enumerate(text):
        if char.isspace():
            if normed and normed[-1] != " ":
                normed.append(" ")
                where.append(at)
            continue
        for piece in norm(char):
            normed.append(piece)
            where.append(at)
    if normed and normed[-1] == " ":
        normed.pop()
    joined = "".join(normed)
    match = found.search(joined) if joined == norm(text) else None
    if match is None:
        return None
    return where[match.start()], where[match.end() - 1] + 1


def holds(haystack: str, needle: str) -> bool:
    """True when `needle` occurs in `haystack` as whole words (both normalised first)."""
    found = pattern(needle)
    return found is not None and found.search(norm(haystack)) is not None


def _plain(word: str) -> str:
    return word.casefold().replace("’", "'").removesuffix("'s")


def words(text: str) -> set[str]:
    """Stemmed content words of `text`."""
    return {w[:PREFIX] for w in map(_plain, _WORD.findall(text)) if w not in STOPWORDS}


def strip_html(text: str) -> str:
    """Plain text of an evidence snippet (the quizzes link their sources with <a> tags)."""
    return " ".join(html.unescape(_TAG.sub("", text)).split())


def overlap(unit: Set[str], reference: Set[str]) -> float:
    """Share of `reference`'s content words that `unit` has (0 when the reference has none)."""
    return len(unit & reference) / len(reference) if reference else 0.0


@dataclass(frozen=True, slots=True)
class Unit:
    """A sentence unit with what labelling reads of it, computed once."""

    text: str
    normed: str
    words: frozenset[str]

    @classmethod
    def of(cls, text: str) -> Unit:
        return cls(text, norm(text), frozenset(words(text)))


@dataclass(frozen=True, slots=True)
class Support:
    """How a unit relates to a question's answer: the verdict and the overlaps behind it."""

    verdict: str  # positive | chance | ambiguous | partial | negative
    question: float
    evidence: float


def support(
    unit: Unit, answer: re.Pattern[str], question_words: Set[str], evidence_words: Set[str], answer_words: Set[str]
) -> Support:
    """Whether `unit` states the answer for this question, holds it by chance, or does not hold it.

    `partial`: it has some of the answer's words but not all (a surname alone, "Lilibet" for
    "Princess Lilibet Diana"): it may answer, so it is no negative.
    """
    q = overlap(unit.words, question_words - answer_words)
    e = overlap(unit.words, evidence_words - answer_words)
    if answer.search(unit.normed):
        if q >= POSITIVE_QUESTION or (e >= POSITIVE_EVIDENCE and q >= POSITIVE_EVIDENCE_QUESTION):
            return Support("positive", q, e)
        if q < CHANCE_QUESTION and e < CHANCE_EVIDENCE:
            return Support("chance", q, e)
        return Support("ambiguous", q, e)
    if answer_words & unit.words:
        return Support("partial", q, e)
    return Support("negative", q, e)


@dataclass(frozen=True, slots=True)
class Pair:
    """One training example: does `sentence` answer `question`?"""

    question: str
    sentence: str
    label: int
    source: str  # realtimeqa | squad | squad-v2
    kind: str  # why it has its label (positive, evidence, chance, choice, article, ...)
    group: str  # the question's id: pairs of one question stay together


@dataclass
class Parts:
    """What was read, for the manifest: each file's sha256 and counts."""

    files: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n
