"""`bot serve` (HTTP, and Slack over HTTP) and `bot slack` (Socket Mode)."""

from __future__ import annotations

import argparse

from bot.http.app import serve
from bot.settings import get_settings
from bot.slack.adapter.socket_mode import run_socket_mode


def cmd_serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.index:
        settings.index_dir = args.index
    serve(settings, host=args.host or settings.host, port=args.port or settings.port)
    return 0


def cmd_slack(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.index:
        settings.index_dir = args.index
    run_socket_mode(settings)
    return 0
