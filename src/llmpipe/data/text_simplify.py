"""The text that MinHash shingles are taken from: datatrove's simplify_text (lower case, numbers,
punctuation, whitespace, diacritics), with the same result, faster.

datatrove removes diacritics by testing the Unicode category of every character in a Python
generator, which took more time than the rest of simplify_text together. Here the combining marks
(category Mn, as Python's own Unicode database has them) are deleted by one str.translate.
"""

import unicodedata
from dataclasses import replace
from functools import cache

import numpy as np
from datatrove.utils.text import TextNormConfig, simplify_text

from llmpipe.data import table_cache


@cache
def combining_marks() -> dict[int, None]:
    """Every code point of category Mn, mapped to None (deleted by str.translate)."""
    return dict.fromkeys(table_cache.cached_arrays(mark_code_points)["marks"].tolist())


def mark_code_points() -> dict[str, np.ndarray]:
    """The code points of category Mn, from a pass over every code point (65 ms; built once per
    machine: table_cache.py)."""
    category = unicodedata.category
    return {"marks": np.array([cp for cp in range(0x110000) if category(chr(cp)) == "Mn"], dtype=np.int32)}


class Simplifier:
    """text -> simplify_text(text, config), character for character. A class, not a closure:
    datatrove pickles pipeline steps into its workers."""

    def __init__(self, config: TextNormConfig):
        self.config = config
        # simplify_text strips, removes diacritics, then strips again; stripping before the
        # diacritics as well changes nothing (no combining mark is whitespace)
        self.rest = replace(config, norm_unicode_diacritics=False)
        self.marks = combining_marks() if config.norm_unicode_diacritics else None

    def __call__(self, text: str) -> str:
        if self.marks is None:
            return simplify_text(text, self.config)
        return unicodedata.normalize("NFD", simplify_text(text, self.rest)).translate(self.marks).strip()
