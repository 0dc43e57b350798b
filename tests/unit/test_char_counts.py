"""The fast counts behind the quality rules (llmpipe.data.char_counts) are the numbers the plain
Python definitions give: character classes against the str methods over every code point, n-gram
figures against Counters of word tuples."""

import random
import re
import sys
import unicodedata
from collections import Counter

from llmpipe.data import char_counts
from llmpipe.data.quality import PROSE_PUNCTUATION

EVERY_CHAR = "".join(chr(cp) for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF)


def test_res_word_and_space_classes_are_the_str_methods():
    """What ALNUM and visible_count rest on, for this Python's Unicode database."""
    assert [c for c in EVERY_CHAR if re.fullmatch(r"\w", c)] == [c for c in EVERY_CHAR if c.isalnum() or c == "_"]
    assert [c for c in EVERY_CHAR if re.fullmatch(r"\s", c)] == [c for c in EVERY_CHAR if c.isspace()]


def test_each_class_counts_what_its_str_method_says():
    classes = char_counts.classes(PROSE_PUNCTUATION)
    assert char_counts.count(classes["digit"], EVERY_CHAR) == sum(c.isdigit() for c in EVERY_CHAR)
    assert char_counts.count(char_counts.ALNUM, EVERY_CHAR) == sum(c.isalnum() for c in EVERY_CHAR)
    assert [c for c in EVERY_CHAR if classes["alpha"].match(c)] == [c for c in EVERY_CHAR if c.isalpha()]
    marks_or_prose = [
        c
        for c in EVERY_CHAR
        if not (c.isalnum() or c.isspace()) and (c in PROSE_PUNCTUATION or unicodedata.category(c)[0] == "M")
    ]
    assert [c for c in EVERY_CHAR if classes["mark_or_prose"].match(c)] == marks_or_prose
    assert char_counts.visible_count(EVERY_CHAR) == sum(not c.isspace() for c in EVERY_CHAR)


def reference_most_frequent(words: list[str], n: int) -> tuple[int, int]:
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0, 0
    gram, count = Counter(grams).most_common(1)[0]
    return count, sum(len(w) for w in gram)


def reference_repeated_chars(words: list[str], n: int) -> int:
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    counts, covered = Counter(grams), [False] * len(words)
    for i, gram in enumerate(grams):
        if counts[gram] > 1:
            covered[i : i + n] = [True] * n
    return sum(len(w) for w, c in zip(words, covered, strict=True) if c)


def test_ngram_figures_match_counters_of_word_tuples():
    rng = random.Random(0)
    for size in [0, 1, 2, 5, 9, 10, 11, 60, 400]:
        for vocabulary in (["a", "bb", "ccc"], ["buy", "now", "cheap", "pills", "today", "x", "yy", "zzz", "w"]):
            words = [rng.choice(vocabulary) for _ in range(size)]
            grams = char_counts.NGrams(words)
            for n in range(2, 11):
                assert grams.most_frequent(n) == reference_most_frequent(words, n), (words, n)
                assert grams.repeated_chars(n) == reference_repeated_chars(words, n), (words, n)


def test_ties_go_to_the_earliest_ngram_as_in_counter_most_common():
    words = ["a", "b", "long", "word", "a", "b", "long", "word"]
    assert char_counts.NGrams(words).most_frequent(2) == (2, 2)  # ("a", "b") is seen first
    assert char_counts.NGrams(words[2:]).most_frequent(2) == (2, 8)  # ("long", "word") first here
