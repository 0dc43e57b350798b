"""Text normalization and screening: repair mojibake, remove terminal noise, normalize Unicode and
whitespace; tell binary, oversized and empty records from text.

Each normalization rule is a small function; `clean_text` applies them in order and reports which
ones changed the text, so the stage can count what every rule did. ftfy repairs mojibake.
"""

import re
import unicodedata

import ftfy
import ftfy.badness

# ANSI escape sequences: CSI (colours, cursor moves: ESC [ ... final byte), OSC (ESC ] ... BEL or
# ESC \), and the remaining two-byte escapes. The fortune files colour poem titles this way.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# Typewriter overstrike: "X\bX" is bold X and "_\bX" underlined X; the printed character is the last.
OVERSTRIKE = re.compile(r"[^\x08\n]\x08")
# Control characters other than newline and tab (C0: below 0x20, and DEL; C1: 0x80 to 0x9f).
C0_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Unicode spaces that look like a space (no-break, thin, en/em...) become one; the ideographic space
# U+3000 stays: Chinese typesetting indents with it.
UNICODE_SPACES = re.compile(r"[\u00a0\u1680\u2000-\u200a\u202f\u205f]")
ZERO_WIDTH = re.compile(r"[\u200b\u2060\ufeff]")  # zero-width space, word joiner, stray byte-order mark
# Control characters that mark binary data: C0 and C1 controls other than tab, newline, carriage
# return and the terminal effects (bell, backspace, form feed, escape).
BINARY_CONTROL = re.compile(r"[\x01-\x06\x0e-\x1a\x1c-\x1f\x7f-\x9f\x0b]")
MAX_PASSES = 4
TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
BLANK_LINES = re.compile(r"\n{3,}")
NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
MOJIBAKE_CONTEXT = 16  # characters read either side of a run of non-ASCII ones (may_hold_mojibake)


# The rules below test for the characters they act on before running their expressions: most
# documents hold none of them, and a membership test is cheaper than a regular-expression scan.


def strip_ansi(text: str) -> str:
    return ANSI_ESCAPE.sub("", text) if "\x1b" in text else text


def resolve_overstrike(text: str) -> str:
    while "\x08" in text:
        resolved = OVERSTRIKE.sub("", text)
        if resolved == text:
            return text
        text = resolved
    return text


def strip_c0_control(text: str) -> str:
    return C0_CONTROL.sub("", text)


def strip_control(text: str) -> str:
    return CONTROL.sub("", text)


def fix_mojibake(text: str) -> str:
    """Text that was encoded in UTF-8 and decoded as Latin-1 / cp1252 ("cafÃ©") decoded again
    correctly: ftfy.fix_encoding only (it leaves quotes, HTML entities and width alone), called
    only when ftfy's test for mojibake finds some (`may_hold_mojibake`). ftfy.fix_encoding begins
    with that same test on the whole text and returns the text unchanged when it finds nothing."""
    return ftfy.fix_encoding(text) if may_hold_mojibake(text) else text


def may_hold_mojibake(text: str) -> bool:
    """ftfy.badness.is_bad on the parts of the text where mojibake can be: windows of
    MOJIBAKE_CONTEXT characters around each run of non-ASCII characters. Mojibake is made of
    non-ASCII characters (each byte of a UTF-8 character read in a single-byte encoding becomes
    one), and ftfy's pattern matches short sequences (up to 3 characters, no anchors or look-arounds
    in ftfy 6) that hold one: tests/unit/test_cleaning.py checks the windows agree with the whole
    text. On documentation whose only non-ASCII characters are a few typographic quotes, this reads
    a few dozen characters of a page instead of all of it (ftfy's search: ~150 ns a character,
    most of the clean stage's normalization time on a 718 MB corpus). A window that finds
    something only sends the whole text to ftfy, which decides again on all of it."""
    if text.isascii():
        return False
    start = end = -1  # the current window, merged with those that overlap it
    for run in NON_ASCII_RUN.finditer(text):
        low, high = max(0, run.start() - MOJIBAKE_CONTEXT), run.end() + MOJIBAKE_CONTEXT
        if low > end:
            if end > start and ftfy.badness.is_bad(text[start:end]):
                return True
            start = low
        end = max(end, high)
    return ftfy.badness.is_bad(text[start:end])


def normalize_whitespace(text: str) -> str:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.isascii():
        text = ZERO_WIDTH.sub("", UNICODE_SPACES.sub(" ", text))
    if " \n" in text or "\t\n" in text or text.endswith((" ", "\t")):
        text = TRAILING_SPACE.sub("", text)
    if "\n\n\n" in text:
        text = BLANK_LINES.sub("\n\n", text)
    return text.strip()


def clean_text(text: str, unicode_form: str = "NFC", mojibake: bool = True) -> tuple[str, list[str]]:
    """The cleaned text and the names of the rules that changed it.

    The rules run in order until a pass changes nothing (at most MAX_PASSES), so cleaning a cleaned
    text is a no-op: ftfy's mojibake test looks at context, and a space or control character that
    a later rule removes can hide mojibake from the first pass."""
    rules = [
        ("ansi_escapes", strip_ansi),
        ("overstrike", resolve_overstrike),
        # C0 controls go before the mojibake repair and C1 controls after it: UTF-8 misread as
        # cp1252 holds C1 bytes ("â\x80\x99" is a right quote), and ftfy needs them to repair it.
        ("control_chars", strip_c0_control),
        ("mojibake", fix_mojibake if mojibake else None),
        ("control_chars", strip_control),
        ("unicode_normalized", lambda t: t if t.isascii() else unicodedata.normalize(unicode_form, t)),
        ("whitespace", normalize_whitespace),
    ]
    changed = []
    for _ in range(MAX_PASSES):
        before = text
        for name, rule in rules:
            if rule is None:
                continue
            cleaned = rule(text)
            if cleaned != text and name not in changed:
                changed.append(name)
            text = cleaned
        # A pass leaves no control character but tab and newline, and on such ASCII text every rule
        # but the (idempotent) whitespace rule is the identity: another pass would change nothing.
        if text == before or text.isascii():
            break
    return text, changed


def screen(text: str, max_bytes: int, max_binary_ratio: float) -> str | None:
    """Why a raw record is not text to clean ('too_large', 'empty', 'binary'), or None.

    Binary: any NUL, or more than max_binary_ratio of characters that text files do not hold:
    control characters other than the terminal effects that fortunes use on purpose (bell,
    backspace, form feed, escape) and U+FFFD, which is what undecodable bytes become."""
    if len(text.encode("utf-8", errors="surrogatepass")) > max_bytes:
        return "too_large"
    if not text.strip():
        return "empty"
    if "\x00" in text:
        return "binary"
    odd = len(BINARY_CONTROL.findall(text)) + text.count("\ufffd")
    if odd / len(text) > max_binary_ratio:
        return "binary"
    return None


def dedup_key(text: str) -> str:
    """What two documents share when they are exact duplicates: the cleaned text, case-folded,
    with runs of whitespace as one space."""
    return " ".join(text.split()).casefold()
