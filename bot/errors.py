"""Errors raised by the core; the edges (CLI, HTTP, Slack) translate them for people.

    BotError
    ├── CorpusError            an article file or line cannot be read
    ├── StoreError
    │   ├── IndexMissingError  no index has been built yet
    │   ├── IndexMismatchError the index was built with another model or format
    │   └── IndexCorruptError  a version's files are unreadable or disagree with each other
    ├── ModelError             the embedding model cannot be loaded or fails its checksum
    ├── QuestionError          the question is empty, too long or otherwise unusable
    └── IngestError            a source to ingest cannot be fetched or read
        └── LastArticleError   removing the article would leave the corpus empty

Every message says what went wrong and, where there is one, what to do next.
"""

from __future__ import annotations


class BotError(Exception):
    """Base of every error the bot raises on purpose."""


class CorpusError(BotError):
    """An article file (or one line of a .jsonl) is malformed."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class StoreError(BotError):
    """The index on disk cannot be used."""


class IndexMissingError(StoreError):
    """No index has been built in the index folder."""


class IndexMismatchError(StoreError):
    """The index was built with another model or an older format."""


class IndexCorruptError(StoreError):
    """A version's files are missing, unreadable, or disagree with each other or the manifest."""


class ModelError(BotError):
    """The embedding model cannot be loaded."""


class QuestionError(BotError):
    """The question cannot be answered as asked (empty, too long, bad k)."""


class IngestError(BotError):
    """A source to ingest cannot be fetched, decoded or parsed."""


class LastArticleError(IngestError):
    """The change would leave the corpus without any article (an index cannot be empty)."""
