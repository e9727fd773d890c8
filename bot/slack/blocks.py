"""Answers as Slack Block Kit: pure functions from `Answer` to blocks, no Slack client involved.

Quoted passages are `rich_text` blocks (a `rich_text_quote` of `text` elements styled bold or
italic), not mrkdwn: mrkdwn has no way to escape `*`, `_`, `~` or backticks, so an article's own
stars and underscores (footnote marks, snake_case, urls) would pair up with ours and garble a quote
that must be word for word. A text element's text is shown as it is, markup and all, and a newline
in it is a line break. The rest (question echo, citations, notices, Home tab) is mrkdwn: there `<...>`
is a command (`<!channel>` pings everyone, `<@U123>` pings a person, `<url|label>` is a link) and
`&` starts an entity, so every piece of article text and every echoed question goes through
`escape()`; the only `<...>` we write ourselves are links built from an article's own http(s) url.
Limits we respect: 3,000 characters a section or context text, and (our own budget, as Slack's
docs give none for rich text) a quote block's text; 50 blocks a message, 4,000 characters of
fallback `text`, 2,000 a button value, 10 elements a context block. Whatever is shortened is cut
at a word boundary and marked "…"; a passage loses context around its answering sentence before
the sentence itself is cut.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote as percent_quote
from urllib.parse import urlsplit

from bot.records import Answer, Article, Quote

Block = dict[str, Any]

SECTION_LIMIT = 3000
MAX_BLOCKS = 50
TITLE_LIMIT = 300
# Of the notification fallback: Slack shows at most 4,000 characters of a message's `text`.
TEXT_LIMIT = 3000
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


def word_prefix(text: str, limit: int) -> str:
    """The longest beginning of `text` of at most `limit` characters that ends at a word boundary
    (a word longer than `limit` alone is cut, as nothing else would fit)."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if text[limit].isspace() or not cut[-1:].isalnum():
        return cut.rstrip()
    space = max(cut.rfind(" "), cut.rfind("\n"))
    return cut[:space].rstrip() if space > 0 else cut


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else word_prefix(text, limit - 1) + ELLIPSIS


def _escaped(text: str, limit: int) -> str:
    """`escape(text)` in at most `limit` characters (escaping can grow a text fivefold), cut at a
    word boundary and marked "…" when it has to be shortened."""
    if len(escape(text)) <= limit:
        return escape(text)
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if len(escape(word_prefix(text, middle))) < limit else (low, middle - 1)
    return escape(word_prefix(text, low)) + ELLIPSIS


# A piece of a passage and its rich-text styles: () plain, ("bold",), ("italic",), ...
Piece = tuple[str, tuple[str, ...]]


def _sentence_parts(quote: Quote, sentence: str, bold: bool) -> list[Piece]:
    """The quote's own pieces: bold; or, when it holds a short answer, italic with the answer bold
    inside, so the answer stands out from the bold-less sentence."""
    span = quote.answer
    if bold and span is not None and sentence == quote.text:
        start, end = span.start - quote.start, span.end - quote.start
        if 0 <= start < end <= len(sentence) and sentence[start:end] == span.text and span.text.strip():
            italic = ("italic",)
            return [(sentence[:start], italic), (span.text, ("bold", "italic")), (sentence[end:], italic)]
    return [(sentence, ("bold",) if bold else ())]


def _text_elements(pieces: list[Piece]) -> list[Block]:
    """Pieces as rich-text `text` elements, neighbours of one style merged and empty ones dropped
    (Slack refuses an empty text element). The text goes in unescaped: Slack's docs give a text
    element's `text` as "the text shown to the user", make mentions, broadcasts (@channel), links
    and emoji element types of their own, and ask for `&`, `<`, `>` to be escaped in text objects
    (mrkdwn, plain_text) only: docs.slack.dev/reference/block-kit/block-elements/text-element."""
    elements: list[Block] = []
    for text, styles in pieces:
        if not text:
            continue
        style = dict.fromkeys(styles, True)
        if elements and elements[-1].get("style", {}) == style:
            elements[-1]["text"] += text
        else:
            elements.append({"type": "text", "text": text} | ({"style": style} if style else {}))
    return elements


def passage_elements(quote: Quote, *, bold: bool = True, limit: int = SECTION_LIMIT) -> list[Block]:
    """The quote's passage as rich-text `text` elements, word for word, with the answering sentence
    in bold (or, when it holds a short answer, in italics with the answer bold), at most `limit`
    characters in all: context is cut from both ends (at word boundaries, marked "…") before the
    sentence is, and a sentence too long alone keeps its beginning. Line breaks stay line breaks."""
    offset = quote.start - quote.passage_start
    if quote.passage[offset : offset + len(quote.text)] == quote.text:
        before, after = quote.passage[:offset], quote.passage[offset + len(quote.text) :]
    else:  # a quote without its passage: show the quote alone
        before = after = ""
    sentence = quote.text

    def render(keep: int, sentence: str) -> list[Piece]:
        head = before if keep >= len(before) else f"{ELLIPSIS} " + _word_cut(before[len(before) - keep :], left=True)
        tail = after if keep >= len(after) else _word_cut(after[:keep], left=False).rstrip() + f" {ELLIPSIS}"
        return [(head, ()), *_sentence_parts(quote, sentence, bold), (tail, ())]

    def fits(pieces: list[Piece]) -> bool:
        return sum(len(text) for text, _ in pieces) <= limit

    widest = max(len(before), len(after))
    if fits(render(widest, sentence)):
        return _text_elements(render(widest, sentence))
    low, high = 0, widest
    while low < high:  # the most context on each side that still fits
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(render(middle, sentence)) else (low, middle - 1)
    if fits(render(low, sentence)):
        return _text_elements(render(low, sentence))
    low, high = 0, len(sentence)
    while low < high:  # even the sentence alone is too long: keep its beginning, whole words
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(render(0, word_prefix(sentence, middle) + ELLIPSIS)) else (low, middle - 1)
    return _text_elements(render(0, word_prefix(sentence, low) + ELLIPSIS))


def _word_cut(text: str, *, left: bool) -> str:
    """Drop the partial word at the cut edge (left: the start of `text`, else its end)."""
    spaces = [m.start() for m in re.finditer(r"\s", text)]
    if not spaces:  # one partial word: drop it rather than show half of it
        return ""
    return text[spaces[0] + 1 :] if left else text[: spaces[-1]]


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
    asked: list[Block] = [{"type": "mrkdwn", "text": f"*Q:* {question}"}]
    if answer.context:  # a follow-up: say how it was read
        asked.append(
            {"type": "mrkdwn", "text": f"_Read as a follow-up:_ {_escaped(answer.context, SECTION_LIMIT - 30)}"}
        )
    blocks: list[Block] = [{"type": "context", "elements": asked}]
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
        elements = passage_elements(quote, bold=answer.answered)
        if elements:  # nothing to quote (an empty quote and passage): the citation alone
            quoted = {"type": "rich_text_quote", "elements": elements}
            blocks.append({"type": "rich_text", "block_id": f"quote-{n}", "elements": [quoted]})
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
    *,
    articles: int | None,
    passages: int | None,
    built_at: str | None,
    newest: list[Article],
    examples: list[str],
    editor: bool = False,
) -> Block:
    """The App Home tab: how to ask, example questions, how many articles and the newest of them
    with their dates (how fresh it is); for an editor, how to add a link."""
    if articles is None:
        corpus = "The articles are loading; the counts appear here once they are in."
    else:
        corpus = f"I know *{articles}* article{'s' if articles != 1 else ''} ({passages} passages)."
        if built_at:
            corpus += f" Index built {escape(built_at[:16].replace('T', ' '))} UTC."
    how = (
        "• Mention me in a channel: `@Q&A bot who will chair Stargate?` — I answer in the thread; "
        "mention me again there with a follow-up (“When did it begin?”) and I read it with the thread's "
        "earlier questions.\n"
        "• On any message, choose *Ask the articles* (⋮ → More message shortcuts) for what the articles "
        "say about it, in its thread.\n"
        "• Send me a direct message with the question.\n"
        "• Type `/ask your question` anywhere; only you see the answer until you share it."
    )
    if editor:
        how += (
            "\n• You are an editor: on a message that links to a news page, choose *Add the link to the "
            "articles*, or type `/ask add https://…`; I fetch the page, add it and say when it is searchable."
        )
    example_lines = "\n".join(f"• {_escaped(q, 200)}" for q in examples) or "• (none yet)"
    blocks: list[Block] = [
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
    ]
    if newest:
        lines = [f"• {_article_line(article)}" for article in newest]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "*Newest articles*\n" + "\n".join(lines)}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": corpus}]})
    return {"type": "home", "blocks": blocks}


def _article_line(article: Article) -> str:
    """ "2025-02-03 · Title" (the title linked to the article's own http(s) url), at most ~400 characters."""
    title = _escaped(" ".join(article.title.split()), 200)
    url = safe_url(article.url)
    linked = f"<{url}|{title}>" if url and len(url) <= 200 else title
    return f"{escape((article.date or 'no date')[:10])} · {linked}"


def example_questions(recent: list[str], titles: list[str], limit: int = 3) -> list[str]:
    """Questions people asked lately, topped up with ones about the newest article titles."""
    examples = list(dict.fromkeys(recent))[:limit]
    for title in titles:
        if len(examples) >= limit:
            break
        examples.append(f"What does “{_shorten(title, 120)}” say?")
    return examples
