"""Counts of character classes and repeated n-grams for the quality rules, at C and NumPy speed.

The rules were first written as Python loops over characters and words (`c.isdigit() for c in
text`, a Counter of n-gram tuples); on real documentation pages they cost more than everything
else in the clean stage's filter job. The counts here are the same numbers: each character class is
built once per process from Python's own Unicode database (the str methods the rules name, applied
by `re` and `filter` to a string of every code point, ~0.1 s), and matched by a regular expression;
n-grams are compared as integer labels, not tuples.
"""

import re
import sys
import unicodedata
from functools import cache, cached_property

import numpy as np

ASCII_RUNS = re.compile(r"[\x00-\x7f]+")


class CharClass:
    """A set of code points (ascending), counted in a text: ASCII text by bytes.translate (C speed,
    no object per character), other text by a regular expression."""

    def __init__(self, code_points: list[int]):
        self.ascii = bytes(cp for cp in code_points if cp < 128)
        self.pattern = re.compile(char_class(code_points))

    def count(self, text: str) -> int:
        data = text.encode("ascii", "ignore")
        ascii_members = len(data) - len(data.translate(None, self.ascii))
        if len(data) == len(text):
            return ascii_members
        # only the non-ASCII characters go through the expression; subn counts with no match objects
        return ascii_members + self.pattern.subn("", ASCII_RUNS.sub("", text))[1]


def char_class(code_points: list[int]) -> str:
    """A regular expression matching exactly one of these code points. re tests a character against
    a class of characters up to U+FFFF with one table look-up, but against the ranges past U+FFFF one
    by one (hundreds of them for the letters): so those are a second class, tried only on a
    character past U+FFFF (3 to 4 times faster on Chinese text)."""
    basic = [cp for cp in code_points if cp <= 0xFFFF]
    astral = [cp for cp in code_points if cp > 0xFFFF]
    if not astral:
        return ranges_class(basic)
    return f"(?:{ranges_class(basic)}|(?=[\U00010000-\U0010ffff]){ranges_class(astral)})"


def ranges_class(code_points: list[int]) -> str:
    """A regular-expression class matching exactly these code points (as ranges)."""
    if not code_points:
        return "(?!)"  # matches nothing
    parts, start = [], None
    for i, cp in enumerate(code_points):
        if start is None:
            start = cp
        if i + 1 == len(code_points) or code_points[i + 1] != cp + 1:
            parts.append(re.escape(chr(start)) + ("-" + re.escape(chr(cp)) if cp != start else ""))
            start = None
    return "[" + "".join(parts) + "]"


@cache
def classes(prose_punctuation: frozenset[str]) -> dict[str, CharClass]:
    """The character classes the rules count, built once per process."""
    return {name: CharClass(sorted(map(ord, chars))) for name, chars in class_members(prose_punctuation).items()}


def every_character() -> str:
    """Every code point but the surrogates (which no str method counts as a letter, digit or mark)."""
    code_points = np.arange(sys.maxunicode + 1, dtype=np.uint32)
    return code_points[(code_points < 0xD800) | (code_points > 0xDFFF)].tobytes().decode("utf-32-le")


def class_members(prose_punctuation: frozenset[str]) -> dict[str, str]:
    """The characters of each class. A Python test of each of the 1.1 million code points took 0.2 s
    at every start; here C code walks them: re's \\w is exactly str.isalnum plus "_" (Python's re
    documentation), so the alphanumerics come from one findall, the letters and digits from them by
    filter; marks are printable (str.isprintable is false only for categories C and Z), so only the
    ~11,000 printable characters that are neither alphanumeric nor space need their category looked up."""
    every = every_character()
    alnum = "".join(re.findall(r"[^\W_]+", every))
    symbols = re.findall(r"[^\w\s]", "".join(filter(str.isprintable, every)))
    marks = [c for c in symbols if unicodedata.category(c)[0] == "M"]
    prose = [c for c in prose_punctuation if not (c.isalnum() or c.isspace())]
    return {
        "alnum": alnum,
        "alpha": "".join(filter(str.isalpha, alnum)),
        "digit": "".join(filter(str.isdigit, alnum)),
        "mark_or_prose": "".join(set(marks) | set(prose)),  # neither alphanumeric nor space
    }


def visible_count(text: str) -> int:
    """Characters other than whitespace (str.split splits on exactly str.isspace)."""
    return sum(map(len, text.split()))


def ngram_labels(ids: np.ndarray, n: int, shorter: np.ndarray) -> tuple[np.ndarray, int]:
    """labels[i]: one integer per distinct n-gram, for the n-gram starting at word i, from the labels
    of the (n-1)-grams: the pair (label of words i..i+n-2, word i+n-1) relabelled. Exact: equal labels
    mean equal n-grams, with no hash to collide. Also returns how many distinct n-grams there are."""
    keys = shorter[: len(ids) - n + 1] * np.int64(len(ids) + 1) + ids[n - 1 :]
    distinct, labels = np.unique(keys, return_inverse=True)
    return labels.reshape(-1), len(distinct)


class NGrams:
    """The n-gram labels of a list of words, computed for n = 2, 3, ... as far as asked."""

    def __init__(self, words: list[str]):
        self.words = words
        self.labels: dict[int, np.ndarray] = {}
        self.all_distinct: dict[int, bool] = {}  # no n-gram occurs twice
        # most texts repeat words but no word pair, and then no longer n-gram either: a set of pairs
        # tells it without NumPy (whose fixed costs are most of the time on short texts)
        pairs = max(len(words) - 1, 0)
        if len(set(zip(words, words[1:], strict=False))) == pairs:
            self.labels[2], self.all_distinct[2] = np.arange(pairs), True

    @cached_property
    def ids(self) -> np.ndarray:
        """One integer per distinct word: the unigram labels."""
        index: dict[str, int] = {}
        return np.array([index.setdefault(w, len(index)) for w in self.words], dtype=np.int64)

    @cached_property
    def lengths(self) -> np.ndarray:
        return np.fromiter(map(len, self.words), dtype=np.int64, count=len(self.words))

    def of(self, n: int) -> np.ndarray:
        if 1 not in self.labels and (n == 1 or 2 not in self.labels):
            self.labels[1] = self.ids
            self.all_distinct[1] = int(self.ids.max(initial=-1)) + 1 == len(self.words)  # ids: 0 .. distinct - 1
        for m in range(max(self.labels) + 1, n + 1):
            count = max(len(self.words) - m + 1, 0)
            if self.all_distinct[m - 1]:  # no (m-1)-gram repeats, so no m-gram does: nothing to sort
                self.labels[m], distinct = np.arange(count), count
            else:
                self.labels[m], distinct = ngram_labels(self.ids, m, self.labels[m - 1]) if count else (self.ids[:0], 0)
            self.all_distinct[m] = distinct == count
        return self.labels[n]

    def most_frequent(self, n: int) -> tuple[int, int]:
        """(count, characters of its words) of the most frequent n-gram, the earliest-seen of equals
        (as Counter.most_common(1) picks it); (0, 0) when there is none."""
        labels = self.of(n)
        if not len(labels):
            return 0, 0
        if self.all_distinct[n]:
            return 1, sum(map(len, self.words[:n]))
        counts = np.bincount(labels)
        top = int(counts.max())
        first = int(np.argmax(counts[labels] == top))
        return top, int(self.lengths[first : first + n].sum())

    def repeated_chars(self, n: int) -> int:
        """Characters of the words covered by n-grams that occur more than once."""
        labels = self.of(n)
        if not len(labels) or self.all_distinct[n]:
            return 0
        starts = np.flatnonzero(np.bincount(labels)[labels] > 1)
        size = len(self.ids) + n + 1
        depth = np.cumsum(np.bincount(starts, minlength=size) - np.bincount(starts + n, minlength=size))
        return int(self.lengths[depth[: len(self.ids)] > 0].sum())
