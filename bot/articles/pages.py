"""Is a fetched page an article? trafilatura finds "main text" in almost any page: a login form
gives "Sign in", a front page or a list of links gives one line per link. A page added by its
URL alone (`POST /articles {"url"}`, Slack's links) must read as prose, or it is refused with
the reason instead of becoming an "article" every question can then quote.

The floor is low on purpose: the shortest news briefs are two or three sentences of 15-25 words.
"""

from __future__ import annotations

import re

from bot.articles.sources import Draft
from bot.errors import CorpusError

MIN_WORDS = 25
MIN_SENTENCES = 2
# A sentence ends in . ! or ? (maybe closed by a quote or bracket) before a space or the end.
_SENTENCE_END = re.compile(r"\w[.!?][\"'”’)\]]*(?=\s|$)")


def check_article_page(draft: Draft) -> Draft:
    """The draft of a fetched page, or CorpusError when its text is not an article's."""
    words = len(draft.text.split())
    sentences = len(_SENTENCE_END.findall(draft.text))
    if words < MIN_WORDS or sentences < MIN_SENTENCES:
        raise CorpusError(
            draft.origin,
            f"the page is not an article: its main text is {words} word{'s' if words != 1 else ''} in "
            f"{sentences} sentence{'s' if sentences != 1 else ''} (an article has at least {MIN_WORDS} words "
            f"in {MIN_SENTENCES} sentences); link the story itself, not a front page, a list or a sign-in page",
        )
    return draft
