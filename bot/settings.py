"""Typed settings from the environment (prefix BOT_, Slack's own names) and `.env`.

Only the edges (CLI, HTTP, Slack) read settings; the core takes plain arguments.
"""

from __future__ import annotations

import json
import re
import time
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.answer.asking import MAX_QUESTION_CHARS, THRESHOLD
from bot.answer.reading import DEFAULT_READER
from bot.errors import BotError
from bot.feeds.subscriptions import EVERY, FIRST_POLL, MAX_EVERY, MIN_EVERY, FeedStore, checked_feed_url, parse_every
from bot.indexing.dense import APPROXIMATE_ABOVE
from bot.indexing.milvus_store import MilvusTarget
from bot.indexing.stores import FaissStore, MilvusStore, Store
from bot.models.files import DEFAULT_MODEL
from bot.models.runtimes import DEFAULT_RUNTIME, Runtime

# Chosen by `make bench` (README, Benchmarks): on two cores one OpenVINO worker answered 32 clients
# at 231 questions/s, two workers at 164/s (each batches half the questions, and the two compete
# for the cores), with twice the memory.
DEFAULT_WORKERS = 1
# Slack's ids: people are U… (W… on Enterprise Grid), channels C… (private ones made before 2021: G…).
SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
SLACK_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOT_", env_file=".env", extra="ignore")

    corpus_dir: Path = Field(Path("corpus"), description="Folder (or .jsonl file) of articles.")
    index_dir: Path = Field(Path("index"), description="Where index versions are written and read.")
    data_dir: Path = Field(Path("data"), description="Runtime data: Slack feedback, ingest state.")
    model: str = Field(DEFAULT_MODEL, description="sentence-transformers model id or folder.")
    encoder: Runtime = Field(
        DEFAULT_RUNTIME, description="Runtime of the question encoder: openvino, onnx (both exported once) or torch."
    )
    reader: Literal["on", "off"] = Field(
        DEFAULT_READER, description="Rescore candidate sentences with the reader (a cross-encoder trained here)."
    )
    workers: int = Field(DEFAULT_WORKERS, ge=1, le=64, description="Server processes on the one port (`bot serve`).")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_key: SecretStr | None = Field(None, description="When set, /ask needs 'Authorization: Bearer <key>'.")
    rate_limit: str | None = Field(None, description="Per-client limit on /ask and /articles, e.g. '60/minute'.")
    forwarded_allow_ips: str | None = Field(
        None,
        description="Reverse proxies (comma-separated addresses, or '*') whose X-Forwarded-For names the client; "
        "unset: none, the connecting address is the client.",
    )
    max_question_chars: int = Field(MAX_QUESTION_CHARS, ge=1)
    threshold: float = Field(THRESHOLD, ge=0, le=1, description="Confidence below which the bot declines.")
    approximate_above: int = Field(APPROXIMATE_ABOVE, ge=0, description="Passages above which FAISS uses IVF.")
    search_backend: Literal["faiss", "milvus"] = Field("faiss", description="Where passages are searched.")
    milvus_uri: str = Field(
        "index/milvus.db", description="A Milvus server (http://host:19530) or a Milvus Lite .db file."
    )
    milvus_token: SecretStr | None = Field(None, description="Milvus credentials: 'user:password' or an API key.")
    milvus_db: str = Field("", description="Milvus database (empty: the server's default).")
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="The least severe log lines written: DEBUG, INFO, WARNING, ERROR or CRITICAL."
    )
    allow_private_urls: bool = False
    feeds: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Feeds to subscribe to: URLs, comma- or space-separated, or a JSON list."
    )
    feed_every: float = Field(
        EVERY, ge=MIN_EVERY, le=MAX_EVERY, description="How often a feed is polled by default: 30s, 15m, 2h, 1d."
    )
    feed_first_poll: int = Field(FIRST_POLL, ge=0, description="Newest entries taken from a feed's first poll.")
    poll_feeds: bool = Field(False, description="`bot serve` polls the feeds (one server per index folder does).")
    slack_bot_token: SecretStr | None = Field(None, validation_alias=AliasChoices("SLACK_BOT_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(None, validation_alias=AliasChoices("SLACK_SIGNING_SECRET"))
    slack_app_token: SecretStr | None = Field(None, validation_alias=AliasChoices("SLACK_APP_TOKEN"))
    slack_api_url: str | None = Field(None, validation_alias=AliasChoices("SLACK_API_URL"))
    slack_ephemeral: bool = True
    slack_editors: Annotated[frozenset[str], NoDecode] = Field(
        frozenset(), description="Slack user ids (U…) who may add links from Slack; comma- or space-separated."
    )
    slack_editors_channel: str | None = Field(
        None, description="A Slack channel id (C…) whose members may add links from Slack."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("slack_editors", mode="before")
    @classmethod
    def _user_ids(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        ids = [part for part in re.split(r"[\s,]+", value) if part]
        wrong = [part for part in ids if not SLACK_USER_ID.fullmatch(part)]
        if wrong:
            raise ValueError(
                f"{wrong[0]!r} is not a Slack user id: use ids such as U012AB3CD (a profile's ⋮ → Copy member ID)"
            )
        return frozenset(ids)

    @field_validator("slack_editors_channel", mode="before")
    @classmethod
    def _channel_id(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip() or None
        if isinstance(value, str) and not SLACK_CHANNEL_ID.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a Slack channel id: use the id such as C012AB3CD "
                "(at the bottom of the channel's details), not its name"
            )
        return value

    @field_validator("feeds", mode="before")
    @classmethod
    def _feed_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)  # invalid JSON: a ValueError, reported as the setting's
            return [part for part in text.replace(",", " ").split() if part]
        return value

    @field_validator("feeds")
    @classmethod
    def _feed_urls(cls, value: list[str]) -> list[str]:
        try:
            return [checked_feed_url(url) for url in value]
        except BotError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("feed_every", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_every(value)
            except BotError as exc:
                raise ValueError(str(exc)) from None
        return value


def feed_store(settings: Settings) -> FeedStore:
    """The data folder's feed subscriptions, with those of BOT_FEEDS made current."""
    store = FeedStore(settings.data_dir)
    store.sync(settings.feeds, settings.feed_every, time.time())
    return store


def store_of(settings: Settings, index_dir: Path | None = None) -> Store:
    """Where the index is kept (FAISS files, or Milvus), with its lock and embedding cache in
    `index_dir` (default BOT_INDEX_DIR)."""
    folder = Path(index_dir or settings.index_dir)
    if settings.search_backend != "milvus":
        return FaissStore(folder, settings.approximate_above)
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
    return MilvusStore(MilvusTarget(settings.milvus_uri, token, settings.milvus_db), folder)


@cache
def get_settings() -> Settings:
    """The process's settings, read once (tests clear the cache)."""
    return Settings()
