"""`bot ask`: a question, or an interactive conversation, answered from the index."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from bot.answer.asking import Ask, parse_day, validate_question
from bot.answer.conversation import MAX_HISTORY, Turn, validate_history
from bot.errors import BotError
from bot.models.encoder import open_embedder
from bot.models.reader import open_reader
from bot.records import Answer
from bot.service import Service
from bot.settings import get_settings, store_of

NEW_CONVERSATION = "/new"


def format_answer(answer: Answer) -> str:
    """Human output: each quote in quotation marks, then '— Title (date) url'."""
    lines: list[str] = [f"(read as a follow-up: {answer.context})", ""] if answer.context else []
    if not answer.answered:
        lines += [answer.message or "Not found.", "", "Nearest passages:" if answer.quotes else ""]
    for quote in answer.quotes:
        ref = quote.article
        cite = f"— {ref.title} ({ref.date or 'undated'})" + (f" {ref.url}" if ref.url else "")
        if ref.also_reported_by:  # near-duplicate copies of the article elsewhere
            cite += "\n  also reported by " + "; ".join(
                (c.source or c.title) + (f" {c.url}" if c.url else "") for c in ref.also_reported_by
            )
        lines += [f"“{quote.text}”", cite, ""]
    return "\n".join(lines).rstrip() + "\n"


def cmd_ask(args: argparse.Namespace) -> int:
    settings = get_settings()
    template = Ask(
        "",
        args.k,
        since=parse_day(args.since, "--since"),
        until=parse_day(args.until, "--until"),
        asked_on=parse_day(args.asked_on, "--asked-on"),
        recent=args.recent,
    )
    if args.question is not None:
        validate_question(args.question, args.k, settings.max_question_chars)
    history = [Turn(q) for q in validate_history(args.history, settings.max_question_chars)]
    index_dir = args.index or settings.index_dir
    index = store_of(settings, index_dir).open()
    index.check_model(settings.model)
    embedder = open_embedder(settings.model, settings.encoder, index_dir, export="here")
    model = open_reader(settings.encoder, index_dir, export="here") if settings.reader == "on" else None
    service = Service(settings, embedder, index=index, reader=model)

    def respond(question: str) -> None:
        result = service.answer(replace(template, question=question), history)
        print(
            result.model_dump_json(indent=2) if args.json else format_answer(result), end="" if not args.json else "\n"
        )
        # The prompt follows the conversation: this question is the next one's history.
        history.append(Turn(result.question, result.quotes[0].article.id if result.quotes else None))
        del history[:-MAX_HISTORY]

    if args.question is not None:
        respond(args.question)
        return 0
    # Interactive: one question a line until EOF; a bad question is reported, not fatal.
    print(f"Follow-up questions follow the conversation; type {NEW_CONVERSATION} to start a new one.", file=sys.stderr)
    while True:
        try:
            question = input("question> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not question.strip():
            continue
        if question.strip() == NEW_CONVERSATION:
            history.clear()
            print("(new conversation)", file=sys.stderr)
            continue
        try:
            respond(question)
        except BotError as exc:
            print(f"error: {exc}", file=sys.stderr)
