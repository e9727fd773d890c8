"""A fake Slack: a real HTTP server on loopback that records Web API calls and answers like Slack,
plus helpers that sign requests the way Slack does (v0 HMAC-SHA256 of "v0:timestamp:body").

Messages are checked the way Slack checks them (`limits=True`, the default): at most 50 blocks
(100 in a view), 4,000 characters of `text`, 3,000 in a section's or context's text, 2,000 in a
section field or a button's value, 75 in a button's label, 150 in a header, 10 elements in a
context block, 25 in an actions block, unique block ids of at most 255 characters, no empty
text, no unknown block type. A `rich_text` block must hold a non-empty list of rich_text_section,
rich_text_quote, rich_text_list or rich_text_preformatted, each with a non-empty `elements` list
(a list's items are sections); a `text` element needs a non-empty string `text` and styles among
bold, italic, strike and code (the four every version of Slack's reference gives), each a boolean.
Slack documents no character limit for a rich_text block, so the fake holds one to the section
limit, 3,000 characters of text in all: the bot's own budget for a quote, never more than a
section would carry. A message that breaks one is refused (`invalid_blocks` or `msg_too_long`,
HTTP 400 on a response url) and kept in `rejected`."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode

BOT_TOKEN = "xoxb-1111-2222-testtokenvalue"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
APP_TOKEN = "xapp-1-A111-2222-testapptoken"
BOT_USER = "UBOT0001"
TEAM = "T0000001"
GONE = "CGONE001"  # a channel the fake says does not exist
_TRIGGERS = itertools.count(1)


def trigger_id() -> str:
    """A fresh trigger_id, as Slack gives every command and interaction (two clicks, two ids)."""
    return f"{next(_TRIGGERS)}.{int(time.time())}.{TEAM}"


@dataclass
class Call:
    """One request the fake received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)

    @property
    def method(self) -> str:
        return self.path.removeprefix("/api/")


class FakeSlack:
    """`with FakeSlack() as slack:` serves `slack.api_url` (for SLACK_API_URL) and
    `slack.response_url(name)`; `slack.calls` lists what arrived, in order."""

    def __init__(
        self,
        ratelimit_once: set[str] | None = None,
        retry_after: int = 1,
        *,
        limits: bool = True,
        members: dict[str, list[str]] | None = None,
        page_size: int = 2,
    ) -> None:
        """`members`: channel id → its members' user ids, for conversations.members, which
        answers at most `page_size` of them a page (Slack may give fewer than `limit` too)."""
        self.calls: list[Call] = []
        self.members = dict(members or {})
        self.page_size = page_size
        self.rejected: list[tuple[Call, list[str]]] = []
        self.limits = limits
        self.ratelimited: list[Call] = []
        self.ratelimit_once = set(ratelimit_once or ())
        self.retry_after = retry_after
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                kind = self.headers.get("Content-Type", "")
                body = json.loads(raw) if "json" in kind else dict(parse_qsl(raw))
                self.answer(Call(self.path, {k.lower(): v for k, v in self.headers.items()}, body))

            def do_GET(self) -> None:
                # Read methods (conversations.members) come as GET with the arguments in the query.
                path, _, query = self.path.partition("?")
                self.answer(Call(path, {k.lower(): v for k, v in self.headers.items()}, dict(parse_qsl(query))))

            def answer(self, call: Call) -> None:
                status, headers, reply = fake.reply(call)
                data = reply.encode() if isinstance(reply, str) else json.dumps(reply).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.api_url = self.url + "/api/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSlack:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def response_url(self, name: str) -> str:
        return f"{self.url}/response/{name}"

    def reply(self, call: Call) -> tuple[int, dict[str, str], Any]:
        """What Slack would answer; rate-limited methods get one 429 first."""
        json_type = {"Content-Type": "application/json; charset=utf-8"}
        with self.lock:
            if call.method in self.ratelimit_once:
                self.ratelimit_once.discard(call.method)
                self.ratelimited.append(call)
                return 429, {**json_type, "Retry-After": str(self.retry_after)}, {"ok": False, "error": "ratelimited"}
            self.calls.append(call)
        problems = message_problems(call.body) if self.limits else []
        if problems:
            with self.lock:
                self.rejected.append((call, problems))
        if call.path.startswith("/response/"):
            if problems:
                return 400, {"Content-Type": "text/html"}, "invalid_blocks"
            return 200, {"Content-Type": "text/html"}, "ok"
        if call.headers.get("authorization") != f"Bearer {BOT_TOKEN}":
            return 200, json_type, {"ok": False, "error": "invalid_auth"}
        ts = f"{time.time():.6f}"
        replies: dict[str, dict[str, Any]] = {
            "auth.test": {"url": "https://fake.slack.com/", "team": "Fake", "user": "qa-bot", "team_id": TEAM}
            | {"user_id": BOT_USER, "bot_id": "BBOT0001", "is_enterprise_install": False},
            "chat.postMessage": {
                "channel": call.body.get("channel"),
                "ts": ts,
                "message": {"text": call.body.get("text")},
            },
            "chat.postEphemeral": {"message_ts": ts},
            "views.publish": {"view": {"id": "V0001", **(call.body.get("view") or {})}},
        }
        if problems:
            error = "msg_too_long" if all(p.startswith("text") for p in problems) else "invalid_blocks"
            return 200, json_type, {"ok": False, "error": error, "errors": problems}
        if call.body.get("channel") == GONE:
            return 200, json_type, {"ok": False, "error": "channel_not_found"}
        if call.method == "conversations.members":
            return 200, json_type, self.channel_members(call.body)
        if call.method not in replies:
            return 200, json_type, {"ok": False, "error": "unknown_method"}
        return 200, json_type, {"ok": True, **replies[call.method]}

    def channel_members(self, args: dict[str, Any]) -> dict[str, Any]:
        """One page of conversations.members: `cursor` is where the page starts, and the last page
        has an empty `next_cursor`, as Slack's."""
        channel = str(args.get("channel", ""))
        if channel not in self.members:
            return {"ok": False, "error": "channel_not_found"}
        everyone = self.members[channel]
        start = int(args.get("cursor") or 0)
        size = min(int(args.get("limit") or 100), self.page_size)
        end = min(start + size, len(everyone))
        more = str(end) if end < len(everyone) else ""
        return {"ok": True, "members": everyone[start:end], "response_metadata": {"next_cursor": more}}

    def of(self, method: str) -> list[Call]:
        """The recorded calls to one Web API method (or response url path)."""
        with self.lock:
            return [c for c in self.calls if c.method == method or c.path == method]


TEXT_LIMIT = 4000
MAX_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
BLOCK_TYPES = {"section", "context", "actions", "divider", "header", "image", "input", "rich_text", "file", "video"}


def _text_problems(where: str, obj: Any, limit: int, kinds: tuple[str, ...] = ("plain_text", "mrkdwn")) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        return [f"{where}: must be a text object of type {' or '.join(kinds)}"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"{where}.text: must be more than 0 characters"]
    if len(text) > limit:
        return [f"{where}.text: must be less than {limit + 1} characters (has {len(text)})"]
    return []


def _element_problems(where: str, element: Any) -> list[str]:
    if not isinstance(element, dict):
        return [f"{where}: must be an object"]
    problems: list[str] = []
    if element.get("type") == "button":
        problems += _text_problems(f"{where}.text", element.get("text"), 75, ("plain_text",))
        if len(str(element.get("value", ""))) > 2000:
            problems.append(f"{where}.value: must be less than 2001 characters")
        if len(str(element.get("action_id", ""))) > 255:
            problems.append(f"{where}.action_id: must be less than 256 characters")
        if element.get("style") not in (None, "primary", "danger"):
            problems.append(f"{where}.style: must be primary or danger")
    return problems


RICH_TEXT_PARTS = {"rich_text_section", "rich_text_quote", "rich_text_list", "rich_text_preformatted"}
RICH_TEXT_INLINE = {"text", "link", "emoji", "user", "usergroup", "channel", "broadcast", "date", "color", "team"}
RICH_TEXT_STYLES = {"bold", "italic", "strike", "code"}
RICH_TEXT_LIMIT = 3000


def _rich_text_problems(where: str, parts: Any, kinds: set[str], texts: list[str]) -> list[str]:
    """What Slack would refuse in a rich text block's (or part's) `elements`; the text of its text
    elements is added to `texts`, to be counted against the block's limit."""
    if not isinstance(parts, list) or not parts:
        return [f"{where}: must be a non-empty list"]
    problems: list[str] = []
    for n, part in enumerate(parts):
        at = f"{where}[{n}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in kinds:
            problems.append(f"{at}: must be one of {', '.join(sorted(kinds))}")
        elif kind == "rich_text_list":
            problems += _rich_text_problems(f"{at}.elements", part.get("elements"), {"rich_text_section"}, texts)
        elif kind in RICH_TEXT_PARTS:  # a quote may nest sections, as Slack's own composer writes them
            inline = RICH_TEXT_INLINE | ({"rich_text_section"} if kind == "rich_text_quote" else set())
            problems += _rich_text_problems(f"{at}.elements", part.get("elements"), inline, texts)
        elif kind == "text":
            text, style = part.get("text"), part.get("style", {})
            if not isinstance(text, str) or not text:
                problems.append(f"{at}.text: must be more than 0 characters")
            else:
                texts.append(text)
            if not isinstance(style, dict) or not set(style) <= RICH_TEXT_STYLES:
                problems.append(f"{at}.style: must only hold {', '.join(sorted(RICH_TEXT_STYLES))}")
            elif not all(isinstance(value, bool) for value in style.values()):
                problems.append(f"{at}.style: must be booleans")
    return problems


def blocks_problems(blocks: Any, max_blocks: int = MAX_BLOCKS) -> list[str]:
    """What Slack would say is wrong with `blocks` (empty: nothing)."""
    if not isinstance(blocks, list):
        return ["blocks: must be a list"]
    problems: list[str] = []
    if len(blocks) > max_blocks:
        problems.append(f"blocks: must have at most {max_blocks} items (has {len(blocks)})")
    ids: set[str] = set()
    for n, block in enumerate(blocks):
        where = f"blocks[{n}]"
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            problems.append(f"{where}: unknown block type")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if len(str(block_id)) > 255:
                problems.append(f"{where}.block_id: must be less than 256 characters")
            if block_id in ids:
                problems.append(f"{where}.block_id: duplicate block_id {block_id!r}")
            ids.add(str(block_id))
        kind = block["type"]
        if kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"{where}: must have text or fields")
            if "text" in block:
                problems += _text_problems(f"{where}.text", block["text"], 3000)
            for m, item in enumerate(block.get("fields") or []):
                problems += _text_problems(f"{where}.fields[{m}]", item, 2000)
            if len(block.get("fields") or []) > 10:
                problems.append(f"{where}.fields: must have at most 10 items")
        elif kind == "context":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 10:
                problems.append(f"{where}.elements: must have 1 to 10 items (has {len(elements)})")
            for m, item in enumerate(elements):
                if isinstance(item, dict) and item.get("type") == "image":
                    continue
                problems += _text_problems(f"{where}.elements[{m}]", item, 3000)
        elif kind == "actions":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 25:
                problems.append(f"{where}.elements: must have 1 to 25 items (has {len(elements)})")
            for m, item in enumerate(elements):
                problems += _element_problems(f"{where}.elements[{m}]", item)
        elif kind == "header":
            problems += _text_problems(f"{where}.text", block.get("text"), 150, ("plain_text",))
        elif kind == "rich_text":
            texts: list[str] = []
            problems += _rich_text_problems(f"{where}.elements", block.get("elements"), RICH_TEXT_PARTS, texts)
            if sum(map(len, texts)) > RICH_TEXT_LIMIT:
                problems.append(f"{where}: must hold at most {RICH_TEXT_LIMIT} characters of text")
    return problems


def message_problems(body: dict[str, Any]) -> list[str]:
    """What Slack would refuse in a message (or view) sent to the Web API or a response url."""
    problems: list[str] = []
    text = body.get("text")
    if isinstance(text, str) and len(text) > TEXT_LIMIT:
        problems.append(f"text: must be less than {TEXT_LIMIT + 1} characters (has {len(text)})")
    blocks = body.get("blocks")
    if isinstance(blocks, str):  # form-encoded calls carry blocks as JSON
        try:
            blocks = json.loads(blocks)
        except json.JSONDecodeError:
            return [*problems, "blocks: invalid JSON"]
    if blocks is not None:
        problems += blocks_problems(blocks)
    view = body.get("view")
    if isinstance(view, dict):
        problems += blocks_problems(view.get("blocks"), MAX_VIEW_BLOCKS)
    return problems


def sign(body: str, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request signature headers for `body`."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def event_body(event: dict[str, Any], event_id: str) -> str:
    """An Events API `event_callback` envelope as JSON."""
    return json.dumps(
        {
            "token": "legacy",
            "team_id": TEAM,
            "api_app_id": "A0000001",
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
        }
    )


def mention(text: str, ts: str, channel: str = "C0000001", user: str = "UASKER01", **extra: Any) -> dict[str, Any]:
    return {"type": "app_mention", "user": user, "text": f"<@{BOT_USER}> {text}", "ts": ts, "channel": channel} | extra


def command_body(text: str, response_url: str, user: str = "UASKER01", channel: str = "C0000001") -> str:
    """A slash command POST body (form-encoded, as Slack sends it)."""
    return urlencode(
        {
            "token": "legacy",
            "team_id": TEAM,
            "channel_id": channel,
            "user_id": user,
            "command": "/ask",
            "text": text,
            "response_url": response_url,
            "trigger_id": trigger_id(),
            "api_app_id": "A0000001",
        }
    )


def action_body(action_id: str, value: str, response_url: str, user: str = "UASKER01") -> str:
    """A block_actions interaction POST body (form-encoded `payload=` JSON)."""
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": user, "team_id": TEAM},
        "api_app_id": "A0000001",
        "container": {"type": "message", "message_ts": "1.1", "channel_id": "C0000001", "is_ephemeral": False},
        "channel": {"id": "C0000001"},
        "response_url": response_url,
        "trigger_id": trigger_id(),
        "actions": [{"type": "button", "action_id": action_id, "block_id": "feedback", "value": value}],
    }
    return urlencode({"payload": json.dumps(payload)})


def quote_elements(blocks: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The text elements of each quoted passage (the `quote-N` rich text blocks), in order."""
    return [
        [element for part in block["elements"] for element in part["elements"]]
        for block in blocks
        if block["type"] == "rich_text" and str(block.get("block_id", "")).startswith("quote-")
    ]


def quote_texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Each quoted passage as a reader sees it: its text elements' text joined."""
    return ["".join(element["text"] for element in elements) for elements in quote_elements(blocks)]
