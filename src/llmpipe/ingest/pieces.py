"""Long texts cut into documents: a book in one .txt file becomes pieces of at most `max_bytes`
UTF-8 bytes, cut at paragraph breaks where it can, else at line breaks, else after sentences, else
between characters. The pieces, in order, add up to the text exactly (no character is lost or
added), so a split by position (tokenize.split_by=position) can keep the book's order.
"""

import re

# Where a cut may go, coarsest first: after a blank line, after a line break, after a sentence end
# (Latin or CJK punctuation, with the spaces that follow it).
BOUNDARIES = (re.compile(r"(?<=\n\n)"), re.compile(r"(?<=\n)"), re.compile(r"(?<=[.!?。！？；])\s*"))


def size(text: str) -> int:
    return len(text.encode("utf-8"))


def cut(text: str, max_bytes: int) -> list[str]:
    """`text` as pieces of at most max_bytes bytes each, in order, joined back exactly by ''.join."""
    if size(text) <= max_bytes:
        return [text]
    return pack(units(text, max_bytes, 0), max_bytes)


def units(text: str, max_bytes: int, level: int) -> list[str]:
    """The text split at the level's boundaries, each unit further split where it is still too long."""
    if level == len(BOUNDARIES):
        return list(text)  # no boundary left: between any two characters (pack joins them)
    parts = [p for p in split_keeping(text, BOUNDARIES[level]) if p]
    found = []
    for part in parts:
        found += [part] if size(part) <= max_bytes else units(part, max_bytes, level + 1)
    return found


def split_keeping(text: str, boundary: re.Pattern) -> list[str]:
    """text cut after each match of `boundary`, the matched text kept with the part before it."""
    pieces, start = [], 0
    for match in boundary.finditer(text):
        if match.end() > start:
            pieces.append(text[start : match.end()])
            start = match.end()
    pieces.append(text[start:])
    return pieces


def pack(parts: list[str], max_bytes: int) -> list[str]:
    """Consecutive parts joined into pieces as large as fit in max_bytes."""
    pieces, current, current_size = [], [], 0
    for part in parts:
        part_size = size(part)
        if current and current_size + part_size > max_bytes:
            pieces.append("".join(current))
            current, current_size = [], 0
        current.append(part)
        current_size += part_size
    if current:
        pieces.append("".join(current))
    return pieces


def split_document(doc: dict, max_bytes: int | None) -> list[dict]:
    """A document, or its pieces when its text is over max_bytes: each keeps the source and label,
    gets the id `<id>#<piece>` (zero-padded, so ids sort in text order) and its position `part`."""
    if max_bytes is None or size(doc["text"]) <= max_bytes:
        return [doc]
    return [
        {**doc, "id": f"{doc['id']}#{k:05d}", "text": text, "part": k}
        for k, text in enumerate(cut(doc["text"], max_bytes))
    ]
