"""Text cleaning: remove terminal noise, normalize Unicode and whitespace, drop bad documents.

Each rule is a small function; `clean_text` applies them in order and reports which ones changed
the text, so the stage can count what every rule did.
"""

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

# ANSI escape sequences: CSI (colours, cursor moves: ESC [ ... final byte), OSC (ESC ] ... BEL or
# ESC \), and the remaining two-byte escapes. The fortune files colour poem titles this way.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# Typewriter overstrike: "X\bX" is bold X and "_\bX" underlined X; the printed character is the last.
OVERSTRIKE = re.compile(r"[^\x08\n]\x08")
# Control characters other than newline and tab.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
BLANK_LINES = re.compile(r"\n{3,}")


def strip_ansi(text: str) -> str:
    return ANSI_ESCAPE.sub("", text)


def resolve_overstrike(text: str) -> str:
    while True:
        resolved = OVERSTRIKE.sub("", text)
        if resolved == text:
            return text
        text = resolved


def strip_control(text: str) -> str:
    return CONTROL.sub("", text)


def normalize_whitespace(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = TRAILING_SPACE.sub("", text)
    return BLANK_LINES.sub("\n\n", text).strip()


def clean_text(text: str, unicode_form: str = "NFC") -> tuple[str, list[str]]:
    """The cleaned text and the names of the rules that changed it."""
    rules = [
        ("ansi_escapes", strip_ansi),
        ("overstrike", resolve_overstrike),
        ("control_chars", strip_control),
        ("unicode_normalized", lambda t: unicodedata.normalize(unicode_form, t)),
        ("whitespace", normalize_whitespace),
    ]
    changed = []
    for name, rule in rules:
        cleaned = rule(text)
        if cleaned != text:
            changed.append(name)
        text = cleaned
    return text, changed


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def clean_documents(
    docs: Iterable[dict], unicode_form: str, min_chars: int, max_chars: int, dedup: bool
) -> tuple[list[dict], Counter]:
    """Clean every document; return the kept ones (sorted by id) and counts per rule and drop reason.

    Documents are sorted by id before deduplication so the kept copy of a duplicate does not depend
    on the order files were read in.
    """
    if unicode_form not in ("NFC", "NFKC", "NFD", "NFKD"):
        raise ValueError(f"clean.unicode_form={unicode_form!r} is not a Unicode normalization form")
    counts = Counter()
    candidates = []
    for doc in sorted(docs, key=lambda d: d["id"]):
        counts["docs_in"] += 1
        text, changed = clean_text(doc["text"], unicode_form)
        counts.update(f"fixed_{name}" for name in changed)
        if not text:
            counts["dropped_empty"] += 1
        elif len(text) < min_chars:
            counts["dropped_too_short"] += 1
        elif len(text) > max_chars:
            counts["dropped_too_long"] += 1
        else:
            candidates.append({**doc, "text": text})
    kept, seen = [], set()
    for doc in candidates:
        digest = text_hash(doc["text"])
        if dedup and digest in seen:
            counts["dropped_duplicate"] += 1
            continue
        seen.add(digest)
        kept.append(doc)
    counts["docs_out"] = len(kept)
    return kept, counts
