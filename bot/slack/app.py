"""The Slack app: thin slack-bolt listeners over the same answering core as `/ask`.

- `@bot question` in a channel → the answer in that message's thread (follow-ups too);
- a direct message → the answer in the DM (in its thread when the question was in one);
- "Ask the articles" on any message (a message shortcut) → the quotes that bear best on what the
  message claims, in its thread, only to the one who asked (BOT_SLACK_EPHEMERAL) with "Share";
- a question is asked on the day of its message (`asked_on`, the day in UTC; a `/ask` command's is
  today), so that "this week" reads against it and articles dated near that day rank higher;
- `/ask question` → acknowledged at once, answered through the command's `response_url`,
  only to the asker (BOT_SLACK_EPHEMERAL, default) with a "Share in channel" button;
- "Add the link to the articles" on a message, or `/ask add URL` → the page added by an editor,
  through `POST /articles`'s own path (bot/slack/links.py);
- 👍 / 👎 under every answer → stored in SQLite (bot/slack/feedback.py), counted in /metrics;
- the App Home tab → how to ask, examples, how many articles and how fresh.

Over HTTP (`bot/slack/adapter/http.py`, mounted by `bot/http/slack.py` on `POST /slack/events` when
SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are set) or Socket Mode (`bot/slack/adapter/socket_mode.py`,
`bot slack`, SLACK_APP_TOKEN). The bolt app is the synchronous one: a request is dispatched in a
worker thread and acked at once; answers are computed in bolt's listener threads, never on the
event loop.

Slack re-sends an event it thinks was not acknowledged (X-Slack-Retry-Num) and may deliver one
message both as `app_mention` and as `message`: a middleware claims the event id and the
message's channel+ts in SQLite first, so each question is answered once. A command or an
interaction is claimed by a hash of its content: one captured and sent again while its signature
holds (five minutes) is acked and dropped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import Counter
from slack_bolt import App, BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from bot.answer.asking import Ask, validate_question
from bot.answer.claims import NO_TEXT
from bot.answer.conversation import Turn
from bot.errors import BotError, QuestionError
from bot.observability import safe_records
from bot.records import Answer
from bot.service import Service
from bot.slack.blocks import (
    MAX_BLOCKS,
    SHARE,
    VOTE_DOWN,
    VOTE_UP,
    answer_blocks,
    clean_question,
    escape,
    example_questions,
    fallback_text,
    home_view,
    notice_blocks,
)
from bot.slack.feedback import FeedbackStore
from bot.slack.links import ADD_SHORTCUT, Editors, LinkAdder, add_request

log = logging.getLogger("bot.slack")

QUOTES = 3
HOME_NEWEST = 5  # articles the Home tab lists, newest first: enough to tell how fresh the index is
COMMAND = "/ask"  # as in manifest.yaml
MESSAGE_SHORTCUT = "ask_about_message"  # the shortcut's callback_id in manifest.yaml
EXAMPLE = f"{COMMAND} Who will chair Stargate?"
GONE = "I no longer have that answer; ask again."
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
# Requests answered however often they come: Slack's checks that the app is there.
UNCLAIMED = {"url_verification", "ssl_check"}


# On the one logger that bolt, the Web API client and the Socket Mode client are all given (bolt
# copies its filters to the loggers it makes); configure_logging puts it on the root handler too.
log.addFilter(safe_records)


# What the asker reads when there is no answer, by error type (most specific first).
REPLIES: list[tuple[type[BotError], str]] = [
    (QuestionError, "{error}"),
    (BotError, "I can't answer right now: {error}"),
]


def reply_for(error: BotError) -> str:
    """The one line Slack shows for `error`."""
    return next(text for kind, text in REPLIES if isinstance(error, kind)).format(error=error)


def api_base(url: str | None) -> str:
    """The Web API base url WebClient wants (with the trailing slash), SLACK_API_URL or Slack's."""
    return (url.rstrip("/") + "/") if url else WebClient.BASE_URL


class SlackBot:
    """The bolt app with its listeners, its SQLite memory and its metrics."""

    def __init__(self, service: Service, *, token: str, signing_secret: str | None) -> None:
        self.service = service
        self.settings = service.settings
        self.store = FeedbackStore(self.settings.data_dir / "slack.sqlite3")
        safe_records.add_secret(token, signing_secret)
        # Retry 429 `ratelimited` after its Retry-After, and dropped connections; other errors surface.
        self.client = WebClient(
            token=token,
            base_url=api_base(self.settings.slack_api_url),
            logger=log,
            retry_handlers=[ConnectionErrorRetryHandler(), RateLimitErrorRetryHandler(max_retry_count=2)],
        )
        self.app = App(
            client=self.client,
            signing_secret=signing_secret,
            request_verification_enabled=signing_secret is not None,
            token_verification_enabled=False,  # auth.test on the first event, not at start-up
            logger=log,
        )
        self.deliveries = Counter(
            "bot_slack_deliveries_total",
            "Slack events received, by type and whether they were answered or skipped as duplicates.",
            ["event", "outcome"],
            registry=service.metrics.registry,
        )
        editors = Editors(self.client, self.settings.slack_editors, self.settings.slack_editors_channel)
        self.links = LinkAdder(service, editors, self._call, self._respond)
        self._register()

    # -- the answering core, shared by every listener ------------------------------------

    def ask(self, question: str, asked_on: dt.date, history: Sequence[Turn] = ()) -> Answer:
        """Answer with the served index, after the thread's earlier questions (`history`, oldest
        first), as asked on the day `asked_on`; UnavailableError while the model or index is not loaded."""
        return self.service.answer(Ask(question, QUOTES, asked_on=asked_on), history, surface="slack")

    def home(self, user: str) -> dict[str, Any]:
        """The Home tab view of `user` for the current index."""
        index = self.service.current()
        editor = self.links.refusal(user) is None  # an editor on the server that adds
        if index is None:
            return home_view(articles=None, passages=None, built_at=None, newest=[], examples=[], editor=editor)
        newest = [index.articles[n] for n in index.newest(HOME_NEWEST)]
        titles = [a.title for a in newest if a.date] or [a.title for a in index.articles]
        examples = example_questions(self.store.recent_questions(user), titles)
        return home_view(
            articles=len(index.articles),
            passages=len(index),
            built_at=str(index.manifest.get("built_at", "")) or None,
            newest=newest,
            examples=examples,
            editor=editor,
        )

    # -- listeners ---------------------------------------------------------------------------

    def _register(self) -> None:
        app = self.app
        app.middleware(self._once)
        app.event("app_mention")(self._on_mention)
        app.event("message")(self._on_message)
        app.event("app_home_opened")(self._on_home)
        app.command(COMMAND)(self._on_command)
        app.shortcut(MESSAGE_SHORTCUT)(self._on_message_shortcut)
        app.shortcut(ADD_SHORTCUT)(self.links.on_shortcut)
        app.action(VOTE_UP)(self._on_vote)
        app.action(VOTE_DOWN)(self._on_vote)
        app.action(SHARE)(self._on_share)

    def _once(self, body: dict[str, Any], next: Callable[[], BoltResponse]) -> BoltResponse | None:
        """Let each event, command and interaction through once: retries, mention+message twins
        and replays are acked and dropped."""
        if body.get("type") == "event_callback":
            event = body.get("event") or {}
            kind = str(event.get("type"))
            keys = [f"event:{body['event_id']}"] if body.get("event_id") else []
            if _answerable(event):
                keys.append(f"message:{event.get('channel')}:{event.get('ts')}")
        elif body.get("type") in UNCLAIMED:
            return next()
        else:
            # A command or an interaction carries no id of its own, and a signed request can be
            # sent again for the five minutes its signature holds: each request is claimed by
            # its content (Slack's own carry a fresh trigger_id, so two clicks are two requests).
            kind = str(body.get("command") or body.get("type"))
            digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
            keys = [f"request:{digest}"]
        if keys and not self.store.claim(*keys):
            self.deliveries.labels(kind, "duplicate").inc()
            log.info("skipped a duplicate delivery of %s", keys[0])
            return BoltResponse(status=200, body="")
        self.deliveries.labels(kind, "taken").inc()
        return next()

    def _on_mention(self, event: dict[str, Any], context: dict[str, Any]) -> None:
        if not _answerable(event):
            return
        channel = str(event["channel"])
        direct = channel.startswith("D")
        thread = event.get("thread_ts") or (None if direct else event["ts"])
        self._reply(event, thread, context.get("bot_user_id"), "mention" if not direct else "dm")

    def _on_message(self, event: dict[str, Any], context: dict[str, Any]) -> None:
        if not _answerable(event):
            return
        self._reply(event, event.get("thread_ts"), context.get("bot_user_id"), "dm")

    def _reply(self, event: dict[str, Any], thread: str | None, bot_user: str | None, surface: str) -> None:
        channel, user = str(event["channel"]), str(event.get("user", ""))
        question = clean_question(str(event.get("text", "")), bot_user)
        # A question in a thread follows the thread's earlier questions (from the bot's own store).
        history = self.store.thread_turns(channel, thread) if thread else []
        try:
            result = self.ask(question, asked_day(event.get("ts")), history)
        except BotError as exc:
            private = isinstance(exc, QuestionError) and surface == "mention"
            self._post_notice(channel, user, thread, reply_for(exc), private=private)
            return
        answer_id = self.store.record_answer(result, surface, channel, user, thread)
        self._call(
            "chat.postMessage",
            channel=channel,
            thread_ts=thread,
            text=fallback_text(result),
            blocks=answer_blocks(result, answer_id),
            unfurl_links=False,
            unfurl_media=False,
        )

    def _post_notice(self, channel: str, user: str, thread: str | None, text: str, *, private: bool) -> None:
        """A hint or error: only to the asker in a channel, plainly in a DM."""
        if private and user:
            self._call("chat.postEphemeral", channel=channel, user=user, thread_ts=thread, text=escape(text))
        else:
            self._call("chat.postMessage", channel=channel, thread_ts=thread, text=text, blocks=notice_blocks(text))

    def _call(self, method: str, **params: Any) -> None:
        """A Web API call whose failure is logged (the error code, never the token), not raised."""
        try:
            self.client.api_call(method, json={k: v for k, v in params.items() if v is not None})
        except SlackApiError as exc:
            log.warning("Slack %s failed: %s", method, exc.response.get("error", exc.response.status_code))
        except OSError as exc:
            log.warning("Slack %s failed: %s", method, exc)

    def _on_command(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        """/ask: ack within Slack's 3 s (with the error when the question is unusable), then answer;
        `/ask add URL` adds the page instead (bot/slack/links.py)."""
        try:
            link = add_request(str(command.get("text", "")))
        except QuestionError as exc:
            ack(text=str(exc), response_type="ephemeral")
            return
        if link is not None:
            ack()
            self.links.on_command(command, respond, link, ephemeral=self.settings.slack_ephemeral)
            return
        question = clean_question(str(command.get("text", "")))
        try:
            question = validate_question(question, QUOTES, self.settings.max_question_chars)
        except QuestionError as exc:
            ack(text=f"{exc} Usage: `{EXAMPLE}`", response_type="ephemeral")
            return
        ephemeral = self.settings.slack_ephemeral
        response_type = "ephemeral" if ephemeral else "in_channel"
        if ephemeral:
            ack()
        else:
            ack(response_type="in_channel")  # Slack then shows the command itself to the channel
        try:
            result = self.ask(question, asked_day(None))  # a command carries no timestamp: now
        except BotError as exc:
            self._respond(respond, text=reply_for(exc), response_type="ephemeral")
            return
        answer_id = self.store.record_answer(result, "command", command.get("channel_id"), command.get("user_id"))
        self._respond(
            respond,
            text=fallback_text(result),
            blocks=answer_blocks(result, answer_id, share=ephemeral),
            response_type=response_type,
        )

    def _respond(self, respond: Any, **message: Any) -> None:
        """A post to the interaction's response_url; a failure is logged, not raised."""
        try:
            sent = respond(**message)
        except OSError as exc:
            log.warning("Slack response_url post failed: %s", exc)
            return
        if sent.status_code != 200:
            log.warning("Slack response_url post failed: HTTP %s %s", sent.status_code, sent.body[:200])

    def _on_message_shortcut(self, ack: Any, shortcut: dict[str, Any]) -> None:
        """ "Ask the articles" on a message: answered in the message's thread, privately by default."""
        ack()
        message = shortcut.get("message") or {}
        channel = str((shortcut.get("channel") or {}).get("id", ""))
        user = str((shortcut.get("user") or {}).get("id", ""))
        thread = message.get("thread_ts") or message.get("ts") or shortcut.get("message_ts")
        text = clean_question(str(message.get("text", "")))
        if not text:
            self._post_notice(channel, user, thread, NO_TEXT, private=True)
            return
        try:
            result = self.service.about_message(text, QUOTES, surface="slack")
        except BotError as exc:
            self._post_notice(channel, user, thread, reply_for(exc), private=True)
            return
        answer_id = self.store.record_answer(result, "shortcut", channel, user, thread)
        ephemeral = self.settings.slack_ephemeral
        self._call(
            "chat.postEphemeral" if ephemeral else "chat.postMessage",
            channel=channel,
            user=user if ephemeral else None,
            thread_ts=thread,
            text=fallback_text(result),
            blocks=answer_blocks(result, answer_id, share=ephemeral),
            unfurl_links=None if ephemeral else False,
            unfurl_media=None if ephemeral else False,
        )

    def _on_vote(self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        ack()
        vote = "up" if action.get("action_id") == VOTE_UP else "down"
        user = str((body.get("user") or {}).get("id", ""))
        try:
            changed = self.store.record_vote(str(action.get("value", "")), user, vote)
        except KeyError:
            self._respond(respond, text=GONE, response_type="ephemeral", replace_original=False)
            return
        if changed:
            self.service.metrics.feedback.labels(vote=vote, channel="slack").inc()
        thanks = "Thanks, noted: 👍." if vote == "up" else "Thanks, noted: 👎. Rephrasing the question may help."
        self._respond(respond, text=thanks, response_type="ephemeral", replace_original=False)

    def _on_share(self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        """Post the asker's private /ask answer for everyone, then remove the private copy."""
        ack()
        answer_id = str(action.get("value", ""))
        shown = self.store.answer(answer_id)
        if shown is None:
            self._respond(respond, text=GONE, response_type="ephemeral", replace_original=False)
            return
        blocks = answer_blocks(shown, answer_id, max_blocks=MAX_BLOCKS - 1)  # room for "Shared by"
        user = str((body.get("user") or {}).get("id", ""))
        if _USER_ID.match(user):
            blocks.insert(0, {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Shared by <@{user}>"}]})
        where = self.store.where(answer_id)
        if where is not None and where[0] and where[1] and where[2] == "shortcut":
            # A message shortcut's answer belongs in the message's thread, where it was shown.
            self._call(
                "chat.postMessage",
                channel=where[0],
                thread_ts=where[1],
                text=fallback_text(shown),
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
            )
        else:
            self._respond(
                respond, text=fallback_text(shown), blocks=blocks, response_type="in_channel", replace_original=False
            )
        self._respond(respond, delete_original=True)

    def _on_home(self, event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        self._call("views.publish", user_id=event["user"], view=self.home(str(event["user"])))


def asked_day(ts: object) -> dt.date:
    """The UTC day of a Slack timestamp ("1700000000.000100"), or today's when it has none."""
    try:
        moment = dt.datetime.fromtimestamp(float(str(ts)), dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        moment = dt.datetime.now(dt.UTC)
    return moment.date()


def _answerable(event: dict[str, Any]) -> bool:
    """A person's mention of the bot, or their new direct message to it: no bot's (the bot's own
    included), no edits or joins, no channel chatter (should `message.channels` be subscribed)."""
    return (
        (event.get("type") == "app_mention" or (event.get("type") == "message" and event.get("channel_type") == "im"))
        and not event.get("bot_id")
        and not event.get("subtype")
        and bool(event.get("user"))
        and bool(event.get("channel"))
        and bool(event.get("ts"))
    )
