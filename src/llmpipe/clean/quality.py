"""Quality rules: is a cleaned document prose worth training on? In the spirit of the Gopher (Rae et
al. 2021), C4 (Raffel et al. 2020) and FineWeb (Penedo et al. 2024) heuristics, made language-aware.

Word-based rules need words. English splits on whitespace. Chinese has no spaces, so its words come
from rjieba (jieba-rs: jieba's dictionary, route and HMM, in Rust); rules that count characters
count Chinese characters one by one. Rules that only make sense for one language (English stop
words, Chinese line lengths) take per-language thresholds from `clean.quality.<lang>`; a threshold
of null switches the rule off for that language.

`first_failure` returns the name of the first rule a document breaks (the rule it is removed for)
or None. Every rule is a small function of a `TextStats`, so a test can check each one alone.
"""

import re
from dataclasses import dataclass
from functools import cache, cached_property
from itertools import repeat

import rjieba

from llmpipe.clean import char_counts

# Sentence-ending punctuation: English, full-width Chinese, and closing quotes/brackets after them.
TERMINAL = set(".!?;:。！？；：…\"'”’」』)）]》")
BULLETS = ("•", "●", "◦", "▪", "‣", "-", "*", "·", "–", "—", "→")
ELLIPSES = ("...", "…", "。。。")
# Prose punctuation: not counted as "symbols" (the ratio that catches ASCII art and tables).
PROSE_PUNCTUATION = frozenset(".,;:!?'\"()-–—…/&%") | frozenset("，。！？；：、“”‘’《》〈〉「」『』（）【】…—·")
PROSE_PUNCTUATION_CHARS = "".join(sorted(PROSE_PUNCTUATION))  # for str.strip
# Function words that prose cannot avoid: Gopher's English list, and the commonest modern Chinese
# particles and pronouns (classical poems use few of them, so the rule is off for zh by default).
STOP_WORDS = {
    "en": {"the", "be", "to", "of", "and", "that", "have", "with"},
    "zh": {"的", "了", "是", "在", "和", "有", "我", "不", "这", "就", "也", "都", "你", "他", "我们"},
}
WORD_CHARS = re.compile(r"\w", re.UNICODE)


@cache
def segmenter() -> rjieba.Jieba:
    """rjieba with its default dictionary (jieba's). An instance of our own: words added to rjieba's
    module-level one by other code would change our words."""
    return rjieba.Jieba()


def segment_chinese(text: str) -> list[str]:
    """rjieba's words, HMM on for words the dictionary lacks (as jieba.lcut)."""
    return segmenter().cut(text, hmm=True)


def load_tables():
    """Build the tables the rules use (character classes, the word dictionary) now: the clean stage
    calls this before its workers fork, so each inherits them instead of building its own."""
    char_counts.classes(PROSE_PUNCTUATION)
    segmenter()


def split_words(text: str, lang: str) -> list[str]:
    """Words with at least one letter or digit: rjieba words for Chinese, whitespace words otherwise."""
    tokens = segment_chinese(text) if lang == "zh" else text.split()
    # no token holds both whitespace and a word character (rjieba puts whitespace in tokens of its own)
    return list(filter(WORD_CHARS.search, tokens))


@dataclass
class TextStats:
    """What the rules look at, computed once per document."""

    text: str
    lang: str

    @cached_property
    def words(self) -> list[str]:
        return split_words(self.text, self.lang)

    @cached_property
    def lines(self) -> list[str]:
        return [line.strip() for line in self.text.split("\n") if line.strip()]

    @cached_property
    def paragraphs(self) -> list[str]:
        """Blocks separated by blank lines, each joined into one line: hard-wrapped prose (as in
        fortunes and e-mail) breaks lines mid-sentence, so line-end rules look at paragraph ends."""
        blocks = re.split(r"\n\s*\n", self.text)
        return [" ".join(b.split()) for b in blocks if b.strip()]

    @cached_property
    def visible(self) -> int:
        """How many characters are not whitespace."""
        return char_counts.visible_count(self.text)

    @cached_property
    def alphabetic(self) -> list[str]:
        """The words with at least one letter."""
        return list(filter(char_counts.classes(PROSE_PUNCTUATION)["alpha"].pattern.search, self.words))

    @cached_property
    def word_chars(self) -> int:
        return sum(map(len, self.words))

    @cached_property
    def ngrams(self) -> char_counts.NGrams:
        return char_counts.NGrams(self.words)


# --- the rules: each returns True when the document breaks it ---------------------------------


def too_few_words(s: TextStats, minimum: int) -> bool:
    return len(s.words) < minimum


def too_many_words(s: TextStats, maximum: int) -> bool:
    return len(s.words) > maximum


def mean_word_length_out_of_range(s: TextStats, low: float, high: float) -> bool:
    """Gopher keeps 3 to 10 characters per English word; a Chinese word is 1 to ~4 characters.
    Words without a letter (numbers) are left to the digit rule: "1000000元" is not a long word."""
    if not s.alphabetic:
        return True
    # stripping prose punctuation off a word with a letter never empties it
    mean = sum(map(len, map(str.strip, s.alphabetic, repeat(PROSE_PUNCTUATION_CHARS)))) / len(s.alphabetic)
    return not low <= mean <= high


def symbol_ratio_too_high(s: TextStats, maximum: float) -> bool:
    """Share of visible characters that are neither letters, digits, marks nor prose punctuation:
    ASCII art, tables of symbols, leftover markup."""
    if not s.visible:
        return True
    # the three classes are disjoint: marks and prose punctuation are counted where not alphanumeric
    classes = char_counts.classes(PROSE_PUNCTUATION)
    symbols = s.visible - classes["alnum"].count(s.text) - classes["mark_or_prose"].count(s.text)
    return symbols / s.visible > maximum


def hash_ellipsis_ratio_too_high(s: TextStats, maximum: float) -> bool:
    """Gopher's symbol-to-word ratio: '#' and ellipses per word."""
    count = s.text.count("#") + sum(s.text.count(e) for e in ELLIPSES)
    return count / max(len(s.words), 1) > maximum


def digit_ratio_too_high(s: TextStats, maximum: float) -> bool:
    if not s.visible:
        return True
    return char_counts.classes(PROSE_PUNCTUATION)["digit"].count(s.text) / s.visible > maximum


def alphabetic_words_too_few(s: TextStats, minimum: float) -> bool:
    """Gopher: most words hold a letter (not only digits and symbols)."""
    if not s.words:
        return True
    return len(s.alphabetic) / len(s.words) < minimum


def stop_words_too_few(s: TextStats, minimum: int) -> bool:
    """Gopher: real prose uses at least a few of the commonest function words of its language."""
    stop_words = STOP_WORDS.get(s.lang, STOP_WORDS["en"])
    return sum(1 for w in s.words if w.lower().strip(".,;:!?\"'()") in stop_words) < minimum


def bullet_lines_too_many(s: TextStats, maximum: float, min_lines: int) -> bool:
    """Gopher: pages that are nothing but bullet points (menus, link lists)."""
    if len(s.lines) < min_lines:
        return False
    return sum(1 for line in s.lines if line.startswith(BULLETS)) / len(s.lines) > maximum


def ellipsis_lines_too_many(s: TextStats, maximum: float, min_lines: int) -> bool:
    """Gopher: lines cut off with an ellipsis (truncated previews)."""
    if len(s.lines) < min_lines:
        return False
    return sum(1 for line in s.lines if line.endswith(ELLIPSES)) / len(s.lines) > maximum


def punctuated_paragraphs_too_few(s: TextStats, minimum: float, min_paragraphs: int) -> bool:
    """FineWeb/C4: prose ends in sentence punctuation; menus, link lists and boilerplate do not.
    Judged on paragraphs, and only from `min_paragraphs` up: a quip need not end in a full stop."""
    if len(s.paragraphs) < min_paragraphs:
        return False
    return sum(1 for p in s.paragraphs if p[-1] in TERMINAL) / len(s.paragraphs) < minimum


def duplicate_lines_too_many(s: TextStats, max_line_fraction: float, max_char_fraction: float) -> bool:
    """Gopher: the share of lines (and of characters in them) that repeat an earlier line."""
    if len(s.lines) < 2:
        return False
    seen, dup_lines, dup_chars = set(), 0, 0
    for line in s.lines:
        if line in seen:
            dup_lines += 1
            dup_chars += len(line)
        seen.add(line)
    total_chars = sum(len(line) for line in s.lines)
    return dup_lines / len(s.lines) > max_line_fraction or dup_chars / total_chars > max_char_fraction


def top_ngram_too_frequent(s: TextStats, limits: dict[int, float], min_words: int) -> bool:
    """Gopher: the characters covered by the most frequent n-gram (n = 2..4), as a share of all word
    characters. Catches 'buy now buy now buy now'. Only from `min_words` up: in a ten-word quip one
    repeated phrase ("the tree of life ... the tree of death") is style, not spam."""
    if len(s.words) < min_words:
        return False
    total = s.word_chars
    for n, limit in limits.items():
        count, chars = s.ngrams.most_frequent(n)
        if count > 1 and count * chars / total > limit:
            return True
    return False


def duplicate_ngrams_too_many(s: TextStats, limits: dict[int, float], min_words: int) -> bool:
    """Gopher: the share of word characters inside n-grams (n = 5..10) that occur more than once."""
    if len(s.words) < min_words:
        return False
    total = s.word_chars
    for n, limit in limits.items():
        if total and s.ngrams.repeated_chars(n) / total > limit:
            return True
    return False


def has_bad_phrase(s: TextStats, phrases: list[str]) -> bool:
    """C4: placeholder and boilerplate text ('lorem ipsum', 'enable javascript')."""
    lowered = s.text.lower()
    return any(p in lowered for p in phrases)


# (name, rule, the threshold keys it takes), in the order they are tried.
RULES = [
    ("too_few_words", too_few_words, ("min_words",)),
    ("too_many_words", too_many_words, ("max_words",)),
    ("mean_word_length", mean_word_length_out_of_range, ("min_mean_word_length", "max_mean_word_length")),
    ("symbol_ratio", symbol_ratio_too_high, ("max_symbol_ratio",)),
    ("hash_ellipsis_ratio", hash_ellipsis_ratio_too_high, ("max_hash_ellipsis_ratio",)),
    ("digit_ratio", digit_ratio_too_high, ("max_digit_ratio",)),
    ("alphabetic_words", alphabetic_words_too_few, ("min_alphabetic_word_ratio",)),
    ("stop_words", stop_words_too_few, ("min_stop_words",)),
    ("bullet_lines", bullet_lines_too_many, ("max_bullet_line_ratio", "line_rules_min_lines")),
    ("ellipsis_lines", ellipsis_lines_too_many, ("max_ellipsis_line_ratio", "line_rules_min_lines")),
    (
        "paragraph_punctuation",
        punctuated_paragraphs_too_few,
        ("min_punctuated_paragraph_ratio", "punctuation_min_paragraphs"),
    ),
    ("duplicate_lines", duplicate_lines_too_many, ("max_duplicate_line_ratio", "max_duplicate_line_char_ratio")),
    ("top_ngram", top_ngram_too_frequent, ("max_top_ngram_char_ratio", "ngram_rules_min_words")),
    ("duplicate_ngrams", duplicate_ngrams_too_many, ("max_duplicate_ngram_char_ratio", "ngram_rules_min_words")),
    ("bad_phrase", has_bad_phrase, ("bad_phrases",)),
]
RULE_NAMES = tuple(name for name, _, _ in RULES)
THRESHOLD_KEYS = tuple(key for _, _, keys in RULES for key in keys)


def active_rules(thresholds: dict) -> list[tuple[str, object, list]]:
    """(name, rule, its thresholds) of the rules that are on, in RULES order: a rule whose thresholds
    include a null is switched off."""
    active = []
    for name, rule, keys in RULES:
        args = [thresholds.get(key) for key in keys]
        if all(a is not None for a in args):
            active.append((name, rule, args))
    return active


def first_failure(s: TextStats, thresholds: dict | list) -> str | None:
    """The first rule (in RULES order) that the document breaks, or None to keep it. `thresholds`:
    a language's thresholds, or their active_rules (what the clean stage passes, made once)."""
    rules = active_rules(thresholds) if isinstance(thresholds, dict) else thresholds
    for name, rule, args in rules:
        if rule(s, *args):
            return name
    return None


def check_thresholds(quality_cfg: dict):
    """A clear error for a misspelt threshold in `clean.quality` (a rule would silently not run)."""
    import difflib

    if "default" not in quality_cfg:
        raise ValueError("clean.quality needs a `default` section of thresholds")
    for lang, thresholds in quality_cfg.items():
        for key in thresholds or {}:
            if key not in THRESHOLD_KEYS:
                close = difflib.get_close_matches(key, THRESHOLD_KEYS, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ValueError(f"clean.quality.{lang}.{key}: unknown threshold{hint}")


def rules_for(lang: str, quality_cfg: dict) -> dict:
    """The thresholds that apply to a language: `default`, overridden key by key by `<lang>`."""
    return {**quality_cfg["default"], **(quality_cfg.get(lang) or {})}
