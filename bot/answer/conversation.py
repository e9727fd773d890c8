"""Follow-up questions: whether a question leans on the ones before it, and how it is then read.

Without a language model this is rules and retrieval. A question depends on the conversation when

- it opens with an ellipsis ("what about Oracle?", "and Microsoft?", "but why?"),
- it has a third-person pronoun or a demonstrative ("it", "they", "his", "this deal") and no
  name before it that the pronoun could stand for, or
- it is too short to name a topic ("Why?", "How much?", "When did it begin?").

Such a question is read with the earlier one's topic: an ellipsis that names something new puts
it in place of the earlier question's first name ("What did Microsoft say…?" + "And Oracle?" →
"What did Oracle say…?"); otherwise the earlier question's topic words are added ("When did it
begin? (about Microsoft, partnership, OpenAI)"). That reading is what the answer's `context`
shows. It is searched with the article the earlier answer came from preferred (a rank bonus, not
a filter: a new name may live in another article), leaving out the topic words that the article's
title already holds (they would pull towards its lead, which repeats them all); the follow-up's
own words are also searched, with that article preferred more strongly, and the more confident
answer wins. A question that stands alone is answered as it is, even in a conversation.

Earlier questions are read in order, each in the light of the ones before, so a chain of
follow-ups keeps its topic. Which article answered an earlier question is taken from the caller
when it knows (Slack stores it) or found by answering the earlier question again after its own
history (HTTP sends questions only); both give the same article for the same index.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from bot.answer.answering import answer_with_vector
from bot.answer.asking import ArticleBoost, Ask, check_text
from bot.answer.reading import Reader
from bot.errors import QuestionError
from bot.indexing.index import Index
from bot.indexing.keyword import query_tokens
from bot.records import Answer

MAX_HISTORY = 10
# Rank bonus for passages of the article the earlier answer came from, in the fused z-score's
# units. On tests/data/followups.jsonl (`bot eval tests/data/followups.jsonl --corpus corpus
# --corpus tests/data/followup-corpus`), follow-ups right: 0.81 at 0, 0.84 at 0.5, 1 and 2.
PREFER_WEIGHT = 0.5
# The follow-up's own words are also searched alone with the earlier article preferred this much
# (1, 2 and 4 measure alike). Follow-ups right on the set above: 0.53 searching the reading with
# every topic word, 0.72 leaving the title's words to the preference, 0.84 with this second search.
# (Measured with the re-ranking weight at 2; at 3 the product still scores 0.84.)
OWN_WORDS_PREFER_WEIGHT = 2.0

_WORD = re.compile(r"[\w][\w'’.-]*\w|\w")
_PRONOUNS = frozenset("it its itself they them their theirs themselves he him his himself she her hers herself".split())
_DEMONSTRATIVES = frozenset("this these those".split())
# Words after "that" that make it a conjunction or relative ("said that the…", "that is"), not "that deal".
_AFTER_THAT_CONJUNCTION = frozenset(
    "the a an it its they he she we i you this these those there his her their our is was are were will would "
    "can could has have had does did do be been to in on of for with by".split()
)
# "Is it true that…": "it" that stands for nothing.
_DUMMY_IT = re.compile(
    r"\b(?:is|was|isn't|wasn't) it (?:true|false|possible|likely|known|confirmed|the case)\b", re.IGNORECASE
)
# An opening that continues the previous question.
_ELLIPSIS = re.compile(
    r"^(?:and|but|also|so|or|what about|how about|what of|and what about|and how about|same for|same with)\b[\s,]*",
    re.IGNORECASE,
)
# A question of its own after the opening ("and when did it begin?"), rather than a noun phrase.
_QUESTION_START = re.compile(
    r"^(?:who|whom|whose|what|when|where|which|why|how|is|are|was|were|do|does|did|will|would|can|could|has|"
    r"have|had|should)\b",
    re.IGNORECASE,
)
# Words that are lowercase in running text but start a question with a capital.
_OPENERS = frozenset(
    "who whom whose what when where which why how is are was were do does did will would can could has have had "
    "should shall may might must and but also so or tell explain list name give show describe".split()
)
# Reporting verbs and fillers that are no topic of their own.
_NOT_TOPIC = frozenset("say said says tell told mention mentioned think mean means".split())
MIN_TOPIC_TOKENS = 3


@dataclass(frozen=True, slots=True)
class Turn:
    """An earlier question of the conversation, and the article its answer came from if known."""

    question: str
    article_id: str | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """How a question is understood: `query` is searched, `context` is shown (None: as asked)."""

    question: str
    query: str
    context: str | None = None
    reason: str | None = None  # why it was read as a follow-up: "pronoun", "ellipsis", "short"
    prefer_article: str | None = None
    asked: str | None = None  # the question's own part (an ellipsis' opening dropped)
    topic: tuple[str, ...] = ()  # the earlier words it was read with


def validate_history(history: object, max_chars: int) -> list[str]:
    """Earlier questions, each trimmed, or a QuestionError that says what is wrong."""
    if history is None:
        return []
    if not isinstance(history, (list, tuple)):
        raise QuestionError("history must be a list of earlier questions, most recent last.")
    if len(history) > MAX_HISTORY:
        raise QuestionError(f"history holds {len(history)} questions; the limit is {MAX_HISTORY} (send the latest).")
    out: list[str] = []
    for n, item in enumerate(history):
        if not isinstance(item, str) or not item.strip():
            raise QuestionError(f"history[{n}] is empty: each earlier question must have some words.")
        item = check_text(" ".join(item.split()), f"history[{n}]")
        if len(item) > max_chars:
            raise QuestionError(f"history[{n}] is {len(item)} characters long; the limit is {max_chars}.")
        out.append(item)
    return out


def _words(question: str) -> list[str]:
    return _WORD.findall(question)


def _is_name(word: str, first: bool) -> bool:
    """A proper name, acronym or number: something a pronoun could stand for."""
    if any(c.isdigit() for c in word):
        return True
    if not word[:1].isupper():
        return False
    if first:
        # A sentence's first word is capitalised anyway: only inner capitals (OpenAI) or all caps say "name".
        return word.lower() not in _OPENERS and (
            any(c.isupper() for c in word[1:]) or (len(word) > 1 and word.isupper())
        )
    return word != "I"


def dependence(question: str) -> str | None:
    """Why `question` leans on an earlier one ("ellipsis", "pronoun", "short"), or None."""
    if _ELLIPSIS.match(question):
        return "ellipsis"
    words = _words(question)
    named = False
    for n, word in enumerate(words):
        lower = word.lower().replace("’", "'")
        if lower in _PRONOUNS and not named:
            if lower == "it" and _DUMMY_IT.search(question):
                continue
            return "pronoun"
        if lower in _DEMONSTRATIVES and not named:
            return "pronoun"
        if lower == "that" and not named:
            after = words[n + 1] if n + 1 < len(words) else None
            if after is None or (after[:1].islower() and after.lower() not in _AFTER_THAT_CONJUNCTION):
                return "pronoun"
        if _is_name(word, first=n == 0):
            named = True
    if not named and len(query_tokens(question)) < MIN_TOPIC_TOKENS:
        return "short"
    return None


def names(question: str, *, opening: bool = True) -> list[tuple[int, int]]:
    """Character spans of runs of names (capitalised words) in `question` (`opening`: its first
    word opens a sentence, so its capital says nothing)."""
    spans: list[tuple[int, int]] = []
    for n, match in enumerate(_WORD.finditer(question)):
        if _is_name(match.group(), first=opening and n == 0):
            if spans and question[spans[-1][1] : match.start()].strip() in ("", "'s", "’s", "&"):
                spans[-1] = (spans[-1][0], match.end())
            else:
                spans.append((match.start(), match.end()))
    return spans


def topic_words(question: str) -> list[str]:
    """The words of `question` that name its topic, as written, in order, without repeats."""
    seen: set[str] = set()
    out: list[str] = []
    for word in _words(question):
        word = re.sub(r"['’]s$", "", word)
        tokens = query_tokens(word)
        if not tokens or word.lower() in _NOT_TOPIC or word.lower() in seen:
            continue
        seen.add(word.lower())
        out.append(word)
    return out


def read(question: str, earlier: Reading | None) -> Reading:
    """`question` as understood after the `earlier` reading (None: first in the conversation)."""
    reason = dependence(question) if earlier is not None else None
    if earlier is None or reason is None:
        return Reading(question=question, query=question)
    asked = question
    if reason == "ellipsis":
        rest = _ELLIPSIS.sub("", question, count=1).strip()
        bare = rest.rstrip("?!. ").strip()
        if bare and not _QUESTION_START.match(bare) and dependence(bare) != "pronoun" and earlier.reason is None:
            new_names, old_names = names(bare, opening=False), names(earlier.question)
            if new_names and old_names:
                # "And Oracle?" after "What did Microsoft say…?": the new name takes the first one's place.
                start, end = old_names[0]
                understood = earlier.question[:start] + bare + earlier.question[end:]
                return Reading(question, understood, understood, reason, earlier.prefer_article)
        if bare:
            asked = rest[:1].upper() + rest[1:]
    known = {w.lower() for w in _words(asked)}
    topic = tuple(w for w in topic_words(earlier.question) + list(earlier.topic) if w.lower() not in known)
    topic = tuple(dict.fromkeys(topic))
    understood = f"{asked} (about {', '.join(topic)})" if topic else asked
    return Reading(question, understood, understood, reason, earlier.prefer_article, asked, topic)


def understand(
    question: str,
    history: Sequence[Turn],
    answered_article: Callable[[], str | None],
) -> Reading:
    """Read `question` after the earlier `history` (oldest first).

    `answered_article()` names the article whose quote topped the answer to the latest earlier
    question; it is asked only when `question` depends and that turn does not say.
    """
    if not history:
        return Reading(question=question, query=question)
    earlier: Reading | None = None
    for turn in history[-MAX_HISTORY:]:
        earlier = read(turn.question, earlier)
    assert earlier is not None
    reading = read(question, earlier)
    if reading.reason is None:
        return reading
    last = history[-1]
    article = last.article_id if last.article_id is not None else answered_article()
    return replace(reading, prefer_article=article)


def search_text(reading: Reading, title: str | None) -> str:
    """What a reading searches for. The earlier topic's words that are in the preferred article's
    title are left to the article preference: searched for, they pull towards the passage that
    repeats them all (the article's lead) rather than the one that answers."""
    if not reading.topic or title is None:
        return reading.query
    in_title = set(query_tokens(title))
    kept = [w for w in reading.topic if not set(query_tokens(w)) <= in_title]
    return f"{reading.asked} {' '.join(kept)}".strip() if kept else reading.asked or reading.query


def answer_in_conversation(
    index: Index,
    encode: Callable[[str], np.ndarray],
    ask: Ask,
    history: Sequence[Turn] = (),
    *,
    reader: Reader | None = None,
    started: float | None = None,
) -> Answer:
    """Answer a validated question after the earlier `history`: as asked when it stands alone,
    else as understood (searched with the earlier topic, the earlier article preferred), with
    `context` saying how it was understood."""
    started = time.perf_counter() if started is None else started

    def answered_article() -> str | None:
        # The earlier question answered again, after its own history: the article shown then.
        earlier = replace(ask, question=history[-1].question, k=1)
        found = answer_in_conversation(index, encode, earlier, history[:-1], reader=reader)
        return found.quotes[0].article.id if found.quotes else None

    reading = understand(ask.question, history, answered_article)
    number = index.article_number.get(reading.prefer_article or "")
    query = search_text(reading, index.articles[number].title if number is not None else None)
    prefer = reading.prefer_article
    understood = replace(ask, question=query, boost=ArticleBoost(prefer, PREFER_WEIGHT) if prefer else None)
    result = answer_with_vector(index, understood, encode(query), reader=reader, started=started)
    if reading.reason is not None and prefer is not None:
        # The earlier topic's words find the article but also pull towards the passage that repeats
        # them (an article's lead); the follow-up's own words, within the earlier article, find the
        # sentence that answers it. The more confident of the two readings wins.
        own_words = replace(ask, boost=ArticleBoost(prefer, OWN_WORDS_PREFER_WEIGHT))
        own = answer_with_vector(index, own_words, encode(ask.question), reader=reader, started=started)
        if own.quotes and (not result.quotes or own.quotes[0].score > result.quotes[0].score):
            result = own
    return result.model_copy(update={"question": ask.question, "context": reading.context})
