"""Long texts cut into documents: a book in one .txt file becomes pieces of at most `max_bytes`
UTF-8 bytes, by semantic-text-splitter (text-splitter, in Rust): at the longest runs of line breaks
that allow it (paragraphs before lines), else at Unicode sentence boundaries, else between words,
grapheme clusters, then characters. With trim off, the pieces, in order, add up to the text exactly
(no character is lost or added), so a split by position (tokenize.split_by=position) can keep the
book's order.
"""

from functools import lru_cache

from semantic_text_splitter import TextSplitter


def size(text: str) -> int:
    return len(text.encode("utf-8"))


@lru_cache(maxsize=4)
def splitter(max_bytes: int) -> TextSplitter:
    return TextSplitter.from_callback(size, max_bytes, trim=False)


def cut(text: str, max_bytes: int) -> list[str]:
    """`text` as pieces of at most max_bytes bytes each, in order, joined back exactly by ''.join."""
    return [text] if size(text) <= max_bytes else splitter(max_bytes).chunks(text)


def split_document(doc: dict, max_bytes: int | None) -> list[dict]:
    """A document, or its pieces when its text is over max_bytes: each keeps the source and label,
    gets the id `<id>#<piece>` (zero-padded, so ids sort in text order) and its position `part`."""
    pieces = [doc["text"]] if max_bytes is None else cut(doc["text"], max_bytes)
    if len(pieces) == 1:
        return [doc]
    return [{**doc, "id": f"{doc['id']}#{k:05d}", "text": text, "part": k} for k, text in enumerate(pieces)]
