"""Slack over HTTP: one signed request in (an event, a command, an interaction), verified and
checked here, then dispatched to the bolt app, which acks at once and answers in its threads.

Verified and parsed before bolt sees it: bolt's request parser raises on a body that is not a
JSON object (or a form whose payload is not one), its verifier on a non-numeric timestamp, and it
logs the whole body of a request that fails verification. `bot/http/slack.py` mounts it on
`POST /slack/events`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from urllib.parse import parse_qsl

from slack_bolt import BoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.service import Service
from bot.slack.app import SlackBot

log = logging.getLogger("bot.slack")

Reply = tuple[int, str, dict[str, str]]  # status, body, headers


class HttpAdapter:
    """The HTTP door of a SlackBot: signature, shape, then bolt."""

    def __init__(self, bot: SlackBot, signing_secret: str) -> None:
        self.bot = bot
        self.verifier = SignatureVerifier(signing_secret)

    def dispatch(self, body: str, query: dict[str, str], headers: dict[str, str | Sequence[str]]) -> Reply:
        """One HTTP request from Slack (verified, acked, listeners started): status, body, headers."""
        timestamp, signature = (str(headers.get(h, "")) for h in ("x-slack-request-timestamp", "x-slack-signature"))
        if not timestamp.isdigit() or not self.verifier.is_valid(body, timestamp, signature):
            log.info("refused a Slack request with a missing, stale or wrong signature")
            return refusal(401, "invalid request")
        problem = malformed(body, str(headers.get("content-type", "")))
        if problem is not None:
            log.warning("refused a signed Slack request: %s", problem)
            return refusal(400, f"Not a Slack request: {problem}.")
        result = self.bot.app.dispatch(BoltRequest(body=body, query=query, headers=headers))
        if result.status >= 500:
            # bolt caught an exception from a middleware or listener (and logged it with its
            # traceback); Slack would only retry the same payload, so it is refused as such.
            return refusal(400, "The Slack request could not be processed.")
        return result.status, result.body, result.first_headers_without_set_cookie()


def refusal(status: int, error: str) -> Reply:
    return status, json.dumps({"error": error}), {"content-type": "application/json"}


def malformed(body: str, content_type: str) -> str | None:
    """Why a (signed) body is not one Slack sends, or None: Slack posts a JSON object (events),
    a form (commands), or a form whose `payload` is a JSON object (interactions); an event
    callback's `event` is an object."""
    try:
        if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            form = dict(parse_qsl(body, keep_blank_values=True))
            if "payload" not in form:
                return None
            data = json.loads(form["payload"])
        else:
            data = json.loads(body)
    except (ValueError, RecursionError):
        return "the body is not JSON or a form with a JSON payload"
    if not isinstance(data, dict):
        return "the body is not a JSON object"
    if "event" in data and not isinstance(data["event"], dict):
        return "'event' is not an object"
    return None


def slack_over_http(service: Service) -> HttpAdapter | None:
    """The app for `POST /slack/events` when the bot token and the signing secret are set, else None."""
    settings = service.settings
    token, secret = settings.slack_bot_token, settings.slack_signing_secret
    if token is None or secret is None:
        if token is not None or secret is not None:
            log.warning("Slack over HTTP needs both SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET; /slack/events is off.")
        return None
    bot = SlackBot(service, token=token.get_secret_value(), signing_secret=secret.get_secret_value())
    return HttpAdapter(bot, secret.get_secret_value())
