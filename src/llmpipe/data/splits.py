"""Which documents train, validate and test (tokenize.split_by): by a hash of each id, by the
corpus's own `split` field, or by position within each source file (cutting the documents that
straddle a split's start); and how a raw document (clean off) is held out as its cleaned record."""

import hashlib
import re
from itertools import islice

SPLITS = ("train", "val", "test")
LONG_LINE = 1000  # characters: a position cut goes to a line's start or end, or in a longer line to a space
WORD = re.compile(r"\S+")


def split_of(doc_id: str, val_fraction: float, test_fraction: float) -> str:
    """The split of a document, from a hash of its id: stable across runs, machines and corpus edits."""
    u = int.from_bytes(hashlib.sha256(doc_id.encode("utf-8")).digest()[:8], "big") / 2**64
    if u < val_fraction:
        return "val"
    if u < val_fraction + test_fraction:
        return "test"
    return "train"


def as_split(doc: dict, split: str) -> dict | None:
    """The document as its split holds it: a raw document (with `held_out`) trains on its raw text
    and is held out as its cleaned record, or not held out where cleaning removed it."""
    if "held_out" not in doc:
        return doc
    if split == "train":
        return {k: v for k, v in doc.items() if k != "held_out"}
    return doc["held_out"]


class Placement:
    """The split of one document, by `split_by`:
    hash      split_of its id: stable across runs, machines and corpus edits;
    field     its own `split` field (train, val or test), e.g. a corpus with its own validation set;
    position  per source file, in id order (a long text's pieces sort in text order): the first
              1 - val - test of the file's bytes train, the next val_fraction validate, the rest test,
              as nanoGPT splits one text. A document that straddles a split's start is cut there, at
              the nearest line break (cut_document). This needs every document's id, source and size
              first (`positions`: a small record per document, not its text).
    Picklable: tokenize's datatrove tasks each hold one."""

    def __init__(self, split_by: str, val_fraction: float, test_fraction: float, positions: dict | None = None):
        assert split_by in ("hash", "field", "position") and (positions is not None) == (split_by == "position")
        self.split_by, self.val, self.test, self.positions = split_by, val_fraction, test_fraction, positions

    @classmethod
    def of(cls, docs, val_fraction: float, test_fraction: float, split_by: str) -> "Placement":
        """The placement for documents `docs` (an iterable, read once more by position only)."""
        found = by_position(docs, val_fraction, test_fraction) if split_by == "position" else None
        return cls(split_by, val_fraction, test_fraction, found)

    def parts(self, doc: dict) -> list[tuple[str, dict | None]]:
        """[(split, the document as that split holds it)]: the document itself, or, where a position
        split cuts it, its parts in text order. None: a part not held out (as_split)."""
        if self.split_by == "position" and not isinstance(spans := self.positions[doc["id"]], str):
            return cut_document(doc, spans)
        split = self.split(doc)
        return [(split, as_split(doc, split))]

    def split(self, doc: dict) -> str:
        """The split of a whole document (by position: one that no split's start falls in)."""
        if self.split_by == "hash":
            return split_of(doc["id"], self.val, self.test)
        if self.split_by == "position":
            return self.positions[doc["id"]]
        if doc.get("split") not in SPLITS:
            raise ValueError(
                f"tokenize.split_by=field: document {doc['id']!r} (from {doc.get('source')}) has split="
                f"{doc.get('split')!r}; every document needs a `split` field of {list(SPLITS)}"
            )
        return doc["split"]


def by_position(docs, val_fraction: float, test_fraction: float) -> dict[str, str | tuple]:
    """{document id: its split, or, for a document that straddles a split's start, its spans
    ((split, the span's first byte in the document), ...) in text order}, from one pass over the
    documents."""
    files: dict[str, list[tuple[str, int]]] = {}
    for doc in docs:
        files.setdefault(source_file(doc.get("source") or ""), []).append((doc["id"], len(doc["text"].encode("utf-8"))))
    placed = {}
    for members in files.values():
        members.sort()
        total = sum(size for _, size in members)
        starts = (0, round((1 - val_fraction - test_fraction) * total), round((1 - test_fraction) * total))
        regions = list(zip(SPLITS, starts, (*starts[1:], total), strict=True))  # each split: [first byte, end)
        start, last = 0, "train"
        for doc_id, size in members:
            end = start + size
            spans = tuple((split, max(lo, start) - start) for split, lo, hi in regions if max(lo, start) < min(hi, end))
            if spans:
                last = spans[-1][0]
            placed[doc_id] = spans if len(spans) > 1 else last  # an empty document goes with the text before it
            start = end
    return placed


def cut_document(doc: dict, spans: tuple[tuple[str, int], ...]) -> list[tuple[str, dict | None]]:
    """A document cut where its spans (by_position) start, each cut moved to the nearest line break
    (cut_point), as [(split, part)] in text order. A part keeps the document's fields, with the id
    `<id>/<n>`, n the split's place in SPLITS (0 train, 1 val, 2 test): unique, stable, and sorted in
    text order. A raw document's held-out parts are cut from its cleaned record at the same words
    (matching_point). A cut that lands on the document's edge leaves it whole."""
    text, held = doc["text"], doc.get("held_out")
    cuts: list[int] = []
    for _, at in spans[1:]:
        cuts.append(max([cut_point(text, at), *cuts[-1:]]))  # each cut at or after the one before
    ends = [0, *cuts, len(text)]
    held_ends = held and [0, *(matching_point(text, c, held["text"]) for c in cuts), len(held["text"])]
    kept = [(k, split) for k, (split, _) in enumerate(spans) if ends[k] < ends[k + 1]]
    if len(kept) == 1:
        return [(kept[0][1], as_split(doc, kept[0][1]))]
    parts = []
    for k, split in kept:
        whole = as_split(doc, split)
        if whole is not None:
            lo, hi = (held_ends[k], held_ends[k + 1]) if whole is held else (ends[k], ends[k + 1])
            if lo == hi:  # the cleaned record has no words there: nothing to hold out
                continue
            whole = {**whole, "id": f"{doc['id']}/{SPLITS.index(split)}", "text": whole["text"][lo:hi]}
        parts.append((split, whole))
    return parts


def cut_point(text: str, at: int) -> int:
    """The index in `text` nearest its byte `at` where a cut may go: the start or the end of the line
    it falls in (after a line break, or the text's edge); in a line over LONG_LINE characters, after
    the nearest space within LONG_LINE; where there is none, between the characters at `at` (never
    inside one)."""
    i = len(text.encode("utf-8")[:at].decode("utf-8", errors="ignore"))
    start, end = text.rfind("\n", 0, i) + 1, text.find("\n", i) + 1 or len(text)
    if end - start <= LONG_LINE:
        return start if i - start <= end - i else end
    space = space_near(text, i)
    return i if space is None else space


def space_near(text: str, i: int) -> int | None:
    """The index nearest i, within LONG_LINE either way, just after a space; the earlier of two as near."""
    for distance in range(LONG_LINE + 1):
        for j in (i - distance, i + distance):
            if 0 < j <= len(text) and text[j - 1].isspace():
                return j
    return None


def matching_point(text: str, i: int, cleaned: str) -> int:
    """The index in `cleaned` (the record cleaning made of `text`) that matches index i of text: before
    the same word, counting words as runs of non-space, or as far into it where i is inside a word.
    Cleaning changes spaces, blank lines and characters within words, so the words line up, except
    where it removes or joins words before the cut (a word of control characters only, a phone number
    of two words made one placeholder): the held-out parts' cut then moves by as many words."""
    before = text[:i]
    inside = len(re.search(r"\S*$", before).group()) if i < len(text) and not text[i].isspace() else 0
    word = next(islice(WORD.finditer(cleaned), len(before.split()) - (inside > 0), None), None)
    return len(cleaned) if word is None else word.start() + min(inside, len(word.group()))


def source_file(source: str) -> str:
    """The file a document came from: its source without the line, row or entry it was at."""
    return re.sub(r":(entry )?\d+$", "", source)
