"""Split an article into sentence units and overlapping, sentence-aware passages.

Offsets are the contract: every unit and passage is a half-open range of `article.text`, so a
quote is always `text[start:end]`, never re-typed. A *unit* is what a quote is made of:

- a sentence of a paragraph ("US$500 B", "Group Corp.", "Chairman & CEO" do not end one);
- a list item or a footnote (`*AGI stands for …`, `[1] …`), always whole;
- sentences (or items) joined while a quotation mark is open, so a quotation that spans two
  sentences, or opens in one bullet with a curly “ and closes in the next, is never cut (a
  straight " never joins paragraphs or items: its direction is a guess).

Passages pack consecutive units up to about 120 words and overlap by one unit, so an answer
that straddles a boundary is whole in at least one passage.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.records import Passage, Span

MAX_WORDS = 120
MIN_WORDS = 40
# A quotation left open longer than this is probably a stray mark: stop joining units for it.
MAX_QUOTE_UNITS = 4

_LIST_ITEM = re.compile(r"[ \t]*(?:[-*+•–]|\d{1,3}[.)])[ \t]+\S")
_FOOTNOTE = re.compile(r"[ \t]*(?:\*+|†+|‡+|\[\d{1,3}\]|\d{1,3}\))\S")
_HEADING = re.compile(r"[ \t]*#{1,6}[ \t]+\S")
# End of a sentence: terminal punctuation, closing quotes/brackets, then whitespace and
# something that can begin a sentence.
_BOUNDARY = re.compile(r"([.!?…]+)([\"”’')\]]*)(\s+)(?=[\"“‘'(\[]?[A-Z0-9À-Ý])")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs v gen col lt sgt capt rep sen gov pres rev mt ft no nos fig figs "
    "inc corp co ltd llc plc bros dept est approx jan feb mar apr jun jul aug sep sept oct nov dec "
    "e.g i.e u.s u.k u.n u.s.a p.s".split()
)


def _ends_with_abbreviation(text: str) -> bool:
    """True when the period closing `text` belongs to an abbreviation or an initial."""
    tokens = text[:-1].split()
    if not tokens:
        return False
    token = tokens[-1].lstrip("(\"“‘'[")
    if token.lower() in _ABBREVIATIONS or re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", token):
        return True  # "Corp.", "U.S.", "e.g."
    if re.fullmatch(r"[A-Z]", token):
        # An initial ("John F. Kennedy") follows a name; "US$500 B." ends a sentence.
        before = tokens[-2] if len(tokens) > 1 else ""
        return not before or (before.rstrip(".").isalpha() and before[0].isupper())
    return False


def _split_sentences(text: str, offset: int) -> list[Span]:
    """Sentence spans of one paragraph, shifted by `offset`; whitespace stays between them."""
    spans: list[Span] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.end(2)
        if match.group(1) == "." and _ends_with_abbreviation(text[start : match.end(1)]):
            continue
        spans.append(Span(offset + start, offset + end))
        start = match.end(3)
    if start < len(text):
        spans.append(Span(offset + start, offset + len(text.rstrip())))
    return spans


def _blocks(text: str) -> Iterable[tuple[str, int, int]]:
    """Paragraphs, list items, footnotes and headings as (kind, start, end)."""
    kind, start, end = "", 0, 0
    position = 0
    for line in text.splitlines(keepends=True):
        line_start, position = position, position + len(line)
        stripped = line.strip()
        if not stripped:
            if kind:
                yield kind, start, end
            kind = ""
            continue
        line_end = line_start + len(line.rstrip())
        line_from = line_start + (len(line) - len(line.lstrip()))
        if _HEADING.match(line):
            new_kind = "heading"
        elif _FOOTNOTE.match(line):
            new_kind = "footnote"
        elif _LIST_ITEM.match(line):
            new_kind = "item"
        else:
            new_kind = ""
        if new_kind or not kind or kind == "heading":
            # A new block starts here; a plain line after an item or footnote continues it.
            if kind:
                yield kind, start, end
            kind, start = new_kind or "paragraph", line_from
        end = line_end
    if kind:
        yield kind, start, end


def _open_quotes(text: str) -> int:
    """How many quotations `text` leaves open: curly marks counted, straight ones paired."""
    return max(0, text.count("“") - text.count("”")) + text.count('"') % 2


def _open_curly(text: str) -> bool:
    return text.count("“") > text.count("”")


def split_units(text: str) -> list[Span]:
    """The quotable units of an article: sentences, list items, footnotes (see module doc)."""
    raw: list[Span] = []
    block_of: list[int] = []
    for number, (kind, start, end) in enumerate(_blocks(text)):
        pieces = _split_sentences(text[start:end], start) if kind == "paragraph" else [Span(start, end)]
        raw.extend(pieces)
        block_of.extend([number] * len(pieces))
    units: list[Span] = []
    i = 0
    while i < len(raw):
        j = i
        # Join following units while a quotation opened here is still open. Across a paragraph or
        # list item only a curly “ says which way it opens: news style leaves a straight " open at
        # the end of a quoted paragraph and opens the next one again, so parity pairs wrong marks.
        while (
            j + 1 < len(raw)
            and j - i + 1 < MAX_QUOTE_UNITS
            and _open_quotes(text[raw[i].start : raw[j].end])
            and (block_of[j + 1] == block_of[j] or _open_curly(text[raw[i].start : raw[j].end]))
        ):
            j += 1
        if _open_quotes(text[raw[i].start : raw[j].end]):
            j = i  # never closed: a stray mark, not a quotation
        units.append(Span(raw[i].start, raw[j].end))
        i = j + 1
    return units


def _words(text: str) -> int:
    return len(text.split())


def pack_passages(units: list[Span], text: str, max_words: int = MAX_WORDS) -> list[tuple[int, int]]:
    """Group units into passages of at most `max_words` (a longer unit stands alone), overlapping
    by one unit; returns (first unit, last unit + 1) index pairs."""
    counts = [_words(text[u.start : u.end]) for u in units]
    groups: list[tuple[int, int]] = []
    first = 0
    while first < len(units):
        last = first + 1
        total = counts[first]
        while last < len(units) and total + counts[last] <= max_words:
            total += counts[last]
            last += 1
        groups.append((first, last))
        if last == len(units):
            break
        # Overlap by one unit, unless the passage is a single unit (that would never advance).
        first = last - 1 if last - first > 1 else last
    return groups


def chunk_article(article_id: str, text: str, max_words: int = MAX_WORDS) -> tuple[list[Span], list[Passage]]:
    """Split `text` into units and passages; `text[p.start:p.end] == p.text` for every passage."""
    units = split_units(text)
    passages = [
        Passage(
            article_id=article_id,
            start=units[lo].start,
            end=units[hi - 1].end,
            text=text[units[lo].start : units[hi - 1].end],
            sentences=tuple(units[lo:hi]),
        )
        for lo, hi in pack_passages(units, text, max_words)
    ]
    return units, passages
