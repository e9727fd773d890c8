"""Keyword (BM25) search over passages, with bm25s: the only module that imports it.

Tokens are lowercased words, English stopwords dropped, Snowball-stemmed, so "chairs" finds
"chairman"'s stem neighbours and "the" finds nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)


@cache
def _stemmer() -> Any:
    import Stemmer  # PyStemmer: C Snowball stemmers

    return Stemmer.Stemmer("english")


@cache
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    # Question words carry no topic: "who"/"what" match every passage that says them.
    return frozenset(STOPWORDS_EN) | {"who", "what", "when", "where", "which", "why", "how", "whom", "whose"}


# Irregular verbs' past forms, which no stemmer joins to the present: "When did it begin?" must
# find "which began in 2019". Applied to passages and questions alike (FORMAT_VERSION counts it).
_IRREGULAR_FORMS = {
    "begin": "began begun",
    "buy": "bought",
    "sell": "sold",
    "lead": "led",
    "take": "took taken",
    "make": "made",
    "give": "gave given",
    "grow": "grew grown",
    "rise": "rose risen",
    "fall": "fell fallen",
    "win": "won",
    "lose": "lost",
    "pay": "paid",
    "build": "built",
    "spend": "spent",
    "hold": "held",
    "leave": "left",
    "meet": "met",
    "bring": "brought",
    "keep": "kept",
    "choose": "chose chosen",
    "become": "became",
    "come": "came",
    "go": "went gone",
    "get": "got gotten",
    "know": "knew known",
    "see": "saw seen",
    "say": "said",
    "tell": "told",
    "think": "thought",
    "write": "wrote written",
    "speak": "spoke spoken",
    "run": "ran",
    "send": "sent",
    "seek": "sought",
    "sink": "sank sunk",
    "strike": "struck",
    "draw": "drew drawn",
    "drive": "drove driven",
    "fly": "flew flown",
    "steal": "stole stolen",
    "fight": "fought",
    "teach": "taught",
    "catch": "caught",
    "feel": "felt",
    "stand": "stood",
    "understand": "understood",
    "swim": "swam swum",
    "eat": "ate eaten",
    "forget": "forgot forgotten",
    "forgive": "forgave forgiven",
    "freeze": "froze frozen",
    "hide": "hid hidden",
    "ride": "rode ridden",
    "shake": "shook shaken",
    "wake": "woke woken",
    "wear": "wore worn",
    "tear": "tore torn",
    "withdraw": "withdrew withdrawn",
    "overtake": "overtook overtaken",
    "undertake": "undertook undertaken",
    "foresee": "foresaw foreseen",
}
_BASE_FORM = {form: base for base, forms in _IRREGULAR_FORMS.items() for form in forms.split() if form != base}


def _stems(words: list[str]) -> list[str]:
    return list(_stemmer().stemWords([_BASE_FORM.get(w, w) for w in words]))


def tokenize(text: str) -> list[str]:
    """Stemmed content words of `text`, in order."""
    stop = _stopwords()
    words = [w for w in _WORD.findall(text.lower()) if w not in stop and (len(w) > 1 or w.isdigit())]
    return _stems(words)


# Words a question needs and an answer rarely repeats ("How much does…", "What did they now…"):
# news text uses them seldom, so as query terms they would pass for rare, telling words.
_QUESTION_FILLER = frozenset(
    "do does did doing done have has had having much many now can could would should shall must "
    "been being were am i me my we our you your he she his her him its them about also just so "
    "than too very any some here tell please know".split()
)


# "How long/big/old…" names the kind of answer, not the topic: "long" is no search term.
_HOW_ADJECTIVE = re.compile(
    r"\bhow\s+(?:long|big|large|old|far|often|tall|high|soon|fast|early|late|wide|deep)\b", re.IGNORECASE
)


def query_tokens(question: str) -> list[str]:
    """The tokens of a question that should count when searching and weighing quotes."""
    stop = _stopwords() | _QUESTION_FILLER
    text = _HOW_ADJECTIVE.sub(" ", question.lower())
    words = [w for w in _WORD.findall(text) if w not in stop and (len(w) > 1 or w.isdigit())]
    return _stems(words)


# bm25s's defaults (BM25 "lucene"), which the Milvus backend's engine is set to as well.
BM25_K1 = 1.5
BM25_B = 0.75


class KeywordStats:
    """How many passages hold each token: the idf that weighs a question's words in sentence
    scoring, and bm25s's BM25 of a passage from its own terms (the Milvus backend's candidates)."""

    def __init__(self, num_docs: int, doc_freq: Callable[[str], int], average_length: float = 1.0) -> None:
        self.num_docs = num_docs
        self.doc_freq = doc_freq
        self.average_length = average_length

    @classmethod
    def counted(cls, terms: Iterable[str]) -> KeywordStats:
        """The statistics of passages given as their space-joined terms."""
        counts: Counter[str] = Counter()
        total = docs = 0
        for text in terms:
            words = text.split()
            total += len(words)
            docs += 1
            counts.update(set(words))
        return cls(docs, lambda token: counts.get(token, 0), total / docs if docs else 1.0)

    def idf(self, tokens: list[str]) -> dict[str, float]:
        """Inverse document frequency of each token (unknown tokens get the highest)."""
        n = self.num_docs
        out: dict[str, float] = {}
        for token in tokens:
            df = self.doc_freq(token)
            out[token] = float(np.log(1 + (n - df + 0.5) / (df + 0.5)))
        return out

    def bm25(self, tokens: list[str], terms: list[str]) -> np.ndarray:
        """BM25 of each passage (its space-joined terms) for the query tokens, as bm25s scores it
        (`lucene`: idf · tf / (tf + k1 · (1 - b + b · length / average)), summed over the query
        tokens, repeats included)."""
        idf = self.idf(tokens)
        out = np.zeros(len(terms), dtype=np.float32)
        for n, text in enumerate(terms):
            words = text.split()
            norm = BM25_K1 * (1 - BM25_B + BM25_B * len(words) / self.average_length)
            for token in tokens:
                if count := words.count(token):
                    out[n] += idf[token] * count / (count + norm)
        return out


class KeywordIndex:
    """BM25 over a fixed list of documents with bm25s, scored in full for fusion with dense search."""

    def __init__(self, bm25: Any) -> None:
        self.bm25 = bm25
        indptr = np.asarray(bm25.scores["indptr"])
        doc_freq = np.diff(indptr)  # bm25s stores one CSC column per token
        vocabulary: dict[str, int] = bm25.vocab_dict

        def frequency(token: str) -> int:
            tid = vocabulary.get(token)
            return int(doc_freq[tid]) if tid is not None and tid < len(doc_freq) else 0

        self.num_docs = int(bm25.scores["num_docs"])
        self.stats = KeywordStats(self.num_docs, frequency)

    @classmethod
    def build(cls, texts: list[str]) -> KeywordIndex:
        import bm25s

        bm25 = bm25s.BM25()
        # An empty token keeps documents with no content words (e.g. "—") indexable.
        bm25.index([tokenize(t) or [""] for t in texts], show_progress=False)
        return cls(bm25)

    def save(self, folder: Path) -> None:
        self.bm25.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> KeywordIndex:
        import bm25s

        return cls(bm25s.BM25.load(str(folder), mmap=True, show_progress=False))

    def scores(self, tokens: list[str], mask: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every document for the query tokens (zeros when none is known)."""
        known = [t for t in tokens if t in self.bm25.vocab_dict]
        if not known:
            return np.zeros(self.num_docs, dtype=np.float32)
        ids = [int(self.bm25.vocab_dict[t]) for t in known]
        scores = np.asarray(self.bm25.get_scores_from_ids(ids), dtype=np.float32)
        return scores if mask is None else scores * mask
