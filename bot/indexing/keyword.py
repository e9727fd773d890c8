"""Keyword (BM25) search over passages, with bm25s: the only module that imports it.

Tokens are lowercased words, English stopwords dropped, Snowball-stemmed, so "chairs" finds
"chairman"'s stem neighbours and "the" finds nothing.
"""

from __future__ import annotations

import re
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


def tokenize(text: str) -> list[str]:
    """Stemmed content words of `text`, in order."""
    stop = _stopwords()
    words = [w for w in _WORD.findall(text.lower()) if w not in stop and (len(w) > 1 or w.isdigit())]
    return list(_stemmer().stemWords(words))


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
    return list(_stemmer().stemWords(words))


class KeywordIndex:
    """BM25 over a fixed list of documents, scored in full for fusion with dense search."""

    def __init__(self, bm25: Any) -> None:
        self.bm25 = bm25
        indptr = np.asarray(bm25.scores["indptr"])
        self.doc_freq = np.diff(indptr)  # bm25s stores one CSC column per token
        self.num_docs = int(bm25.scores["num_docs"])

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

    def idf(self, tokens: list[str]) -> dict[str, float]:
        """Inverse document frequency of each token (unknown tokens get the highest)."""
        n = self.num_docs
        out: dict[str, float] = {}
        for token in tokens:
            tid = self.bm25.vocab_dict.get(token)
            df = int(self.doc_freq[tid]) if tid is not None and tid < len(self.doc_freq) else 0
            out[token] = float(np.log(1 + (n - df + 0.5) / (df + 0.5)))
        return out
