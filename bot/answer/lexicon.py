"""Word forms the stemmer keeps apart but a reader does not: irregular verbs ("begin"/"began") and a
few near-synonyms news questions swap for the article's word ("start" for "begin").

Groups are written as words and stemmed once, with the same stemmer as the keyword index, so
they compare with query and sentence tokens directly.
"""

from __future__ import annotations

from functools import cache

from bot.indexing.keyword import tokenize

_GROUPS = """
begin began begun start started starts launch launched
buy bought purchase acquire acquired
die died death dead killed kill
win won victory
pay paid
say said says told tell
sell sold
make made
hold held
lead led
leave left
meet met
rise rose risen
fall fell fallen
find found
give gave given
take took taken
bring brought
build built
choose chose chosen pick picked select selected
spend spent
lose lost
break broke broken
fly flew flown
grow grew grown
know knew known
write wrote written
speak spoke spoken
steal stole stolen
strike struck
shoot shot
sink sank sunk
drive drove driven
eat ate eaten
run ran
see saw seen
think thought
teach taught
catch caught
fight fought
seek sought
send sent
keep kept
feel felt
become became
come came
go went gone
get got gotten
forbid forbade ban banned prohibit
quit resign resigned
sue sued lawsuit
arrest arrested detain detained
end ended finish finished
""".strip()


@cache
def _variants() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for line in _GROUPS.splitlines():
        stems = set(tokenize(line))
        for stem in stems:
            table.setdefault(stem, set()).update(stems)
    return {stem: frozenset(group) for stem, group in table.items()}


def variants(stem: str) -> frozenset[str]:
    """The stems that count as the same term as `stem` (itself included)."""
    return _variants().get(stem, frozenset((stem,)))


def expand(tokens: list[str]) -> list[str]:
    """`tokens` and, after them, the other forms of each (for keyword search)."""
    extra = [v for t in tokens for v in sorted(variants(t)) if v != t and v not in tokens]
    return tokens + list(dict.fromkeys(extra))
