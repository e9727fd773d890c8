"""`POST /slack/events`: Slack's events, commands and interactions, handed to the Slack app."""

# No `from __future__ import annotations`: FastAPI reads the route signatures.
from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from bot.service import Service
from bot.slack.adapter.http import slack_over_http
from bot.slack.app import SlackBot


def mount_slack(app: FastAPI, service: Service) -> SlackBot | None:
    """Add `POST /slack/events` when the bot token and the signing secret are set; returns the bot
    (also at `app.state.slack`), or None."""
    adapter = slack_over_http(service)
    if adapter is None:
        return None
    bot = adapter.bot
    router = APIRouter(include_in_schema=False)

    @router.post("/slack/events")
    async def slack_events(request: Request) -> Response:
        body = (await request.body()).decode("utf-8", errors="replace")
        # dispatch verifies, acks and hands listeners to bolt's threads; a worker thread keeps
        # its first-event auth.test call off the event loop too.
        status, content, headers = await run_in_threadpool(
            adapter.dispatch, body, dict(request.query_params), dict(request.headers)
        )
        return Response(content, status_code=status, headers=headers)

    app.include_router(router)
    app.state.slack = bot
    return bot
