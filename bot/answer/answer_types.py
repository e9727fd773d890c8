"""What kind of answer a question asks for, and where in a quote such an answer sits.

A question's *type* (who/when/where/how much/how many/why/said/yes-no/which/what/topic) is read
from its words, with no model. The *kind* of a short answer it expects (a date, an amount, a number,
a name, the meaning of a term) decides two things: a sentence holding a span of that kind is
preferred when quoting, and the span itself is returned inside the quote (`Quote.answer`). Spans
are found with patterns for dates, amounts and numbers, capitalised runs for names, and
definitions for a term's meaning ("IP refers to intellectual property", "intellectual property
(IP)"); a span whose words the question already says is not an answer ("When did Microsoft's
partnership begin?" is not answered by "Microsoft").
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import lru_cache

from bot.indexing.keyword import query_tokens, tokenize

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sept?(?:ember)?"
    r"|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_WEEKDAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_YEAR = r"(?:1[0-9]\d\d|20\d\d)s?"
DATE = re.compile(
    rf"\b(?:{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+{_YEAR})?|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}"
    rf"(?:,?\s+{_YEAR})?|{_MONTH},?\s+{_YEAR}|(?:(?:early|late|mid)[- ])?{_YEAR}|{_WEEKDAY}|{_MONTH}(?=\s|[,.;]))",
)
_SCALE = r"(?:hundred|thousand|million|billion|trillion|bn|m|k|B|M|K)\b"
_CURRENCY = r"(?:US\$|A\$|C\$|HK\$|NZ\$|\$|£|€|¥|₹|Rs\.?\s?)"
AMOUNT = re.compile(
    rf"(?:{_CURRENCY}\s?\d[\d,]*(?:\.\d+)?(?:\s?{_SCALE})?"
    rf"|\b\d[\d,]*(?:\.\d+)?(?:\s?{_SCALE})?\s(?:dollars|pounds|euros|yen|yuan|rupees|francs|pesos)\b)"
)
_NUMBER_WORD = (
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen"
    r"|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|dozens?)"
)
NUMBER = re.compile(
    rf"\b\d[\d,]*(?:\.\d+)?(?:\s?(?:%|percent|per cent|{_SCALE}))?"
    rf"|\b{_NUMBER_WORD}(?:[- ]{_NUMBER_WORD})*(?:\s(?:hundred|thousand|million|billion))?\b",
    re.IGNORECASE,
)
# Runs of capitalised words (with "of", "de", "&" and initials inside): names of people, places, things.
_NAME_WORD = r"[A-Z](?:[\w.&-]|['’](?!s\b))*"  # a possessive "'s" ends the name
NAME = re.compile(rf"\b{_NAME_WORD}(?:\s+(?:(?:of|de|da|van|von|the|&)\s+)?(?:{_NAME_WORD}|\d+))*")
# Capitalised words that start sentences or stand for time, not names.
_NOT_NAMES = frozenset(
    "the a an this that these those it its he she they we i in on at for but and or as if when while after "
    "before since by with from to of his her their our there here what who which where why how mr mrs ms "
    "also however meanwhile today yesterday tomorrow last next".split()
)

_DATE_Q = re.compile(
    r"^(?:when\b|(?:in|on|by|since|until)\s+what\s+(?:year|date|day|month))|\b(?:what|which)\s+(?:year|date|day|month)\b|\buntil when\b|\bsince when\b",
    re.I,
)
_AMOUNT_Q = re.compile(r"\bhow much\b|\bwhat (?:price|cost|amount|sum)\b|\bhow expensive\b|\bworth\b.*\?$", re.I)
_NUMBER_Q = re.compile(
    r"\bhow (?:many|long|old|far|big|large|often|tall|high|fast|strong|deep|wide)\b|\bwhat (?:percentage|share|number|age)\b"
    r"|\bhow many\b",
    re.I,
)
_PERSON_NOUNS = (
    "person|people|man|woman|actor|actress|singer|rapper|star|pop star|player|athlete|politician|leader|president|"
    "senator|governor|lawmaker|judge|ceo|executive|founder|artist|author|writer|musician|comedian|director|"
    "footballer|quarterback|coach|pope|prince|princess|king|queen|member|celebrity|billionaire|official|minister|"
    "candidate|driver|host|chef|scientist|icon|legend|journalist|presenter|republican|democrat|manager"
)
_PLACE_NOUNS = "country|city|state|town|village|region|continent|island|nation|county|province|venue|capital|park"
_WHO_Q = re.compile(rf"^(?:who|whom|whose)\b|\b(?:who|whom|whose)\b|\bwhich (?:\w+ )?(?:{_PERSON_NOUNS})\b", re.I)
_WHERE_Q = re.compile(rf"^where\b|\bwhere\b|\b(?:which|what) (?:\w+ )?(?:{_PLACE_NOUNS})\b", re.I)
_SAID_Q = re.compile(
    r"\b(?:say|said|says|saying|tell|told|describe|describes|described|react|reacted|respond|responded|comment|"
    r"statement|announce[sd]?|claim(?:s|ed)?|warn(?:s|ed)?|call(?:s|ed)?)\b",
    re.I,
)
_YES_NO_Q = re.compile(
    r"^(?:is|are|was|were|do|does|did|has|have|had|can|could|will|would|should|shall|may|must)\b|\btrue or false\b",
    re.I,
)
_WH = re.compile(r"\b(?:who|whom|whose|what|when|where|which|why|how)\b", re.I)
# "What does IP mean?", "What does the acronym API stand for?", "What is GPU short for?": the asked term.
_MEANING_Q = re.compile(
    r"\bwhat (?:does|do) (?:the )?(?:term |word |acronym |abbreviation |initialism )?[\"“‘']?([\w.&-]+?)[\"”’']?"
    r" (?:mean|stand for|refer to)\b(?! by\b)|\bwhat (?:is|are) [\"“‘']?([\w.&-]+?)[\"”’']? (?:short for|an? (?:acronym|abbreviation)"
    r" (?:for|of))\b",
    re.I,
)

TYPES = ("who", "when", "where", "how much", "how many", "why", "said", "yes/no", "which", "what", "topic")
_NUMERIC_KINDS = frozenset({"date", "amount", "number"})


@dataclass(frozen=True, slots=True)
class Span:
    """A candidate short answer inside a text: [start, end) offsets and its kind."""

    start: int
    end: int
    kind: str


def question_type(question: str) -> str:
    """One of TYPES, from the question's last sentence (news quizzes set the scene first)."""
    last = _last_sentence(question)
    low = last.lower()
    if _YES_NO_Q.search(last) and not _WH.search(last):
        return "yes/no"
    if re.search(r"\bwhy\b", low):
        return "why"
    if _DATE_Q.search(last):
        return "when"
    if _AMOUNT_Q.search(last):
        return "how much"
    if _NUMBER_Q.search(last):
        return "how many"
    if _WHO_Q.search(last):
        return "who"
    if _WHERE_Q.search(last):
        return "where"
    if asked_term(question) is not None:
        return "what"
    if re.search(r"\bwhat (?:did|does|do|has|have|had|was|is|will)\b.*\b(?:say|said|think|mean)\b", low) or (
        re.search(r"\b(?:how|what)\b", low) and _SAID_Q.search(last)
    ):
        return "said"
    if re.search(r"\bwhich\b", low):
        return "which"
    if re.search(r"\bwhat\b|\bhow\b", low):
        return "what"
    return "topic"


# "What does it mean?" asks about something said, not a term.
_NOT_TERMS = frozenset("it this that he she they we you i his her their its these those".split())


# Asked once per candidate unit of a question (`new_spans`): cached.
@lru_cache(maxsize=256)
def asked_term(question: str) -> str | None:
    """The term whose meaning the question asks for ("IP" in "What does IP mean?"), else None."""
    found = _MEANING_Q.search(_last_sentence(question))
    term = (found.group(1) or found.group(2)) if found else None
    return None if term is None or term.lower() in _NOT_TERMS else term


def answer_kind(question: str) -> str | None:
    """The kind of short answer the question expects: date, amount, number, person, place, name,
    meaning; else None."""
    if asked_term(question) is not None:
        return "meaning"
    kind = {"when": "date", "how much": "amount", "how many": "number", "who": "person", "where": "place"}.get(
        question_type(question)
    )
    if kind is None and question_type(question) == "which":
        kind = "name"
    return kind


@dataclass(frozen=True, slots=True)
class QuestionInfo:
    """What answering needs from a question, read once per question: its search terms
    (`keyword.query_tokens`), the kind of short answer it wants, its type, and whether it asks for
    several names (a list is then marked whole)."""

    text: str
    tokens: list[str]
    kind: str | None
    type: str
    several: bool

    @classmethod
    def of(cls, question: str) -> QuestionInfo:
        return cls(
            question, query_tokens(question), answer_kind(question), question_type(question), asks_for_several(question)
        )

    @property
    def numeric(self) -> bool:
        return self.kind in _NUMERIC_KINDS


# A question asking for several: "Who are the partners?", "Which companies will build it?".
_SEVERAL_Q = re.compile(
    r"^(?:who|what|which)\s+(?:are|were)\b|^(?:which|what)\s+(?:\w+\s+)?\w+[^siu\W]s\s+"
    r"(?:are|were|will|would|did|do|have|had|can|could)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.!?](?=\s+[A-Z])")  # a list stays inside its sentence
_TIME_NAME = re.compile(rf"{_MONTH}|{_WEEKDAY}")  # "in May and Quintrel" lists no names
# Between two names of a list: ", ", ", and ", " and ", " or ".
_LIST_JOIN = re.compile(r",\s+(?:and\s+|or\s+)?|\s+(?:and|or)\s+")
# A sentence opening with a phrase that ends in a name before its comma: "As part of Tollmere,
# Quintrel and Orvik will…" (the name before the comma is the phrase's, not the list's, unless a
# comma ends the list too: "As for Tollmere, Quintrel and Orvik, it was a good year").
_OPENING_PHRASE = re.compile(
    r"[.!?]?\s*(?:as|about|after|against|amid|among|at|before|beyond|by|despite|during|for|following|from|in|"
    r"inside|like|on|since|through|under|unlike|with|within|without)\b[^,]*",
    re.IGNORECASE,
)


def asks_for_several(question: str) -> bool:
    """True when the question asks for more than one name ("Who are…", "Which companies will…")."""
    return bool(_SEVERAL_Q.search(_last_sentence(question).strip()))


def whole_list(text: str, start: int, end: int) -> tuple[int, int]:
    """`text[start:end]` widened to the whole list of names it is one of ("A, B, and C"); as it is
    when it is not inside such a list."""
    ends = [0, *(m.start() for m in _SENTENCE_END.finditer(text)), len(text)]
    sentence = next(((a, b) for a, b in itertools.pairwise(ends) if a <= start < b), (0, len(text)))
    runs: list[list[tuple[int, int]]] = []  # names joined by list joins, in order
    for name in _list_names(text, *sentence):
        if runs and _LIST_JOIN.fullmatch(text[runs[-1][-1][1] : name[0]]):
            runs[-1].append(name)
        else:
            runs.append([name])
    for run in runs:
        if (
            len(run) > 1
            and _OPENING_PHRASE.fullmatch(text[sentence[0] : run[0][0]])
            and text[run[0][1] : run[1][0]].startswith(",")
            and not text[run[-1][1] :].startswith(",")  # "As for A, B, and C, …": all the phrase's
        ):
            run = run[1:]
        if len(run) > 1 and run[0][0] <= start and end <= run[-1][1]:
            return run[0][0], run[-1][1]
    return start, end


def _list_names(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """The names in text[lo:hi], without the capitalised words that open a sentence ("For
    Tollmere" is Tollmere) and without months and weekdays."""
    names = []
    for match in NAME.finditer(text, lo, hi):
        first = _name_start(text, *match.span())
        if first is not None and not _TIME_NAME.fullmatch(text[first : match.end()]):
            names.append((first, match.end()))
    return names


_TOKEN = re.compile(r"\S+")


def _name_start(text: str, start: int, end: int) -> int | None:
    """Where the name in text[start:end] starts, after the capitalised words that open a sentence
    or stand for time ("For Tollmere" starts at Tollmere); None when no word of it is a name."""
    for word in _TOKEN.finditer(text, start, end):
        if word.group().casefold() not in _NOT_NAMES:
            return word.start()
    return None


def _last_sentence(question: str) -> str:
    parts = [p for p in re.split(r"(?<=[.!?])\s+(?=[A-Z“\"'])", question.strip()) if p.strip()]
    # "…this week. Which team…?" asks in its last part; a statement ending in ':' still asks there.
    return parts[-1] if parts else question


def candidate_spans(text: str, kind: str) -> list[Span]:
    """Spans of `text` that could answer a question expecting `kind`."""
    return list(_candidate_spans(text, kind))


# Sentence units whose candidate spans are kept (~1-2 MB at sentence length).
SPAN_CACHE = 4096


# Answering asks this of the same sentence units question after question (a unit's spans
# depend on its text alone): cached, the regular expressions run once per unit and kind.
@lru_cache(maxsize=SPAN_CACHE)
def _candidate_spans(text: str, kind: str) -> tuple[Span, ...]:
    if kind == "meaning":
        return tuple(span for _, span in definitions(text))  # already in order
    if kind == "date":
        patterns = [DATE]
    elif kind == "amount":
        patterns = [AMOUNT]
    elif kind == "number":
        patterns = [AMOUNT, NUMBER]
    else:  # person, place, name
        patterns = [NAME]
    spans: list[Span] = []
    for pattern in patterns:
        for match in pattern.finditer(text):
            start, end = match.span()
            piece = text[start:end].rstrip(".,;:'’")
            end = start + len(piece)
            if not piece.strip() or any(s.start < end and start < s.end for s in spans):
                continue
            if pattern is NAME:
                # A run stops at a sentence's end ("Super Bowls. He") and drops a possessive.
                cut = re.search(r"\w{2,}[.!?]\s", piece)
                if cut:
                    piece = piece[: cut.end() - 2]
                piece = re.sub(r"['’]s$", "", piece)
                end = start + len(piece)
                first = _name_start(text, start, end)
                if first is None:
                    continue
                start = first
            spans.append(Span(start, end, kind))
    return tuple(sorted(spans, key=lambda s: s.start))


# "IP refers to intellectual property", "AGI stands for artificial general intelligence, basically…":
# the term, then what it means, up to the clause's end.
_DEFINED_AS = re.compile(
    r"\b([\w.&-]+)[*†‡]*\s+(?:stands for|refers to|means|is short for|is an? (?:acronym|abbreviation|initialism)"
    r" (?:for|of))\s+([^.,;:!?()\n]+)"
)
# "intellectual property (IP)": the words before a parenthesised initialism whose initials spell it.
_INITIALISM = re.compile(r"\(([A-Z][A-Za-z&]{1,9})s?\)")
_LINKING = frozenset({"of", "and", "the", "for", "&", "de", "in", "on", "to"})


@lru_cache(maxsize=SPAN_CACHE)
def definitions(text: str) -> tuple[tuple[str, Span], ...]:
    """Each (term, span of what it means) that `text` defines, in order."""
    found = []
    for match in _DEFINED_AS.finditer(text):
        start, end = match.span(2)
        meaning = text[start:end].rstrip()
        found.append((match.group(1), Span(start, start + len(meaning), "meaning")))
    for match in _INITIALISM.finditer(text):
        letters = [c.lower() for c in match.group(1) if c.isalpha() and c.isupper()] or [match.group(1)[0].lower()]
        words = list(re.finditer(r"[\w’'-]+", text[: match.start()]))
        picked: list[re.Match[str]] = []
        for word in reversed(words):
            if len(picked) == len(letters) + 3:
                break
            if picked and word.group().lower() in _LINKING:
                continue
            picked.append(word)
            if [w.group()[0].lower() for w in reversed(picked)] == letters:
                found.append((match.group(1), Span(picked[-1].start(), picked[0].end(), "meaning")))
                break
    return tuple(sorted(found, key=lambda f: f[1].start))


_WORD = re.compile(r"\w+")
_NAME_KINDS = frozenset({"person", "place", "name"})
# The nearest candidate must be this much nearer the question's words than the next one.
MIN_MARGIN_CHARS = 3


_NOT_PERSON_WORDS = frozenset(
    "director officer chairman chairwoman ceo president chief executive minister secretary corp corporation inc "
    "ltd llc group company project university college department agency association council committee "
    "institute foundation bank party house senate court police service news times post report times "
    "january february march april may june july august september october november december monday tuesday "
    "wednesday thursday friday saturday sunday".split()
)


def _looks_like_person(name: str) -> bool:
    """Two to four capitalised words, none of them a title or an organisation's word."""
    words = name.split()
    return 2 <= len(words) <= 4 and not any(w.lower().strip(".,'’") in _NOT_PERSON_WORDS for w in words)


_COUNTED = re.compile(r"\bhow many (\w+)", re.I)


def _matches(stem: str, asked: set[str]) -> bool:
    # Stems part ways where a reader would not: "chair" and "chairman".
    return stem in asked or (len(stem) >= 4 and any(stem.startswith(a) for a in asked if len(a) >= 4))


def _stem(word: str) -> str:
    tokens = tokenize(word)
    return tokens[0] if tokens else ""


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


def new_spans(text: str, kind: str, question: str) -> list[Span]:
    """Candidate spans that say something the question does not already say (a name half of
    whose words the question has, "Stargate Project" for "Who chairs Stargate?", is not new)."""
    if kind == "meaning":
        term = (asked_term(question) or "").lower()
        return [span for defined, span in definitions(text) if defined.lower() == term]
    asked = _words(question)
    spans = []
    for span in candidate_spans(text, kind):
        words = [w.lower() for w in _WORD.findall(text[span.start : span.end])]
        known = sum(w in asked for w in words)
        if known < len(words) and not (span.kind in _NAME_KINDS and 2 * known >= len(words)):
            spans.append(span)
    return spans


def has_answer_kind(text: str, kind: str | None, question: str) -> bool:
    """True when no kind is expected, or `text` holds a new span of it."""
    return kind is None or bool(new_spans(text, kind, question))


def best_span(text: str, question: QuestionInfo) -> Span | None:
    """The likeliest short answer in `text` (offsets into `text`), or None when unsure.

    Among new spans of the expected kind, the one nearest the question's words that the text
    repeats; a tie or no anchor at all with several candidates is "unsure".
    """
    kind = question.kind
    if kind is None:
        return None
    spans = new_spans(text, kind, question.text)
    if not spans:
        return None
    if len(spans) == 1:
        return spans[0]
    asked = set(question.tokens)
    anchors = [m.start() for m in _WORD.finditer(text) if _matches(_stem(m.group()), asked)]
    counted = _COUNTED.search(question.text)
    if kind == "number" and counted:
        # "How many years…": the number that counts years ("four years") is the answer.
        unit = _stem(counted.group(1))
        right = [s for s in spans if _stem(" ".join(text[s.end :].split()[:1])) == unit]
        if len(right) == 1:
            return right[0]
    if not anchors:
        return None

    def distance(span: Span) -> int:
        return min(min(abs(a - span.start), abs(a - span.end)) for a in anchors)

    if kind == "person":
        # Titles and organisations are capitalised too: "Corporate Officer" is not who chairs.
        person = [s for s in spans if _looks_like_person(text[s.start : s.end])]
        spans = person or spans
        if len(spans) == 1:
            return spans[0]
    ranked = sorted(spans, key=distance)
    if distance(ranked[1]) - distance(ranked[0]) < MIN_MARGIN_CHARS:
        return None  # two candidates about as near: unsure
    return ranked[0]
