"""ftfy's mojibake repair, with its test for mojibake run only where mojibake can be.

ftfy.fix_encoding first asks ftfy.badness.is_bad(text): one search of a large regular expression
(sequences such as "Ã©" or "â€™") over the whole text, about 150 ns a character, which was the
costliest step of the clean stage's filter job on long documentation pages. Only when it finds
something does ftfy try to re-decode the text. Every sequence that expression matches holds one of
a few hundred non-ASCII characters (Latin-1 letters, cp1252 punctuation, box drawing...; none of them
Chinese) and is at most a few characters long (both read off ftfy's own pattern below), so a match
lies within that many characters of one of them: searching those windows alone gives the same
answer. If ftfy's pattern ever stops having those properties, the whole text is searched, as ftfy
does.
"""

import re
from functools import cache
from re import _constants as sre_constants  # the regular-expression parser's internals (Python 3.11):
from re import _parser as sre_parse  # only used to check ftfy's pattern

import ftfy
from ftfy.badness import BADNESS_RE


def required_non_ascii(items) -> set[int] | None:
    """Code points of which every match of this sequence of parsed items holds one: those of its
    first item that is a non-ASCII literal or a class of non-ASCII characters only (one character
    every match must take); None when there is no such item."""
    for op, arg in items:
        if op is sre_constants.LITERAL and arg >= 0x80:
            return {arg}
        if op is sre_constants.IN and all(
            (kind is sre_constants.LITERAL and value >= 0x80) or (kind is sre_constants.RANGE and value[0] >= 0x80)
            for kind, value in arg
        ):
            ranges = [(value, value) if kind is sre_constants.LITERAL else value for kind, value in arg]
            return {cp for low, high in ranges for cp in range(low, high + 1)}
    return None


def has_assertion(items) -> bool:
    """Anchors or look-arounds whose result could depend on text outside a window. "^" is not one:
    searching from `pos`, re matches it only at the real start of the text, as a search of the whole
    text does."""
    for op, arg in items:
        if op is sre_constants.AT and arg in (sre_constants.AT_BEGINNING, sre_constants.AT_BEGINNING_STRING):
            continue
        if op in (sre_constants.AT, sre_constants.ASSERT, sre_constants.ASSERT_NOT, sre_constants.GROUPREF):
            return True
        if op is sre_constants.BRANCH and any(has_assertion(branch) for branch in arg[1]):
            return True
        if op is sre_constants.SUBPATTERN and has_assertion(arg[-1]):
            return True
        if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT) and has_assertion(arg[2]):
            return True
    return False


@cache
def search_plan() -> tuple[int, re.Pattern] | None:
    """(the longest match of ftfy's pattern, runs of the characters one of which every match holds),
    when the pattern has no assertions and every match holds such a character; None otherwise (then
    the whole text is searched)."""
    parsed = sre_parse.parse(BADNESS_RE.pattern, BADNESS_RE.flags)
    items = list(parsed)
    branches = items[0][1][1] if len(items) == 1 and items[0][0] is sre_constants.BRANCH else [items]
    required = [required_non_ascii(branch) for branch in branches]
    longest = parsed.getwidth()[1]
    if has_assertion(items) or None in required or longest >= 64:
        return None
    code_points = sorted(set().union(*required))
    return longest, re.compile("[" + "".join(re.escape(chr(cp)) for cp in code_points) + "]+")


def is_bad(text: str) -> bool:
    """ftfy.badness.is_bad(text), searching only the windows around the characters every match holds."""
    plan = search_plan()
    if plan is None:
        return bool(BADNESS_RE.search(text))
    width, runs = plan
    start = end = -1  # the current window, merged with overlapping ones
    for run in runs.finditer(text):
        low, high = max(0, run.start() - width + 1), run.end() + width - 1
        if low > end:
            if end > start and BADNESS_RE.search(text, start, end):
                return True
            start = low
        end = max(end, min(high, len(text)))
    return end > start and bool(BADNESS_RE.search(text, start, end))


def fix_encoding(text: str) -> str:
    """ftfy.fix_encoding(text): text ftfy does not find mojibake in comes back as it is."""
    if text.isascii() or not is_bad(text):
        return text
    return ftfy.fix_encoding(text)
