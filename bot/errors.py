"""Errors raised by the core; the edges (CLI, HTTP, Slack) translate them for people.

    BotError
    ├── CorpusError            an article file or line cannot be read
    ├── StoreError
    │   ├── IndexMissingError  no index has been built yet
    │   ├── IndexMismatchError the index was built with another model or format
    │   └── IndexCorruptError  a version's files are unreadable or disagree with each other
    ├── ModelError             the embedding model cannot be loaded or fails its checksum
    ├── QuestionError          the question is empty, too long or otherwise unusable
    ├── IngestError            a source to ingest cannot be fetched or read
    │   ├── FetchStatusError   the server answered an error status (with its Retry-After)
    │   └── ReadOnlyCorpusError the corpus cannot be written (e.g. BOT_CORPUS_DIR is a .jsonl file)
    ├── NotFoundError          no article (or other thing) with the id asked for
    ├── ConflictError          the change would break an invariant (e.g. leave the corpus empty)
    ├── NotWriterError         this server does not change articles (it is not the index's writer)
    └── UnavailableError       the model or the index is not loaded (yet); worth retrying

Each edge turns a type into its answer in one place: `bot/http/errors.py` (a status per type),
`bot/slack/app.py` (REPLIES, a reply per type), `bot/cli.py` (`error: <message>`, exit 1).

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


class FetchStatusError(IngestError):
    """The server answered an HTTP error status: `status`, and `retry_after` (seconds) when it said."""

    def __init__(self, message: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class NotFoundError(BotError):
    """No article (or other resource) with the id asked for."""


class ReadOnlyCorpusError(IngestError):
    """The corpus cannot take changes (a .jsonl file, or a folder that is not writable)."""


class ConflictError(BotError):
    """The change would break an invariant of the corpus (e.g. removing its last article)."""


class NotWriterError(BotError):
    """This server does not change articles: it is not the single writer of its index folder."""


class UnavailableError(BotError):
    """The model or the index is not loaded (yet); the same request may succeed later."""
