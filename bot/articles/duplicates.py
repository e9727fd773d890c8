"""Recognising an article the corpus already has: the same page, the same text, or a copy.

- *Same article*: the same canonical URL (scheme and host lowercased, fragment, default port,
  trailing slash and tracking parameters dropped) or the same id.
- *Same text*: equal after normalisation (case, punctuation and spacing ignored).
- *Near-duplicate*: a syndicated copy with a different headline, a dateline, a trailing credit.
  Texts are compared as sets of 5-word shingles; MinHash signatures (64 permutations) make the
  comparison against every article one vectorised numpy step, and candidates above 0.8 are
  then checked exactly: a Jaccard similarity of at least 0.9 is a copy.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from bot.records import Article

NEAR_DUPLICATE = 0.9
SHINGLE_WORDS = 5
PERMUTATIONS = 64
_TRACKING = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid|ref|cmpid)$", re.IGNORECASE)
_WORD = re.compile(r"\w+")
_rng = np.random.default_rng(20250123)
# Multiply-add hashing modulo 2**64 (odd multipliers): one cheap random permutation per row.
_MULTIPLIERS = _rng.integers(1, 2**63, size=PERMUTATIONS, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_OFFSETS = _rng.integers(0, 2**63, size=PERMUTATIONS, dtype=np.uint64)
_POSITIONS = _rng.integers(1, 2**63, size=SHINGLE_WORDS, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_WORD_HASHES: dict[str, int] = {}  # the corpus vocabulary: bounded in practice


def canonical_url(url: str) -> str:
    """The form two links to the same page share (a URL that does not parse stays as it is)."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:  # "http://[::1", a port past 65535: an older corpus file may hold one
        return url.strip()
    default_port = {"http": 80, "https": 443}.get(parts.scheme.lower())
    netloc = host if port in (None, default_port) else f"{host}:{port}"
    query = urlencode(
        sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k))
    )
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), netloc, path, query, ""))


def words(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def text_key(text: str, tokens: list[str] | None = None) -> str:
    """Equal for texts that differ only in case, punctuation and spacing."""
    return hashlib.sha256(" ".join(words(text) if tokens is None else tokens).encode()).hexdigest()


def shingles(text: str, tokens: list[str] | None = None) -> np.ndarray:
    """The distinct 5-word shingles of `text` as 64-bit hashes (a polynomial over word hashes,
    computed for all positions at once)."""
    tokens = words(text) if tokens is None else tokens
    for word in set(tokens) - _WORD_HASHES.keys():
        _WORD_HASHES[word] = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
    hashes = np.array(list(map(_WORD_HASHES.__getitem__, tokens)), dtype=np.uint64)
    if len(hashes) < SHINGLE_WORDS:
        return np.unique(hashes[None, :].sum(axis=1) if len(hashes) else hashes)
    count = len(hashes) - SHINGLE_WORDS + 1
    combined = np.zeros(count, dtype=np.uint64)
    for offset in range(SHINGLE_WORDS):
        combined += hashes[offset : offset + count] * _POSITIONS[offset]  # wraps modulo 2**64
    return np.unique(combined)


def signature(hashes: np.ndarray) -> np.ndarray:
    """MinHash signature: for each permutation, the smallest permuted shingle hash."""
    if not len(hashes):
        return np.zeros(PERMUTATIONS, dtype=np.uint64)
    permuted: np.ndarray = hashes[:, None] * _MULTIPLIERS[None, :] + _OFFSETS[None, :]  # wraps modulo 2**64
    result: np.ndarray = permuted.min(axis=0)
    return result


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = len(np.union1d(a, b))
    return len(np.intersect1d(a, b, assume_unique=True)) / union if union else 1.0


Fingerprint = tuple[str, np.ndarray, np.ndarray]  # text key, shingles, MinHash signature


def fingerprint(text: str) -> Fingerprint:
    tokens = words(text)
    hashes = shingles(text, tokens)
    return text_key(text, tokens), hashes, signature(hashes)


@dataclass(frozen=True)
class Match:
    """Why a new article is not new: `kind` is "url", "id", "text" or "copy"."""

    kind: str
    article: Article
    similarity: float = 1.0


class Catalog:
    """What the corpus holds, looked up by URL, id, text and near-duplicate text."""

    def __init__(self, articles: list[Article], memo: dict[str, Fingerprint] | None = None) -> None:
        """`memo` (text hash → fingerprint) lets a long-lived writer skip unchanged articles."""
        memo = {} if memo is None else memo
        prints: dict[str, Fingerprint] = {}
        current: set[str] = set()
        for article in articles:
            digest = hashlib.sha256(article.text.encode()).hexdigest()
            if digest not in memo:
                memo[digest] = fingerprint(article.text)
            prints[article.id] = memo[digest]
            current.add(digest)
        for stale in memo.keys() - current:
            del memo[stale]  # only the corpus as it is now is remembered
        self.by_id = {a.id: a for a in articles}
        self.by_url = {canonical_url(a.url): a for a in articles if a.url}
        self.by_text = {prints[a.id][0]: a for a in articles}
        # Only originals are compared for copies: a copy links to the article, not to another copy.
        self._originals = [a for a in articles if not a.duplicate_of]
        self._shingles = [prints[a.id][1] for a in self._originals]
        self._signatures = (
            np.stack([prints[a.id][2] for a in self._originals])
            if self._originals
            else np.zeros((0, PERMUTATIONS), dtype=np.uint64)
        )

    def add(self, article: Article) -> None:
        """Make a just-written article known to later lookups in the same batch."""
        self.by_id[article.id] = article
        if article.url:
            self.by_url[canonical_url(article.url)] = article
        self.by_text[text_key(article.text)] = article
        if not article.duplicate_of:
            self._originals.append(article)
            self._shingles.append(shingles(article.text))
            self._signatures = np.vstack([self._signatures, signature(self._shingles[-1])[None, :]])

    def remove(self, article_id: str) -> None:
        gone = self.by_id.pop(article_id, None)
        if gone is None:
            return
        self.by_url = {k: v for k, v in self.by_url.items() if v.id != article_id}
        self.by_text = {k: v for k, v in self.by_text.items() if v.id != article_id}
        keep = [n for n, a in enumerate(self._originals) if a.id != article_id]
        self._originals = [self._originals[n] for n in keep]
        self._shingles = [self._shingles[n] for n in keep]
        self._signatures = self._signatures[keep]

    def match(self, text: str, url: str | None = None, article_id: str | None = None) -> Match | None:
        """The article this one repeats, if any (URL first, then id, text, near-duplicate)."""
        if url and canonical_url(url) in self.by_url:
            return Match("url", self.by_url[canonical_url(url)])
        if article_id and article_id in self.by_id:
            return Match("id", self.by_id[article_id])
        if text_key(text) in self.by_text:
            return Match("text", self.by_text[text_key(text)])
        return self.near_duplicate(text)

    def near_duplicate(self, text: str) -> Match | None:
        """The most similar original at or above NEAR_DUPLICATE shingle Jaccard similarity."""
        if not self._originals:
            return None
        mine = shingles(text)
        estimates = (self._signatures == signature(mine)[None, :]).mean(axis=1)
        best: Match | None = None
        for n in np.flatnonzero(estimates >= NEAR_DUPLICATE - 0.1):
            similarity = jaccard(mine, self._shingles[n])
            if similarity >= NEAR_DUPLICATE and (best is None or similarity > best.similarity):
                best = Match("copy", self._originals[n], similarity)
        return best
