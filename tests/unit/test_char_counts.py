"""The fast counts behind the quality rules (llmpipe.clean.char_counts) are the numbers the plain
Python definitions give: character classes against the str methods over every code point, n-gram
figures against Counters of word tuples."""

import random
import re
import sys
import unicodedata
from collections import Counter

from llmpipe.clean import char_counts
from llmpipe.clean.quality import PROSE_PUNCTUATION

EVERY_CHAR = "".join(chr(cp) for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF)


def test_res_space_class_is_str_isspace():
    """What visible_count rests on (str.split and re's \\s agree with str.isspace)."""
    assert [c for c in EVERY_CHAR if re.fullmatch(r"\s", c)] == [c for c in EVERY_CHAR if c.isspace()]


def test_each_class_counts_what_its_str_method_says_in_ascii_and_in_other_text():
    classes = char_counts.classes(PROSE_PUNCTUATION)
    ascii_text = "".join(chr(cp) for cp in range(128)) * 3
    for text in (EVERY_CHAR, ascii_text, "Plain ASCII, 42 words... & more!", "naïve 42² ½ 三 ٣"):
        assert classes["digit"].count(text) == sum(c.isdigit() for c in text)
        assert classes["alnum"].count(text) == sum(c.isalnum() for c in text)
        assert classes["alpha"].count(text) == sum(c.isalpha() for c in text)
        marks_or_prose = sum(
            not (c.isalnum() or c.isspace()) and (c in PROSE_PUNCTUATION or unicodedata.category(c)[0] == "M")
            for c in text
        )
        assert classes["mark_or_prose"].count(text) == marks_or_prose
        assert char_counts.visible_count(text) == sum(not c.isspace() for c in text)


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
