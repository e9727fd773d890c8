"""Log records that cannot leak a secret or forge a line, whichever library wrote them.

`SafeRecords` sits on the root handler(s) (see `bot.http_ops.configure_logging`), so it sees every
logger's records: the bot's, uvicorn's, and those slack_bolt and slack_sdk write under their own
names (bolt logs a request's whole body when its signature fails). It

- blanks Slack tokens (xoxb-, xoxp-, xapp-, ...), the secrets the process registered with
  `add_secret` (bot token, signing secret, app token), `token=` and `"token": ...` fields (Slack's
  legacy verification token), `response_url`s and hooks.slack.com URLs (each is a credential to
  post into a conversation), `Bearer` credentials and passwords inside URLs;
- escapes line breaks and other control characters, so text from a request (an unsigned body
  with a newline, say) cannot start a line of its own that looks like the server's.

Tracebacks (exc_info) are formatted by the handler's formatter, after this filter, and keep
their lines.
"""

from __future__ import annotations

import logging
import re
import threading

_PATTERNS = [
    # Slack tokens: bot (xoxb-), user (xoxp-), app-level (xapp-), and the other xox? kinds.
    (re.compile(r"\b(?:xox[a-z]|xapp)-[A-Za-z0-9-]+"), "(redacted token)"),
    (re.compile(r"(?i)\b(token|response_url)(=|%3D)[^&\s'\"]*"), r"\1\2(redacted)"),
    (re.compile(r"""(?i)(["'](?:token|response_url)["']\s*:\s*)(["'])(?:\\.|(?!\2).)*\2"""), r"\1\2(redacted)\2"),
    (re.compile(r"(?i)https?(?::|%3A)(?:/|%2F){2}hooks\.slack\.com[^\s'\"&]*"), "(redacted url)"),
    (re.compile(r"(?i)\b(bearer\s+)(?!\(redacted)[^\s'\",}]+"), r"\1(redacted)"),
    # Credentials inside a URL (http://user:password@host/), e.g. in a fetch error.
    (re.compile(r"(?i)\b(https?://)[^/@\s:]+:[^/@\s]+@"), r"\1(redacted)@"),
]
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]")


def clean(message: str, secrets: frozenset[str] = frozenset()) -> str:
    """`message` with secrets blanked and control characters escaped (one line, nothing to hide)."""
    for secret in secrets:
        message = message.replace(secret, "(redacted)")
    for pattern, replacement in _PATTERNS:
        message = pattern.sub(replacement, message)
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), message)


class SafeRecords(logging.Filter):
    """Rewrite each record's message with `clean` (a filter on a handler sees every logger's records)."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def add_secret(self, *secrets: str | None) -> None:
        with self._lock:
            self._secrets = self._secrets | {s for s in secrets if s and len(s) >= 8}

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: show both, safely
            message = f"{record.msg!r} % {record.args!r}"
        safe = clean(message, self._secrets)
        if safe != message or record.args:
            record.msg, record.args = safe, None
        return True


# One for the process: the Slack app registers its secrets here, configure_logging installs it.
safe_records = SafeRecords()
