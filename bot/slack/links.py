"""Links added from Slack: "Add the link to the articles" on a message, or `/ask add URL`.

Only editors may add: the people in BOT_SLACK_EDITORS, and the members of BOT_SLACK_EDITORS_CHANNEL
(read with conversations.members at each request, so leaving the channel takes the right away at
once). Anyone else gets a private refusal that says who may.

The work is `Service.add`, the very function behind `POST /articles`: the same writer rule (a
server without BOT_API_KEY does not change articles, and says so), the same fetch limits and the
same duplicate checks. The listener acks at once; the editor sees "Adding …" privately, then the
outcome: an added (or updated, or linked) article in the message's thread for everyone, with its
title, its date and "searchable now"; a duplicate or a page that cannot be added privately, with
the reason.

`/ask` reads "add" followed by one link, and nothing else, as a request to add it: no question
looks like that. "add" with a link and other words gets the usage, and every other text is a
question as before.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import BotError, QuestionError
from bot.service import Change, Service
from bot.settings import SLACK_USER_ID
from bot.slack.blocks import TITLE_LIMIT, escape, safe_url, unescape, word_prefix

log = logging.getLogger("bot.slack")

ADD_SHORTCUT = "add_link"  # the shortcut's callback_id in manifest.yaml
MAX_LINKS = 5  # links of one message added; each is a fetch and an index update
MEMBER_PAGE = 1000  # conversations.members' largest page
MAX_MEMBER_PAGES = 200
ADD_USAGE = "To add a page to the articles: `/ask add https://…` (one link, nothing else)."
OFF = (
    "Adding links from Slack is off: the bot's admin can name editors with BOT_SLACK_EDITORS "
    "(user ids) or BOT_SLACK_EDITORS_CHANNEL (a channel whose members may add)."
)
NO_LINK = "There is no http(s) link in this message to add."

# A link as Slack writes it in a message's text (`<url>` or `<url|label>`), or a bare one.
_MARKED = re.compile(r"<([^<>|\s]+)(?:\|[^<>]*)?>")
_BARE = re.compile(r"https?://[^\s<>|]+", re.IGNORECASE)
_ADD = re.compile(r"add\s+(.+)", re.IGNORECASE | re.DOTALL)
_ONE_TOKEN = re.compile(r"<[^<>]+>|\S+")


def links_in(text: str) -> list[str]:
    """The distinct http(s) links of a Slack message's text, in order (Slack's `&amp;` undone)."""
    found: list[str] = []
    for target in _MARKED.findall(text):
        if re.match(r"https?://", target, re.IGNORECASE):
            found.append(unescape(target))
    for bare in _BARE.findall(_MARKED.sub(" ", text)):
        found.append(unescape(bare).rstrip(".,;:!?)]}'\""))
    return list(dict.fromkeys(found))


def add_request(text: str) -> str | None:
    """The link of `/ask add URL`, or None when the text is a question; QuestionError (with the
    usage) for "add" followed by a link and more, or by a link that is not http(s)."""
    match = _ADD.fullmatch(text.strip())
    if match is None:
        return None
    rest = match.group(1).strip()
    links = links_in(rest)
    one_token = _ONE_TOKEN.fullmatch(rest) is not None
    if not links:
        if one_token and ("://" in rest or rest.startswith("<")):
            raise QuestionError(f"Only http(s) links can be added. {ADD_USAGE}")
        return None  # "add up the pledges?" stays a question
    if len(links) > 1 or not one_token:
        raise QuestionError(ADD_USAGE)
    return links[0]


class Editors:
    """Who may add links: named users, and the members of one channel (asked of Slack)."""

    def __init__(self, client: WebClient, users: frozenset[str], channel: str | None) -> None:
        self.client = client
        self.users = users
        self.channel = channel

    def refusal(self, user: str) -> str | None:
        """None when `user` may add links, else what to tell them."""
        if user in self.users:
            return None
        if self.channel is None:
            return OFF if not self.users else "Only the bot's editors can add links to the articles: ask one of them."
        try:
            if user in self._members(self.channel):
                return None
            problem = ""
        except SlackApiError as exc:
            error = exc.response.get("error", exc.response.status_code)
            log.warning("Slack conversations.members failed for %s: %s", self.channel, error)
            problem = f" (I could not read that channel's members: `{error}`; the bot must be in it.)"
        except OSError as exc:
            log.warning("Slack conversations.members failed for %s: %s", self.channel, exc)
            problem = " (I could not reach Slack to read that channel's members.)"
        return f"Only the bot's editors can add links to the articles: the members of <#{self.channel}>.{problem}"

    def _members(self, channel: str) -> Iterator[str]:
        cursor = None
        for _ in range(MAX_MEMBER_PAGES):
            page = self.client.conversations_members(channel=channel, cursor=cursor, limit=MEMBER_PAGE)
            yield from page.get("members") or []
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return


def _day(date: str | None) -> str:
    return date[:10] if date else "no date"


def _title(change: Change) -> str:
    title = escape(word_prefix(change.title, TITLE_LIMIT))
    url = safe_url(change.url)
    return f"*<{url}|{title}>*" if url else f"*{title}*"


def added_text(change: Change, user: str) -> str | None:
    """The thread's message for an article that is in now, or None for a duplicate."""
    what = f"{_title(change)} ({_day(change.date)})"
    who = f"<@{user}>" if SLACK_USER_ID.fullmatch(user) else "An editor"
    if change.status == "added":
        return f"{who} added {what} to the articles: searchable now."
    if change.status == "updated":
        return f"{who} updated {what} in the articles: its new text is searchable now."
    if change.status == "linked":
        return (
            f"{who} added {what}: a near-copy of an article already in, so answers quote that one and cite "
            "this as also reported by: searchable now."
        )
    return None


def duplicate_text(change: Change) -> str:
    return f"Already in the articles, and searchable: {_title(change)} ({_day(change.date)})."


def not_added_text(url: str, error: Exception) -> str:
    """Why a link was not added, in one line: the core's reason, without the URL it starts with."""
    reason = str(getattr(error, "reason", None) or error).removeprefix(f"{url}: ")
    return f"Not added: {escape(url)}: {escape(reason)}"


Post = Callable[..., None]


class LinkAdder:
    """The two ways to add a link, over `Service.add`; `post(method, **params)` is the bot's Web API
    call and `respond(respond, **message)` its response_url post, both of which log failures."""

    def __init__(self, service: Service, editors: Editors, post: Post, respond: Callable[..., None]) -> None:
        self.service = service
        self.editors = editors
        self.post = post
        self.respond = respond

    def refusal(self, user: str) -> str | None:
        """Who may not add, or where nothing is added: the editor check, then the writer rule."""
        refusal = self.editors.refusal(user)
        if refusal is not None:
            return refusal
        try:
            self.service.check_writer()
        except BotError as exc:
            return f"I can't add links here: {exc}"
        return None

    def _add(self, url: str) -> Change | Exception:
        try:
            return self.service.add({"url": url}, url)
        except BotError as exc:
            return exc
        except Exception as exc:  # the editor is waiting for an answer: say so, and keep the trace
            log.exception("adding %s failed", url)
            return RuntimeError(f"an unexpected error ({type(exc).__name__}); it is in the server's log")

    def on_shortcut(self, ack: Any, shortcut: dict[str, Any]) -> None:
        """ "Add the link to the articles" on a message: each of its links added, answered in its thread."""
        ack()
        message = shortcut.get("message") or {}
        channel = str((shortcut.get("channel") or {}).get("id", ""))
        user = str((shortcut.get("user") or {}).get("id", ""))
        thread = message.get("thread_ts") or message.get("ts") or shortcut.get("message_ts")

        def private(text: str) -> None:
            self.post("chat.postEphemeral", channel=channel, user=user, thread_ts=thread, text=text)

        refusal = self.refusal(user)
        if refusal is not None:
            private(refusal)
            return
        links = links_in(str(message.get("text", "")))
        if not links:
            private(NO_LINK)
            return
        more = f" (the first {MAX_LINKS} of its {len(links)} links)" if len(links) > MAX_LINKS else ""
        shown = ", ".join(escape(link) for link in links[:MAX_LINKS])
        private(f"Adding {shown}{more}: fetching and indexing; the outcome comes here in the thread.")
        for url in links[:MAX_LINKS]:
            done = self._add(url)
            if isinstance(done, Exception):
                private(not_added_text(url, done))
                continue
            text = added_text(done, user)
            if text is None:
                private(duplicate_text(done))
                continue
            self.post(
                "chat.postMessage", channel=channel, thread_ts=thread, text=text, unfurl_links=False, unfurl_media=False
            )

    def on_command(self, command: dict[str, Any], respond: Any, url: str, *, ephemeral: bool) -> None:
        """`/ask add URL` (already acked): the outcome through the command's response_url."""
        user = str(command.get("user_id", ""))
        refusal = self.refusal(user)
        if refusal is not None:
            self.respond(respond, text=refusal, response_type="ephemeral")
            return
        self.respond(respond, text=f"Adding {escape(url)}: fetching and indexing…", response_type="ephemeral")
        done = self._add(url)
        if isinstance(done, Exception):
            self.respond(respond, text=not_added_text(url, done), response_type="ephemeral")
            return
        text = added_text(done, user)
        if text is None:
            self.respond(respond, text=duplicate_text(done), response_type="ephemeral")
            return
        self.respond(respond, text=text, response_type="ephemeral" if ephemeral else "in_channel")
