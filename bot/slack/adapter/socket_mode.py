"""`bot slack`: the Slack app over Socket Mode, for workspaces where the bot has no public URL.

The app opens a websocket to Slack with the app-level token (SLACK_APP_TOKEN, `xapp-…`) and gets
the same events, commands and button clicks as over HTTP, so the listeners are `bot/slack/app.py`'s.
Both tokens are checked with Slack before the model loads, so a wrong one fails in a second.
"""

from __future__ import annotations

import asyncio
import threading

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.errors import SlackApiError

from bot.errors import BotError
from bot.observability import configure_logging, safe_records
from bot.service import Service
from bot.settings import Settings
from bot.slack.app import EXAMPLE, SlackBot, api_base, log


def socket_mode_handler(bot: SlackBot, app_token: str) -> SocketModeHandler:
    """A Socket Mode connection for the bot's app (not started)."""
    safe_records.add_secret(app_token)
    return SocketModeHandler(bot.app, app_token, logger=log, web_client=bot.client)


def run_socket_mode(settings: Settings) -> None:
    """Check the tokens, load the model and index, connect over Socket Mode, answer until Ctrl-C."""
    if settings.slack_bot_token is None or settings.slack_app_token is None:
        raise BotError(
            "Socket Mode needs SLACK_BOT_TOKEN (xoxb-…) and SLACK_APP_TOKEN (xapp-…, with connections:write): "
            "see the README's Slack section."
        )
    configure_logging(settings.log_format, settings.log_level)
    service = Service(settings, None)
    bot = SlackBot(service, token=settings.slack_bot_token.get_secret_value(), signing_secret=None)
    handler = socket_mode_handler(bot, settings.slack_app_token.get_secret_value())
    try:
        try:
            name = bot.client.auth_test().get("user", "the bot")
        except SlackApiError as exc:
            raise BotError(
                f"Slack refused SLACK_BOT_TOKEN ({exc.response.get('error')}): use the Bot User OAuth Token "
                "(xoxb-…) from the app's OAuth & Permissions page."
            ) from None
        except OSError as exc:
            raise BotError(f"Cannot reach Slack at {api_base(settings.slack_api_url)}: {exc}") from None
        service.load()
        index = service.index()
        try:
            handler.connect()  # type: ignore[no-untyped-call]
        except SlackApiError as exc:
            raise BotError(
                f"Slack refused the Socket Mode connection ({exc.response.get('error')}): SLACK_APP_TOKEN must be "
                "an app-level token (xapp-…) with connections:write, and Socket Mode must be on."
            ) from None
        print(
            f"Connected as @{name} over Socket Mode, answering from {len(index.articles)} articles: "
            f"mention the bot, DM it or `{EXAMPLE}`. Ctrl-C stops.",
            flush=True,
        )
        threading.Event().wait()
    finally:
        handler.close()  # type: ignore[no-untyped-call]
        asyncio.run(service.close())
