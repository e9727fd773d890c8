"""Answers as Slack Block Kit: pure functions from `Answer` to blocks, no Slack client involved.

Slack's mrkdwn treats `<...>` as a command (`<!channel>` pings everyone, `<@U123>` pings a
person, `<url|label>` is a link) and `&` as the start of an entity, so every piece of article
text and every echoed question goes through `escape()`; the only `<...>` we write ourselves are
links built from an article's own http(s) url. Limits we respect: 3,000 characters a section
text, 50 blocks a message, 2,000 characters a button value, 10 elements a context block.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote as percent_quote
from urllib.parse import urlsplit

from bot.records import Answer, Quote

Block = dict[str, Any]

SECTION_LIMIT = 3000
MAX_BLOCKS = 50
TITLE_LIMIT = 300
TEXT_LIMIT = 3000  # of the notification fallback; Slack truncates at 40,000 but nobody reads that far
ELLIPSIS = "…"
VOTE_UP, VOTE_DOWN, SHARE = "vote_up", "vote_down", "share_answer"

_LINK = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")


def escape(text: str) -> str:
    """Text that Slack shows as-is: no pings, no links, no entities (`&`, `<`, `>` escaped)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """The reverse of `escape` (Slack escapes these three in the text it sends us)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def clean_question(text: str, bot_user_id: str | None = None) -> str:
    """A message's text as a plain question: the bot's mention dropped, other markup as words."""

    def plain(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if bot_user_id and target == f"@{bot_user_id}":
            return " "
        if label:
            return ("#" if target.startswith("#") else "") + label
        if target.startswith(("@", "#")):
            return target
        if target.startswith("!"):
            return "@" + target[1:].split("^")[0]  # <!here> → @here, harmless as plain text
        return target  # a bare url

    return " ".join(unescape(_LINK.sub(plain, text)).split())


def safe_url(url: str | None) -> str | None:
    """An http(s) url fit to sit inside `<url|label>`, or None when it is anything else."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    # `|` would end the url part of a link and `<`, `>`, spaces would end the link itself.
    return escape(percent_quote(url, safe="/:?#[]@!$&'()*+,;=%~"))


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def _escaped(text: str, limit: int) -> str:
    """`escape(text)` in at most `limit` characters (escaping can grow a text fivefold)."""
    if len(escape(text)) <= limit:
        return escape(text)
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if len(escape(text[:middle])) < limit else (low, middle - 1)
    return escape(text[:low]) + ELLIPSIS


def _marked(text: str, mark: str) -> str:
    """`text` escaped inside `mark` (`*` bold, `_` italic), its edge whitespace left outside."""
    if not text.strip():
        return text
    lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]
    return f"{lead}{mark}{text.strip()}{mark}{trail}"


def _quote_lines(parts: list[tuple[str, str]]) -> str:
    """Raw (unescaped) text pieces as a Slack block quote, each line starting with '>'. A piece's
    style is "" (plain), "bold", or "sentence"/"answer": a sentence holding a short answer, shown
    in italics with the answer in bold inside, so the answer stands out from the bold-less line."""
    lines: list[list[tuple[str, str]]] = [[]]
    for text, style in parts:
        for n, piece in enumerate(text.split("\n")):
            if n:
                lines.append([])
            if piece:
                lines[-1].append((piece, style))
    rendered = []
    for segments in lines:
        out, run = "", ""
        for piece, style in [*segments, ("", "")]:
            if style in ("sentence", "answer"):
                run += _marked(escape(piece), "*") if style == "answer" else escape(piece)
                continue
            out += _marked(run, "_")
            run = ""
            out += _marked(escape(piece), "*") if style == "bold" else escape(piece)
        rendered.append(out)
    return "\n".join("> " + line.strip() for line in rendered if line.strip())


def _sentence_parts(quote: Quote, sentence: str, bold: bool) -> list[tuple[str, str]]:
    """The quote's own pieces: bold, or italic around a bold short answer when it has one."""
    span = quote.answer
    if bold and span is not None and sentence == quote.text:
        start, end = span.start - quote.start, span.end - quote.start
        if 0 <= start < end <= len(sentence) and sentence[start:end] == span.text and span.text.strip():
            return [(sentence[:start], "sentence"), (span.text, "answer"), (sentence[end:], "sentence")]
    return [(sentence, "bold" if bold else "")]


def passage_mrkdwn(quote: Quote, *, bold: bool = True, limit: int = SECTION_LIMIT) -> str:
    """The quote's passage as a Slack quote with the answering sentence in bold (or, when it holds
    a short answer, in italics with the answer bold), at most `limit` characters: context is cut
    from both ends (at word boundaries) before the sentence is."""
    offset = quote.start - quote.passage_start
    if quote.passage[offset : offset + len(quote.text)] == quote.text:
        before, after = quote.passage[:offset], quote.passage[offset + len(quote.text) :]
    else:  # a quote without its passage: show the quote alone
        before = after = ""
    sentence = quote.text

    def render(keep: int, sentence: str) -> str:
        head = before if keep >= len(before) else f"{ELLIPSIS} " + _word_cut(before[len(before) - keep :], left=True)
        tail = after if keep >= len(after) else _word_cut(after[:keep], left=False).rstrip() + f" {ELLIPSIS}"
        return _quote_lines([(head, ""), *_sentence_parts(quote, sentence, bold), (tail, "")])

    if len(render(max(len(before), len(after)), sentence)) <= limit:
        return render(max(len(before), len(after)), sentence)
    low, high = 0, max(len(before), len(after))
    while low < high:  # the most context on each side that still fits
        middle = (low + high + 1) // 2
        low, high = (middle, high) if len(render(middle, sentence)) <= limit else (low, middle - 1)
    if len(render(low, sentence)) <= limit:
        return render(low, sentence)
    low, high = 0, len(sentence)
    while low < high:  # even the sentence alone is too long: keep its beginning
        middle = (low + high + 1) // 2
        fits = len(render(0, sentence[:middle] + ELLIPSIS)) <= limit
        low, high = (middle, high) if fits else (low, middle - 1)
    return render(0, sentence[:low].rstrip() + ELLIPSIS)


def _word_cut(text: str, *, left: bool) -> str:
    """Drop the partial word at the cut edge (left: the start of `text`, else its end)."""
    if left:
        space = text.find(" ")
        return text[space + 1 :] if 0 <= space < len(text) - 1 else text
    space = text.rfind(" ")
    return text[:space] if space > 0 else text


def citation(quote: Quote) -> str:
    """'Title · date · link' as mrkdwn; the link only when the article has an http(s) url."""
    ref = quote.article
    bits = [_escaped(ref.title, TITLE_LIMIT)]
    if ref.date:
        bits.append(escape(ref.date[:10]))
    url = safe_url(ref.url)
    if url:
        bits.append(f"<{url}|link>")
    return " · ".join(bits)


def _button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value[:2000],
    }
    if style:
        button["style"] = style
    return button


def answer_blocks(answer: Answer, answer_id: str, *, share: bool = False, max_blocks: int = MAX_BLOCKS) -> list[Block]:
    """The answer as blocks: the question, one quoted passage and citation per quote, then buttons
    (👍, 👎, and "Share in channel" for an answer only the asker sees)."""
    question = _escaped(answer.question, SECTION_LIMIT - 10)
    blocks: list[Block] = [{"type": "context", "elements": [{"type": "mrkdwn", "text": f"*Q:* {question}"}]}]
    quotes = answer.quotes
    if not answer.answered:
        message = answer.message or "I couldn't find that in the articles I know."
        nearest = " The nearest passage, which does not answer it:" if quotes else ""
        text = _escaped(message, SECTION_LIMIT - len(nearest)) + nearest
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
        quotes = quotes[:1]
    actions: Block = {
        "type": "actions",
        "block_id": "feedback",
        "elements": [_button("👍", VOTE_UP, answer_id), _button("👎", VOTE_DOWN, answer_id)]
        + ([_button("Share in channel", SHARE, answer_id, "primary")] if share else []),
    }
    room = max(0, (max_blocks - len(blocks) - 1) // 2)
    for n, quote in enumerate(quotes[:room]):
        text = passage_mrkdwn(quote, bold=answer.answered)
        blocks.append({"type": "section", "block_id": f"quote-{n}", "text": {"type": "mrkdwn", "text": text}})
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": citation(quote)}]})
    blocks.append(actions)
    return blocks


def fallback_text(answer: Answer) -> str:
    """The plain `text` of the message, shown in notifications and by clients without blocks."""
    if answer.answered and answer.quotes:
        top = answer.quotes[0]
        date = f" ({top.article.date[:10]})" if top.article.date else ""
        text = f"“{top.text}” — {top.article.title}{date}"
    else:
        text = answer.message or "I couldn't find that in the articles I know."
    return _escaped(text, TEXT_LIMIT)


def notice_blocks(text: str) -> list[Block]:
    """A one-section message (errors, hints), escaped."""
    return [{"type": "section", "text": {"type": "mrkdwn", "text": _escaped(text, SECTION_LIMIT)}}]


def home_view(
    *, articles: int | None, passages: int | None, built_at: str | None, newest: str | None, examples: list[str]
) -> Block:
    """The App Home tab: how to ask, example questions, how many articles and how fresh."""
    if articles is None:
        corpus = "The articles are loading; the counts appear here once they are in."
    else:
        corpus = f"I know *{articles}* article{'s' if articles != 1 else ''} ({passages} passages)."
        if newest:
            corpus += f" Newest article: {escape(newest[:10])}."
        if built_at:
            corpus += f" Index built {escape(built_at[:16].replace('T', ' '))} UTC."
    how = (
        "• Mention me in a channel: `@Q&A bot who will chair Stargate?` — I answer in the thread, "
        "and follow-up mentions in that thread are new questions.\n"
        "• Send me a direct message with the question.\n"
        "• Type `/ask your question` anywhere; only you see the answer until you share it."
    )
    example_lines = "\n".join(f"• {_escaped(q, 200)}" for q in examples) or "• (none yet)"
    return {
        "type": "home",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Answers from the news, quoted word for word"}},
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "Every answer is an exact quote from an article, with its title, date and link. "
                    "When the articles do not answer, I say so.",
                },
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": "*How to ask*\n" + how}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "*Try*\n" + example_lines}},
            {"type": "divider"},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": corpus}]},
        ],
    }


def example_questions(recent: list[str], titles: list[str], limit: int = 3) -> list[str]:
    """Questions people asked lately, topped up with ones about the newest article titles."""
    examples = list(dict.fromkeys(recent))[:limit]
    for title in titles:
        if len(examples) >= limit:
            break
        examples.append(f"What does “{_shorten(title, 120)}” say?")
    return examples
