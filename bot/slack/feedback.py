"""What the Slack app remembers, in one SQLite file under the data folder.

- `answers`: every answer shown in Slack (question and quotes), so a 👍/👎 or "Share in channel"
  click, which carries only the answer's id, finds what was shown, even after a restart.
- `votes`: one row per (answer, user), the latest vote wins: question, quotes shown, user, vote, time.
- `deliveries`: keys of Slack events already taken (event ids, channel+ts of messages), so a
  retried or doubly delivered event is answered once, also across processes sharing the file.

Each call opens and closes its own connection: SQLite serialises writers, nothing lingers.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.errors import BotError
from bot.records import Answer

# Slack retries an unacknowledged event three times within about five minutes; an hour is ample.
DELIVERY_TTL_SECONDS = 3600.0
VOTES = ("up", "down")

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id TEXT PRIMARY KEY, question TEXT NOT NULL, answer TEXT NOT NULL,
    surface TEXT NOT NULL, channel TEXT, user TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS votes (
    answer_id TEXT NOT NULL, user TEXT NOT NULL, vote TEXT NOT NULL,
    question TEXT NOT NULL, quotes TEXT NOT NULL, time REAL NOT NULL,
    PRIMARY KEY (answer_id, user));
CREATE TABLE IF NOT EXISTS deliveries (key TEXT PRIMARY KEY, seen REAL NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Vote:
    """One stored vote: what was asked, what was shown, who voted how, when (Unix time)."""

    answer_id: str
    user: str
    vote: str
    question: str
    quotes: list[dict[str, object]]
    time: float


class FeedbackStore:
    """Answers shown, votes on them and Slack deliveries seen, in `path` (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._db() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise BotError(
                f"Cannot keep Slack data in {self.path}: {exc}. Set BOT_DATA_DIR to a writable folder."
            ) from None

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=10)) as db, db:
            yield db

    def record_answer(self, answer: Answer, surface: str, channel: str | None, user: str | None) -> str:
        """Store an answer about to be shown; returns the id its buttons carry."""
        answer_id = uuid.uuid4().hex
        with self._db() as db:
            db.execute(
                "INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)",
                (answer_id, answer.question, answer.model_dump_json(), surface, channel, user, time.time()),
            )
        return answer_id

    def answer(self, answer_id: str) -> Answer | None:
        """The answer stored under `answer_id`, or None for an unknown id."""
        with self._db() as db:
            row = db.execute("SELECT answer FROM answers WHERE id = ?", (answer_id,)).fetchone()
        return Answer.model_validate_json(row[0]) if row else None

    def record_vote(self, answer_id: str, user: str, vote: str) -> bool:
        """Store `user`'s vote on an answer; True when it is new or changed (False: a repeat click).

        Raises KeyError for an unknown answer id and ValueError for a vote other than up/down.
        """
        if vote not in VOTES:
            raise ValueError(f"vote must be one of {VOTES}, got {vote!r}")
        shown = self.answer(answer_id)
        if shown is None:
            raise KeyError(answer_id)
        quotes = json.dumps([q.model_dump() for q in shown.quotes], ensure_ascii=False)
        with self._db() as db:
            # Read and write in one write transaction: two clicks at once would otherwise both
            # read "no vote yet" and both count as new in the metrics.
            db.execute("BEGIN IMMEDIATE")
            before = db.execute("SELECT vote FROM votes WHERE answer_id = ? AND user = ?", (answer_id, user)).fetchone()
            if before is not None and before[0] == vote:
                return False
            db.execute(
                "INSERT OR REPLACE INTO votes VALUES (?, ?, ?, ?, ?, ?)",
                (answer_id, user, vote, shown.question, quotes, time.time()),
            )
        return True

    def votes(self) -> list[Vote]:
        """Every stored vote, oldest first."""
        with self._db() as db:
            rows = db.execute("SELECT * FROM votes ORDER BY time").fetchall()
        return [Vote(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

    def recent_questions(self, user: str, limit: int = 3) -> list[str]:
        """`user`'s latest distinct questions that were answered, newest first (only their own:
        a question asked in a private channel or a DM is nobody else's business)."""
        with self._db() as db:
            rows = db.execute(
                "SELECT question, MAX(created) AS last FROM answers WHERE user = ? "
                "AND json_extract(answer, '$.answered') GROUP BY question ORDER BY last DESC LIMIT ?",
                (user, limit),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def claim(self, *keys: str) -> bool:
        """Mark delivery keys as taken; True only if none of them was taken before (atomically)."""
        now = time.time()
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM deliveries WHERE seen < ?", (now - DELIVERY_TTL_SECONDS,))
            taken = any(
                db.execute("SELECT 1 FROM deliveries WHERE key = ?", (key,)).fetchone() is not None for key in keys
            )
            db.executemany("INSERT OR IGNORE INTO deliveries VALUES (?, ?)", [(key, now) for key in keys])
        return not taken
