"""Which documents train, validate and test (tokenize.split_by): by a hash of each id, by the
corpus's own `split` field, or by position within each source file; and how a raw document (clean
off) is held out as its cleaned record."""

import hashlib
import re

SPLITS = ("train", "val", "test")


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


def split_documents(
    docs: list[dict], val_fraction: float, test_fraction: float, split_by: str = "hash"
) -> dict[str, list[dict]]:
    """{split: its documents}, each held as as_split says, placed as Placement says (a list's worth:
    tokenize itself places one document at a time)."""
    place = Placement.of(docs, val_fraction, test_fraction, split_by)
    splits = {name: [] for name in SPLITS}
    for doc in docs:
        split = place(doc)
        if (kept := as_split(doc, split)) is not None:
            splits[split].append(kept)
    return splits


class Placement:
    """The split of one document, by `split_by`:
    hash      split_of its id: stable across runs, machines and corpus edits;
    field     its own `split` field (train, val or test), e.g. a corpus with its own validation set;
    position  per source file, in id order (a long text's pieces sort in text order): the documents
              that start in the first 1 - val - test of the file's bytes train, the next val_fraction
              validate, the rest test, as nanoGPT splits one text. This needs every document's id,
              source and size first (`positions`: a small record per document, not its text).
    Picklable: tokenize's datatrove tasks each hold one."""

    def __init__(self, split_by: str, val_fraction: float, test_fraction: float, positions: dict | None = None):
        assert split_by in ("hash", "field", "position") and (positions is not None) == (split_by == "position")
        self.split_by, self.val, self.test, self.positions = split_by, val_fraction, test_fraction, positions

    @classmethod
    def of(cls, docs, val_fraction: float, test_fraction: float, split_by: str) -> "Placement":
        """The placement for documents `docs` (an iterable, read once more by position only)."""
        found = by_position(docs, val_fraction, test_fraction) if split_by == "position" else None
        return cls(split_by, val_fraction, test_fraction, found)

    def __call__(self, doc: dict) -> str:
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


def by_position(docs, val_fraction: float, test_fraction: float) -> dict[str, str]:
    """{document id: split} for split_by=position, from one pass over the documents."""
    files: dict[str, list[tuple[str, int]]] = {}
    for doc in docs:
        files.setdefault(source_file(doc.get("source") or ""), []).append((doc["id"], len(doc["text"].encode("utf-8"))))
    placed = {}
    for members in files.values():
        members.sort()
        total, start = sum(size for _, size in members), 0
        for doc_id, size in members:
            where = start / total if total else 0.0
            placed[doc_id] = (
                "train" if where < 1 - val_fraction - test_fraction else "val" if where < 1 - test_fraction else "test"
            )
            start += size
    return placed


def source_file(source: str) -> str:
    """The file a document came from: its source without the line, row or entry it was at."""
    return re.sub(r":(entry )?\d+$", "", source)
